"""perspicio.robust and perspicio.module give Captum's numbers (Captum is a test oracle only)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

from perspicio import robust as ours

captum_robust = pytest.importorskip("captum.robust")


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3), nn.Softmax(dim=1)).double()


def two_inputs(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.softmax(torch.cat([a * scale, b], 1) @ torch.ones(5, 3).double().tril(1), 1)


def both(name: str, ctor: dict[str, Any], method: str, *args: Any, **kwargs: Any) -> tuple:
    """The same call through both libraries, from the same random state."""
    torch.manual_seed(7)
    mine = getattr(getattr(ours, name)(**ctor), method)(*args, **kwargs)
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(getattr(captum_robust, name)(**ctor), method)(*args, **kwargs)
    return mine, theirs


def close(a: Any, b: Any, tol: float = 1e-10) -> None:
    assert isinstance(a, tuple) == isinstance(b, tuple)
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        torch.testing.assert_close(x, y, rtol=tol, atol=tol)


X = torch.rand(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
T = [0, 2, 1, 1, 0]


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize(
    "extra",
    [{}, {"mask": (torch.rand(5, 6, generator=torch.Generator().manual_seed(2)) > 0.5).double()}],
)
@pytest.mark.parametrize("bounds", [{}, {"lower_bound": 0.1, "upper_bound": 0.8}])
def test_fgsm(targeted: bool, extra: dict, bounds: dict) -> None:
    close(*both("FGSM", {"forward_func": model(), **bounds}, "perturb", X, 0.1, T,
                targeted=targeted, **extra))  # fmt: skip


def test_fgsm_with_a_loss_func_and_tuple_inputs() -> None:
    loss = nn.NLLLoss(reduction="none")
    a, b = X[:, :3], X[:, 3:5]
    args = ((a, b), 0.05, torch.tensor(T))
    close(*both("FGSM", {"forward_func": lambda *x: two_inputs(*x).log(), "loss_func": loss},
                "perturb", *args, additional_forward_args=2.0))  # fmt: skip


@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_pgd(norm: str, targeted: bool, masked: bool) -> None:
    mask = (X > 0.3).double() if masked else None
    ctor = {"forward_func": model(), "lower_bound": 0.0, "upper_bound": 0.9}
    close(*both("PGD", ctor, "perturb", X, 0.2, 0.03, 9, T, targeted=targeted, norm=norm,
                mask=mask))  # fmt: skip


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_pgd_random_start(norm: str) -> None:
    # Captum's L2 start scales the radii along the last dim, which is right for one example
    x = X[:1] if norm == "L2" else X
    ctor = {"forward_func": model(), "lower_bound": 0.0, "upper_bound": 1.0}
    mine, theirs = both("PGD", ctor, "perturb", x, 0.2, 0.05, 4, T[: len(x)], random_start=True,
                        norm=norm)  # fmt: skip
    # Captum draws the L2 radius in float32 and raises it to 1/d there; perspicio in float64
    close(mine, theirs, tol=1e-7)


def accuracy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (out.argmax(1) == target).double()


def noise(x: torch.Tensor, std: float = 0.3) -> torch.Tensor:
    return x + std * torch.randn_like(x)


@pytest.mark.parametrize("per_eval", [1, 4])
def test_attack_comparator(per_eval: int) -> None:
    results = []
    for lib in (ours, captum_robust):
        m = model()
        c = lib.AttackComparator(m, accuracy, preproc_fn=lambda v: v * 1.5)
        c.add_attack(lib.FGSM(m), "fgsm", attack_kwargs={"epsilon": 0.2},
                     additional_attack_arg_names=["target"], apply_before_preproc=False)  # fmt: skip
        c.add_attack(noise, "noise", num_attempts=3, attack_kwargs={"std": 0.5})
        torch.manual_seed(4)
        per_batch = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(3):
                x = torch.rand(4 + i, 6, dtype=torch.float64)
                y = torch.randint(0, 3, (4 + i,))
                per_batch.append(c.evaluate(x, perturbations_per_eval=per_eval, target=y))
        results.append((per_batch, c.summary()))
    (mine, my_summary), (theirs, their_summary) = results
    # Captum orders min and max by its Summarizer's set of stats, which is not stable
    assert set(my_summary) == set(their_summary)
    for key in my_summary:
        close(my_summary[key]["mean"], their_summary[key]["mean"])
    for a, b in zip(mine, theirs):
        assert list(a) == list(b)
        close(a["Original"], b["Original"])
        for key in ("fgsm", "noise"):
            assert set(a[key]) == set(b[key])
            for stat in a[key]:
                close(a[key][stat], b[key][stat])


@pytest.mark.parametrize("mode", ["linear", "binary"])
@pytest.mark.parametrize("per_eval", [1, 3])
def test_min_param_perturbation(mode: str, per_eval: int) -> None:
    found = []
    x = X[:1]
    for lib in (ours, captum_robust):
        m = model()
        y = m(x).argmax(1)
        search = lib.MinParamPerturbation(m, lib.FGSM(m), "epsilon", 0.0, 2.0, 0.01, mode=mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found.append(search.evaluate(x, target=y, perturbations_per_eval=per_eval,
                                         attack_kwargs={"target": y}))  # fmt: skip
    (adv, value), (their_adv, their_value) = found
    assert value is not None and value == their_value
    close(adv, their_adv)


SIGNATURES = {
    "FGSM": ["__init__", "perturb"],
    "PGD": ["__init__", "perturb"],
    "AttackComparator": ["__init__", "add_attack", "evaluate", "summary", "reset"],
    "MinParamPerturbation": ["__init__", "evaluate"],
}


@pytest.mark.parametrize(
    ("name", "method"), [(n, m) for n, methods in SIGNATURES.items() for m in methods]
)
def test_signatures(name: str, method: str) -> None:
    import inspect

    a = inspect.signature(getattr(getattr(ours, name), method))
    b = inspect.signature(getattr(getattr(captum_robust, name), method))
    assert [(p.name, p.default, p.kind) for p in a.parameters.values()] == [
        (p.name, p.default, p.kind) for p in b.parameters.values()
    ]
