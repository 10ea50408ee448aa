"""A word-level tokenizer and a tiny causal language model, for LLM attribution examples.

Both follow the interfaces :mod:`perspicio.llm` relies on (the Hugging Face tokenizer
methods, ``model(input_ids) -> logits``) without needing ``transformers``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn


class WordTokenizer:
    """Whitespace tokenizer over a fixed vocabulary (unknown words map to ``vocab[0]``).

    Example:
        >>> tok = WordTokenizer(["<unk>", "<s>", "a", "b"], bos_token="<s>")
        >>> tok.encode("a b c")
        [1, 2, 3, 0]
        >>> tok.decode([2, 3])
        'a b'
    """

    def __init__(self, vocab: list[str], bos_token: str | None = None) -> None:
        self.vocab = list(vocab)
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.bos_token = bos_token
        self.bos_token_id = None if bos_token is None else self.ids[bos_token]

    def __len__(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.ids)

    def _split(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        ids, offsets, pos = [], [], 0
        for word in text.split():
            start = text.index(word, pos)
            pos = start + len(word)
            ids.append(self.ids.get(word, 0))
            offsets.append((start, pos))
        return ids, offsets

    def __call__(
        self, text: str, add_special_tokens: bool = True, return_offsets_mapping: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:  # fmt: skip
        ids, offsets = self._split(text)
        if add_special_tokens and self.bos_token_id is not None:
            ids, offsets = [self.bos_token_id, *ids], [(0, 0), *offsets]
        out: dict[str, Any] = {"input_ids": ids, "attention_mask": [1] * len(ids)}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets
        return out

    def encode(
        self, text: str, return_tensors: str | None = None, add_special_tokens: bool = True
    ) -> Any:
        ids = self(text, add_special_tokens=add_special_tokens)["input_ids"]
        return torch.tensor([ids]) if return_tensors == "pt" else ids

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        ids = ids.reshape(-1).tolist() if isinstance(ids, Tensor) else list(ids)
        skip = {self.bos_token_id} if skip_special_tokens else set()
        return " ".join(self.vocab[i] for i in ids if i not in skip)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.vocab[i] for i in ids]

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        return [self.ids.get(t, 0) for t in tokens]


class TinyCausalLM(nn.Module):
    """A pre-norm decoder-only transformer: ``forward(input_ids) -> logits (B, L, vocab)``.

    Token and learned position embeddings, ``layers`` blocks of causal softmax attention and
    a GELU MLP, a final LayerNorm and an untied head. Seeded, untrained unless you train it.

    Example:
        >>> model = TinyCausalLM(vocab=10)
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 10])
    """

    def __init__(
        self, vocab: int, dim: int = 32, layers: int = 2, heads: int = 2, length: int = 64,
        seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        gen = torch.random.fork_rng()
        with gen:
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab, dim)
            self.position = nn.Embedding(length, dim)
            self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, input_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.embed(input_ids) + self.position(positions)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))


class Block(nn.Module):
    """One pre-norm block: causal multi-head attention and a GELU MLP, both residual."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, h: Tensor) -> Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        causal = torch.ones(n, n, dtype=torch.bool, device=h.device).triu(1)
        scores = scores.masked_fill(causal, torch.finfo(scores.dtype).min)
        mixed = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, n, d)
        h = h + self.out(mixed)
        return h + self.mlp(self.norm2(h))
