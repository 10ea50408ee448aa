"""Demo explorers that train in place in seconds: a text model and an image + tabular model.

``perspicio insights --demo text`` and ``--demo multimodal`` serve them. Both are built from
seeded synthetic data, so nothing is downloaded and the truth is known: in the text demo only
the sentiment words decide the label, and in the multimodal demo the patient's ``weight``
does not enter it at all (how much the model still leans on it is for the explorer to show).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from perspicio.insights.api import AttributionVisualizer, Batch
from perspicio.insights.features import GeneralFeature, ImageFeature, TextFeature

POSITIVE = ("great", "wonderful", "loved", "brilliant", "fun")
NEGATIVE = ("awful", "boring", "hated", "dull", "mess")
NEUTRAL = ("the", "film", "plot", "was", "acting", "and", "a", "story", "very", "music")
VOCAB = ("<pad>", *POSITIVE, *NEGATIVE, *NEUTRAL)
SENTENCE_LENGTH = 8


def _train(
    model: nn.Module, inputs: tuple[Tensor, ...], labels: Tensor, steps: int, lr: float
) -> None:
    """Full-batch gradient descent with momentum (torch.optim's first step imports a lot)."""
    params = list(model.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(*inputs), labels)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, v, g in zip(params, velocity, grads):
                v.mul_(0.9).add_(g)
                p.sub_(lr * v)
    model.eval()


class TextClassifier(nn.Module):
    """Sentiment of embedded tokens ``(N, T, E)``: a per-token linear score, summed over T."""

    def __init__(self, vocab_size: int, dim: int = 8) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.hidden = nn.Linear(dim, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, embedded: Tensor) -> Tensor:
        return self.out(torch.tanh(self.hidden(embedded)).sum(1))


class _FromIds(nn.Module):
    """The classifier on token ids, for training its embedding with it."""

    def __init__(self, classifier: TextClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, ids: Tensor) -> Tensor:
        return self.classifier(self.classifier.embedding(ids))


def _sentences(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Token ids ``(n, T)``: neutral words with one to three sentiment words; the label."""
    first_neutral = 1 + len(POSITIVE) + len(NEGATIVE)
    ids = torch.randint(first_neutral, len(VOCAB), (n, SENTENCE_LENGTH), generator=gen)
    labels = torch.empty(n, dtype=torch.long)
    for i in range(n):
        k = int(torch.randint(1, 4, (1,), generator=gen))
        places = torch.randperm(SENTENCE_LENGTH, generator=gen)[:k]
        words = torch.randint(1, first_neutral, (k,), generator=gen)
        ids[i, places] = words
        score = sum(1 if int(w) <= len(POSITIVE) else -1 for w in words)
        labels[i] = int(score > 0 or (score == 0 and int(words[0]) <= len(POSITIVE)))
    return ids, labels


def text_visualizer(n: int = 64, batch_size: int = 16, seed: int = 0) -> AttributionVisualizer:
    """Film reviews of eight words, classified negative/positive from their embeddings.

    The :class:`TextFeature` embeds the token ids with the model's own embedding (its input
    transform), so gradient methods attribute to each token's embedding; the baseline is the
    ``<pad>`` embedding.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TextClassifier(len(VOCAB))
    train_ids, train_labels = _sentences(256, gen)

    _train(_FromIds(model), (train_ids,), train_labels, steps=100, lr=0.1)
    ids, labels = _sentences(n, gen)

    def embed(token_ids: Tensor) -> Tensor:
        with torch.no_grad():
            return model.embedding(token_ids)

    return AttributionVisualizer(
        models=model,
        classes=["negative", "positive"],
        features=[
            TextFeature(
                "Review",
                baseline_transforms=[torch.zeros_like],  # the <pad> embedding is zero
                input_transforms=[embed],
                visualization_transform=lambda row: [VOCAB[int(i)] for i in row],
            )
        ],
        dataset=[Batch(x, y) for x, y in zip(ids.split(batch_size), labels.split(batch_size))],
        score_func=lambda out: out.softmax(-1),
    )


class ScanAndRecord(nn.Module):
    """A risk model on an ``(N, 1, 8, 8)`` scan and an ``(N, 3)`` patient record."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.image = nn.Linear(16, 8)
        self.record = nn.Linear(3, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, scan: Tensor, record: Tensor) -> Tensor:
        h = self.image(self.pool(torch.relu(self.conv(scan))).flatten(1))
        return self.out(torch.relu(h + self.record(record)))


def _patients(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Scans with a bright 3x3 spot, records (age, blood pressure, weight) and the risk label."""
    scans = torch.rand(n, 1, 8, 8, generator=gen) * 0.2
    rows = torch.randint(0, 6, (n,), generator=gen)
    cols = torch.randint(0, 6, (n,), generator=gen)
    for i in range(n):
        scans[i, 0, rows[i] : rows[i] + 3, cols[i] : cols[i] + 3] += 0.8
    records = torch.rand(n, 3, generator=gen)
    risk = 1.5 * (rows < 3).float() + records[:, 0] + 0.8 * records[:, 1] - 1.6
    return scans, records, (risk > 0).long()


def multimodal_visualizer(
    n: int = 64, batch_size: int = 16, seed: int = 0
) -> AttributionVisualizer:
    """Risk from a scan (a spot in the upper half is bad) and a record (age, blood pressure).

    The record's ``weight`` does not enter the label.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ScanAndRecord()
    scans, records, labels = _patients(256, gen)
    _train(model, (scans, records), labels, steps=120, lr=0.1)
    scans, records, labels = _patients(n, gen)
    return AttributionVisualizer(
        models=model,
        classes=["low risk", "high risk"],
        features=[
            ImageFeature("Scan", baseline_transforms=[torch.zeros_like], input_transforms=[]),
            GeneralFeature("Record", ["age", "blood pressure", "weight"]),
        ],
        dataset=[
            Batch((s, r), y)
            for s, r, y in zip(
                scans.split(batch_size), records.split(batch_size), labels.split(batch_size)
            )
        ],
        score_func=lambda out: out.softmax(-1),
    )
