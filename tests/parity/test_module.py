"""perspicio.module's stochastic gates give Captum's numbers (Captum is a test oracle only)."""

from __future__ import annotations

import pytest
import torch

from perspicio import module as ours

captum_module = pytest.importorskip("captum.module")

CASES = [
    ("BinaryConcreteStochasticGates", {}),
    ("BinaryConcreteStochasticGates", {"temperature": 0.3, "lower_bound": -0.3, "eps": 1e-6}),
    ("GaussianStochasticGates", {}),
    ("GaussianStochasticGates", {"std": 0.2, "reg_weight": 0.1, "reg_reduction": "mean"}),
]


def build(name: str, kwargs: dict, mask: torch.Tensor | None) -> tuple:
    n = 4 if mask is not None else 6
    torch.manual_seed(3)
    mine = getattr(ours, name)(n, mask=mask, **kwargs)
    torch.manual_seed(3)
    theirs = getattr(captum_module, name)(n, mask=mask, **kwargs)
    return mine, theirs


@pytest.mark.parametrize(("name", "kwargs"), CASES)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_gates(name: str, kwargs: dict, training: bool, masked: bool) -> None:
    mask = torch.tensor([[0, 1, 1], [2, 3, 3]]) if masked else None
    mine, theirs = build(name, kwargs, mask)
    assert mine.state_dict().keys() == theirs.state_dict().keys()
    for k in mine.state_dict():
        torch.testing.assert_close(mine.state_dict()[k], theirs.state_dict()[k])
    mine.train(training)
    theirs.train(training)
    x = torch.randn(5, 2, 3) if masked else torch.randn(5, 6)
    torch.manual_seed(11)
    a, ra = mine(x)
    torch.manual_seed(11)
    b, rb = theirs(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ra, rb)
    torch.testing.assert_close(mine.get_gate_values(), theirs.get_gate_values())
    torch.testing.assert_close(
        mine.get_gate_values(clamp=False), theirs.get_gate_values(clamp=False)
    )
    torch.testing.assert_close(mine.get_gate_active_probs(), theirs.get_gate_active_probs())


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_from_pretrained(name: str, kwargs: dict) -> None:
    value = torch.tensor([-2.0, -0.1, 0.3, 0.8, 3.0])
    mine = getattr(ours, name)._from_pretrained(value, **kwargs)
    theirs = getattr(captum_module, name)._from_pretrained(value, **kwargs)
    for k in mine.state_dict():
        torch.testing.assert_close(mine.state_dict()[k], theirs.state_dict()[k])
    x = torch.randn(3, 5)
    torch.testing.assert_close(mine.eval()(x), theirs.eval()(x))


@pytest.mark.parametrize("name", ["StochasticGatesBase", *(c[0] for c in CASES[::2])])
@pytest.mark.parametrize(
    "method",
    ["__init__", "forward", "get_gate_values", "get_gate_active_probs", "_from_pretrained"],
)
def test_signatures(name: str, method: str) -> None:
    import inspect

    mine, theirs = getattr(ours, name), getattr(captum_module, name)
    if not hasattr(theirs, method):
        return
    a, b = inspect.signature(getattr(mine, method)), inspect.signature(getattr(theirs, method))
    assert [(p.name, p.default, p.kind) for p in a.parameters.values()] == [
        (p.name, p.default, p.kind) for p in b.parameters.values()
    ]
