"""A tiny text classifier trained in place on a toy task, for demos of token attribution.

The task: does the sequence contain token ``7`` somewhere before token ``3``? A model that
solves it must look at those two tokens and at their order, so good token attributions
light up the ``7`` and the ``3`` of positive examples. Training takes a second or two on a
CPU and is deterministic for a given seed; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

PAD = 0
FIRST, SECOND = 7, 3
VOCABULARY = ["<pad>", *(f"w{i}" for i in range(1, 12))]
SEQUENCE_LENGTH = 8


class TinyTransformer(nn.Module):
    """Token and position embeddings, one transformer encoder layer, mean pooling, a head.

    Attribute to ``model.embedding`` (an ``nn.Embedding`` fed with token ids) with
    :class:`~perspicio.attr.LayerIntegratedGradients`.
    """

    def __init__(self, vocab: int = len(VOCABULARY), length: int = SEQUENCE_LENGTH, dim: int = 16):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.position = nn.Embedding(length, dim)
        layer = nn.TransformerEncoderLayer(
            dim, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 2)

    def forward(self, ids: Tensor) -> Tensor:
        h = self.embedding(ids) + self.position.weight[: ids.shape[1]]  # (N, L, dim)
        return self.head(self.encoder(h).mean(1))


def order_labels(tokens: Tensor) -> Tensor:
    """1 where some ``FIRST`` token comes before some ``SECOND`` token, else 0."""
    n, length = tokens.shape
    none = torch.full((n,), length)
    first = torch.where((tokens == FIRST).any(1), (tokens == FIRST).float().argmax(1), none)
    last = length - 1 - (tokens == SECOND).flip(1).float().argmax(1)
    last = torch.where((tokens == SECOND).any(1), last, -torch.ones_like(last))
    return (first < last).long()


def toy_sequences(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` random sequences (no padding), half of them positive, shuffled."""
    pos: list[Tensor] = []
    neg: list[Tensor] = []
    while sum(map(len, pos)) < n // 2 or sum(map(len, neg)) < n - n // 2:
        x = torch.randint(1, len(VOCABULARY), (4 * n, SEQUENCE_LENGTH), generator=generator)
        y = order_labels(x)
        pos.append(x[y == 1])
        neg.append(x[y == 0])
    tokens = torch.cat([torch.cat(pos)[: n // 2], torch.cat(neg)[: n - n // 2]])
    tokens = tokens[torch.randperm(n, generator=generator)]
    return tokens, order_labels(tokens)


@contextmanager
def _one_thread() -> Iterator[None]:
    # intra-op threads only add overhead for a model this small (and on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_text_classifier(
    steps: int = 160, seed: int = 0
) -> tuple[TinyTransformer, Tensor, Tensor]:
    """Train :class:`TinyTransformer` on the toy task; returns it (in eval mode) and held-out
    ``(tokens, labels)``."""
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train = toy_sequences(2000, gen)
    x_test, y_test = toy_sequences(200, gen)
    with torch.random.fork_rng(), _one_thread():
        torch.manual_seed(seed)
        model = TinyTransformer()
        opt = torch.optim.Adam(model.parameters(), lr=5e-3)
        model.train()
        for _ in range(steps):
            idx = torch.randint(len(y_train), (100,), generator=gen)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
    return model.eval(), x_test, y_test


def text_classifier(seed: int = 0) -> tuple[TinyTransformer, Tensor, Tensor, list[str]]:
    """The trained toy classifier, held-out token ids ``(N, 8)``, their labels and the
    vocabulary (``vocabulary[i]`` is token ``i``; token 0 is padding). Trained to about 99%
    held-out accuracy; see :func:`token_attributions` for an example.
    """
    model, tokens, labels = train_text_classifier(seed=seed)
    return model, tokens, labels, list(VOCABULARY)


def token_attributions(
    model: TinyTransformer,
    tokens: Tensor,
    target: int | Tensor | None = None,
    n_steps: int = 32,
) -> tuple[Tensor, Tensor]:
    """Per-token attributions of ``target`` (default: the predicted class) with
    :class:`~perspicio.attr.LayerIntegratedGradients` on the embedding layer, from an
    all-padding baseline. Returns ``(N, L)`` attributions (summed over the embedding
    dimension) and the convergence deltas ``(N,)``.

    Example:
        >>> from perspicio.testing.text import train_text_classifier, token_attributions
        >>> model, tokens, labels = train_text_classifier(steps=2)  # text_classifier(): trained
        >>> attrs, delta = token_attributions(model, tokens[:3], n_steps=8)
        >>> attrs.shape, bool(delta.abs().max() < 0.1)
        (torch.Size([3, 8]), True)
    """
    from perspicio.attr import LayerIntegratedGradients, TokenReferenceBase

    if target is None:
        with torch.no_grad():
            target = model(tokens).argmax(1)
    reference = TokenReferenceBase(PAD).generate_reference(tokens.shape[1], tokens.device)
    lig = LayerIntegratedGradients(model, model.embedding)
    attrs, delta = lig.attribute(
        tokens,
        baselines=reference.unsqueeze(0),
        target=target,
        n_steps=n_steps,
        return_convergence_delta=True,
    )
    return attrs.sum(-1), delta
