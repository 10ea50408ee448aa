"""Every attack leaves the model and the inputs as they were, after success and after an error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from perspicio.robust import (
    APGD,
    FGSM,
    PGD,
    AttackComparator,
    AttributionAttack,
    CarliniWagnerL2,
    MinParamPerturbation,
)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.0), nn.Linear(6, 3))
        self.fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail:
            raise RuntimeError("forced failure")
        return self.body(x)


def probs(m: Net) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: torch.softmax(m(x), 1)


RUNS: dict[str, Callable[[Net, torch.Tensor], Any]] = {
    "FGSM": lambda m, x: FGSM(probs(m)).perturb(x, 0.1, 0),
    "PGD": lambda m, x: PGD(probs(m)).perturb(x, 0.1, 0.05, 3, 0, random_start=True),
    "APGD": lambda m, x: APGD(probs(m)).perturb(x, 0.1, 4, 0, norm="L2"),
    "CW": lambda m, x: CarliniWagnerL2(m).perturb(x, 0, binary_search_steps=2, step_num=3),
    "AttributionAttack": lambda m, x: AttributionAttack(m).perturb(x, 0.1, 0.05, 3, 0, k=2),
    "MinParam": lambda m, x: MinParamPerturbation(
        m, FGSM(probs(m)), "epsilon", 0, 1, 0.25
    ).evaluate(x, target=0, attack_kwargs={"target": 0}),
}


def comparator(m: Net, x: torch.Tensor) -> Any:
    c = AttackComparator(m, lambda out: out.argmax(1).float())
    c.add_attack(FGSM(probs(m)), attack_kwargs={"epsilon": 0.1, "target": 0})
    return c.evaluate(x, perturbations_per_eval=2)


RUNS["AttackComparator"] = comparator


@pytest.mark.parametrize("name", list(RUNS))
@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_no_residue(name: str, fail: bool, training: bool) -> None:
    model = Net().train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    x = torch.randn(3, 4, requires_grad=True)
    model.fail = fail
    if fail:
        with pytest.raises(RuntimeError, match="forced failure"):
            RUNS[name](model, x)
    else:
        RUNS[name](model, x)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert x.requires_grad and x.grad is None
    assert not model._forward_hooks and not model._forward_pre_hooks
