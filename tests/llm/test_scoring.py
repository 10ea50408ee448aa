"""Scoring with a reused prefix: same numbers, fewer positions computed."""

from __future__ import annotations

import pytest
import torch

from perspicio.llm.scoring import LanguageModel, shared_prefix, target_log_probs
from perspicio.testing.llm import TinyCausalLM
from tests.llm import tiny


@pytest.mark.parametrize(
    ("rows", "want"),
    [([[1, 2, 3, 4]], 4), ([[1, 2, 0, 4], [1, 0, 3, 4]], 1), ([[0, 2, 3, 4]], 0), ([[1, 2]], 2),
     ([[1, 2, 3, 4, 5, 6]], 4), ([[1, 2, 9, 4, 5]], 2)],
)  # fmt: skip
def test_shared_prefix(rows: list[list[int]], want: int) -> None:
    assert shared_prefix(torch.tensor(rows), torch.tensor([[1, 2, 3, 4]])) == want


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_prefix_cache_is_used_and_exact(arch: str) -> None:
    model = tiny.model(arch, torch.float64)
    lm = LanguageModel(model)
    assert lm.hf
    g = torch.Generator().manual_seed(0)
    original = torch.randint(3, 20, (1, 10), generator=g)
    prompts = original.repeat(4, 1)
    prompts[torch.arange(4), torch.tensor([6, 7, 8, 9])] = 0
    target = torch.tensor([5, 6, 7])
    seen: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        cached = target_log_probs(lm, prompts, target, lm.prefix_cache(original), original)
    finally:
        hook.remove()
    assert seen == [10, 12 - 6]  # the prompt once, then positions 6.. (the last target is not fed)
    plain = target_log_probs(LanguageModel(TinyWrapper(model)), prompts, target)
    torch.testing.assert_close(cached, plain, rtol=1e-10, atol=1e-10)


class TinyWrapper(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids).logits


def test_plain_model_has_no_cache() -> None:
    lm = LanguageModel(TinyCausalLM(vocab=5))
    assert not lm.hf and lm.prefix_cache(torch.tensor([[1, 2]])) is None
    out = target_log_probs(lm, torch.tensor([[1, 2], [3, 4]]), torch.tensor([1]))
    assert out.shape == (2, 1) and (out < 0).all()
