"""A check that can fail: on a trained key -> value task the key must get the top attribution.

A 2-layer :class:`~perspicio.testing.llm.TinyCausalLM` learns, in seconds, to answer the
value of the one key token hidden among filler tokens. Only the key carries information,
so a faithful method puts its largest attribution on it.
"""

from __future__ import annotations

import functools

import pytest
import torch

from perspicio.attr import FeatureAblation, LLMAttribution, TextTokenInput
from perspicio.llm.attnlrp import AttnLRP
from perspicio.testing.llm import TinyCausalLM, WordTokenizer

FILLERS, KEYS = 8, 4
VOCAB = (
    ["<unk>"]
    + [f"f{i}" for i in range(FILLERS)]
    + [f"k{i}" for i in range(KEYS)]
    + [f"v{i}" for i in range(KEYS)]
)
LENGTH = 8


def _prompts(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = torch.randint(1, 1 + FILLERS, (n, LENGTH), generator=gen)
    keys = torch.randint(0, KEYS, (n,), generator=gen)
    where = torch.randint(0, LENGTH, (n,), generator=gen)
    ids[torch.arange(n), where] = 1 + FILLERS + keys
    return ids, where, 1 + FILLERS + KEYS + keys


@functools.cache
def trained(steps: int = 300) -> TinyCausalLM:
    gen = torch.Generator().manual_seed(0)
    model = TinyCausalLM(vocab=len(VOCAB), dim=32, layers=2, heads=2, length=16, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        ids, _, values = _prompts(64, gen)
        loss = torch.nn.functional.cross_entropy(model(ids)[:, -1], values)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _hits(method: str, n: int, model: TinyCausalLM) -> float:
    tok = WordTokenizer(VOCAB)
    ids, where, values = _prompts(n, torch.Generator().manual_seed(1))
    hits = 0
    for row, key, value in zip(ids, where, values):
        inp = TextTokenInput(tok.decode(row), tok)
        target = value.view(1)
        if method == "ablation":
            res = LLMAttribution(FeatureAblation(model), tok).attribute(inp, target)
        else:
            res = AttnLRP(model, tok).attribute(inp, target)
        hits += int(res.seq_attr.argmax() == key)
    return hits / n


@pytest.mark.parametrize("method", ["ablation", "attnlrp"])
def test_key_is_top_attributed(method: str) -> None:
    model = trained()
    ids, _, values = _prompts(200, torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (model(ids)[:, -1].argmax(-1) == values).float().mean() > 0.95  # it learned
    assert _hits(method, 40, model) >= 0.95


@pytest.mark.parametrize("method", ["ablation", "attnlrp"])
def test_the_check_fails_on_an_untrained_model(method: str) -> None:
    """An untrained model has no reason to single out the key: the check must say so."""
    untrained = TinyCausalLM(vocab=len(VOCAB), dim=32, layers=2, heads=2, length=16, seed=1)
    assert _hits(method, 40, untrained.eval()) < 0.6
