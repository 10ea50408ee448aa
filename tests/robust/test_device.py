"""Attacks, the comparator and the gates run on the inputs' device (a GPU when there is one):
results stay there, and deterministic ones give the CPU's numbers (float64)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from perspicio.module import BinaryConcreteStochasticGates, GaussianStochasticGates
from perspicio.robust import (
    APGD,
    FGSM,
    PGD,
    AttackComparator,
    AttributionAttack,
    CarliniWagnerL2,
    MinParamPerturbation,
)

DEVICE = os.environ.get("PERSPICIO_TEST_DEVICE", "cuda")  # "cpu" checks the check itself
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a GPU"
)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Softplus(), nn.Flatten(), nn.Linear(256, 5)
    ).double()


def probs(m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: torch.softmax(m(x), 1)


def comparator(m: nn.Module, x: torch.Tensor, t: torch.Tensor) -> Any:
    c = AttackComparator(m, lambda out, target: (out.argmax(1) == target).double())
    c.add_attack(FGSM(probs(m)), attack_kwargs={"epsilon": 0.2},
                 additional_attack_arg_names=["target"])  # fmt: skip
    c.evaluate(x, perturbations_per_eval=2, target=t)
    return c.summary()["FGSM"]["mean"]


RUNS: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], Any]] = {
    "FGSM": lambda m, x, t: FGSM(probs(m), lower_bound=0, upper_bound=1).perturb(x, 0.1, t),
    "PGD-L2": lambda m, x, t: PGD(probs(m)).perturb(x, 0.5, 0.05, 5, t, norm="L2"),
    "APGD": lambda m, x, t: APGD(probs(m), None, 0, 1).perturb(x, 0.1, 8, t),
    "CW": lambda m, x, t: CarliniWagnerL2(m, 0, 1).perturb(x, t, binary_search_steps=3,
                                                          step_num=20, step_size=0.05),
    "AttributionAttack": lambda m, x, t: AttributionAttack(m).perturb(x, 0.1, 0.02, 5, t, k=4),
    "MinParam": lambda m, x, t: MinParamPerturbation(
        m, FGSM(probs(m)), "epsilon", 0.0, 2.0, 0.05, "binary"
    ).evaluate(x[:1], target=t[:1], attack_kwargs={"target": t[:1]})[0],
    "AttackComparator": comparator,
}  # fmt: skip
RANDOM = {"PGD-random": lambda m, x, t: PGD(probs(m)).perturb(x, 0.3, 0.1, 2, t,
                                                              random_start=True, norm="L2")}  # fmt: skip


@pytest.mark.parametrize("name", [*RUNS, *RANDOM])
def test_attacks_run_on_the_inputs_device(name: str) -> None:
    run = {**RUNS, **RANDOM}[name]
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 1, 2, 3, 4, 0])
    on_cpu = run(net(), x, t)
    out = run(net().to(DEVICE), x.to(DEVICE), t.to(DEVICE))
    assert out is not None and out.device.type == DEVICE and bool(torch.isfinite(out).all())
    if name in RUNS:
        torch.testing.assert_close(out.cpu(), on_cpu, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", [BinaryConcreteStochasticGates, GaussianStochasticGates])
@pytest.mark.parametrize("training", [False, True])
def test_gates_run_on_the_inputs_device(cls: type, training: bool) -> None:
    mask = torch.tensor([[0, 1], [1, 2]])
    gates = cls._from_pretrained(torch.tensor([-0.5, 0.3, 2.0]), mask=mask).train(training)
    gated, reg = gates.to(DEVICE)(torch.ones(4, 2, 2, device=DEVICE))
    assert gated.device.type == DEVICE and reg.device.type == DEVICE
    cpu_gated, cpu_reg = gates.cpu()(torch.ones(4, 2, 2))
    torch.testing.assert_close(reg.cpu(), cpu_reg)
    if not training:
        torch.testing.assert_close(gated.cpu(), cpu_gated)
