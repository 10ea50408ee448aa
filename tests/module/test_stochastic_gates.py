from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.module import (
    BinaryConcreteStochasticGates,
    GaussianStochasticGates,
    StochasticGatesBase,
)

CLASSES = [BinaryConcreteStochasticGates, GaussianStochasticGates]


def gaussian_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_binary_concrete_closed_forms() -> None:
    la = torch.tensor([-3.0, -0.2, 0.0, 0.4, 5.0])
    gates = BinaryConcreteStochasticGates._from_pretrained(la, temperature=0.5).eval()
    s = torch.sigmoid(la) * 1.2 - 0.1
    torch.testing.assert_close(gates.get_gate_values(clamp=False), s)
    torch.testing.assert_close(gates.get_gate_values(), s.clamp(0, 1))
    offset = 0.5 * math.log(0.1 / 1.1)
    expected = torch.tensor([1 / (1 + math.exp(-(v - offset))) for v in la.tolist()])
    torch.testing.assert_close(gates.get_gate_active_probs(), expected)
    x = torch.randn(3, 5)
    gated, reg = gates(x)
    torch.testing.assert_close(gated, x * s.clamp(0, 1))
    torch.testing.assert_close(reg, expected.sum())


def test_gaussian_closed_forms() -> None:
    mu = torch.tensor([-0.5, 0.1, 0.7, 1.3])
    gates = GaussianStochasticGates._from_pretrained(mu, std=0.25, reg_weight=0.5).eval()
    expected = torch.tensor([gaussian_cdf(m / 0.25) for m in mu.tolist()])
    torch.testing.assert_close(gates.get_gate_active_probs(), expected)
    x = torch.randn(2, 4)
    gated, reg = gates(x)
    torch.testing.assert_close(gated, x * mu.clamp(0, 1))
    torch.testing.assert_close(reg, 0.5 * expected.sum())


@pytest.mark.parametrize("cls", CLASSES)
def test_training_samples_match_the_distribution(cls: type[StochasticGatesBase]) -> None:
    torch.manual_seed(0)
    param = torch.tensor([-1.0, 0.0, 0.3, 2.0])
    gates = cls._from_pretrained(param)  # type: ignore[attr-defined]
    gates.train()
    gated, _ = gates(torch.ones(40000, 4))
    active = (gated > 0).float().mean(0)
    torch.testing.assert_close(active, gates.get_gate_active_probs(), atol=0.01, rtol=0)
    assert ((gated >= 0) & (gated <= 1)).all()


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_reg_reduction(reduction: str) -> None:
    gates = GaussianStochasticGates(3, reg_weight=2.0, reg_reduction=reduction)
    _, reg = gates(torch.ones(1, 3))
    probs = gates.get_gate_active_probs()
    expected = {"sum": probs.sum(), "mean": probs.mean(), "none": probs}[reduction] * 2.0
    torch.testing.assert_close(reg.detach(), expected)
    assert reg.requires_grad  # the regulariser trains the gates


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_mask_groups_elements_under_one_gate(dtype: torch.dtype) -> None:
    mask = torch.tensor([[0, 0, 1], [2, 2, 1]], dtype=dtype)
    gates = GaussianStochasticGates._from_pretrained(torch.tensor([0.2, 0.6, 0.9]), mask=mask)
    gated, _ = gates.eval()(torch.ones(2, 2, 3))
    torch.testing.assert_close(gated[1], torch.tensor([[0.2, 0.2, 0.6], [0.9, 0.9, 0.6]]))


@pytest.mark.parametrize("cls", CLASSES)
def test_state_dict_names_and_pretrained_round_trip(cls: type[StochasticGatesBase]) -> None:
    name = "log_alpha_param" if cls is BinaryConcreteStochasticGates else "mu"
    trained = cls(6, reg_weight=0.3)
    assert set(trained.state_dict()) == {name}
    value = torch.randn(6)
    loaded = cls._from_pretrained(value, reg_weight=0.3)  # type: ignore[attr-defined]
    assert loaded.n_gates == 6 and loaded.reg_weight == 0.3
    torch.testing.assert_close(getattr(loaded, name).detach(), value)
    with pytest.raises(ArgumentError, match=name):
        cls._from_pretrained(torch.zeros(2, 3))  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", CLASSES)
def test_l0_training_keeps_the_five_relevant_features(cls: type[StochasticGatesBase]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 50, generator=gen)
    relevant = torch.tensor([3, 11, 19, 30, 47])
    y = x[:, relevant] @ torch.tensor([2.0, -1.5, 1.0, -2.5, 1.2])
    torch.manual_seed(0)
    gates, head = cls(50, reg_weight=0.02), nn.Linear(50, 1)
    opt = torch.optim.Adam([*gates.parameters(), *head.parameters()], lr=0.05)
    for _ in range(250):
        opt.zero_grad()
        gated, reg = gates(x)
        (((head(gated)[:, 0] - y) ** 2).mean() + reg).backward()
        opt.step()
    strongest = gates.get_gate_values(clamp=False).topk(5).indices.sort().values
    assert strongest.tolist() == relevant.tolist()
    assert int((gates.get_gate_values() == 0).sum()) >= 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_gates": 0}, "n_gates must be at least 1"),
        ({"n_gates": 3, "mask": torch.tensor([0, 1])}, "mask must hold gate ids"),
        ({"n_gates": 2, "mask": torch.tensor([-1, 1])}, "mask must hold gate ids"),
        ({"n_gates": 3, "reg_reduction": "max"}, "reg_reduction"),
        ({"n_gates": 3, "temperature": 1.5}, "temperature"),
        ({"n_gates": 3, "lower_bound": 0.1}, "lower_bound"),
        ({"n_gates": 3, "upper_bound": 0.9}, "upper_bound"),
    ],
)
def test_bad_binary_concrete_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        BinaryConcreteStochasticGates(**kwargs)


def test_bad_arguments() -> None:
    with pytest.raises(ArgumentError, match="std"):
        GaussianStochasticGates(3, std=0.0)
    with pytest.raises(TypeError, match="mask"):
        GaussianStochasticGates(2, mask=torch.tensor([0.0, 1.0]))
    with pytest.raises(ArgumentError, match="one element per gate"):
        GaussianStochasticGates(3)(torch.ones(2, 4))
    with pytest.raises(ArgumentError, match="batch dimension"):
        GaussianStochasticGates(3)(torch.ones(3))
