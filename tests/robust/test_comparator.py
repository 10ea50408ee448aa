from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.robust import FGSM, AttackComparator


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3), nn.Softmax(dim=1))


def accuracy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (out.argmax(1) == target).float()


def noise(x: torch.Tensor, std: float = 0.5) -> torch.Tensor:
    return x + std * torch.randn_like(x)


def comparator(m: nn.Module) -> AttackComparator:
    c = AttackComparator(m, accuracy)
    c.add_attack(FGSM(m), "FGSM 0.3", attack_kwargs={"epsilon": 0.3},
                 additional_attack_arg_names=["target"])  # fmt: skip
    c.add_attack(noise, "noise", num_attempts=3, attack_kwargs={"std": 0.8})
    return c


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    return [
        (torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)) for n in (6, 4, 9)
    ]


def test_summary_equals_a_manual_loop() -> None:
    m = model()
    c = comparator(m)
    torch.manual_seed(1)
    for x, y in batches():
        c.evaluate(x, target=y)
    torch.manual_seed(1)
    expected: dict[str, list[float]] = {}
    for x, y in batches():
        acc = {
            "Original": accuracy(m(x), y),
            "FGSM 0.3": accuracy(m(FGSM(m).perturb(x, 0.3, y)), y),
        }
        tries = torch.stack([accuracy(m(noise(x, 0.8)), y) for _ in range(3)])
        acc["noise Mean Attempt"] = tries.mean(0)
        acc["noise Min Attempt"] = tries.min(0).values
        acc["noise Max Attempt"] = tries.max(0).values
        for key, value in acc.items():
            expected.setdefault(key, []).append(float(value.mean()))
    summary = c.summary()
    assert list(summary) == ["Original", "FGSM 0.3", "noise Mean Attempt", "noise Min Attempt",
                             "noise Max Attempt"]  # fmt: skip
    for key, values in expected.items():
        assert summary[key]["mean"].item() == pytest.approx(sum(values) / len(values), abs=1e-6)


@pytest.mark.parametrize("per_eval", [2, 3, 5, 10])
def test_results_do_not_depend_on_perturbations_per_eval(per_eval: int) -> None:
    scale = torch.linspace(0.5, 1.5, 6)[:, None]

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model()

        def forward(self, x: torch.Tensor, s: torch.Tensor, shift: float) -> torch.Tensor:
            return self.inner(x * s + shift)

    m = Scaled()
    x, y = batches()[0]
    results = []
    for ppe in (1, per_eval):
        c = AttackComparator(m, accuracy)
        c.add_attack(noise, "noise", num_attempts=4)
        c.add_attack(lambda v: v.flip(1), "flip")
        torch.manual_seed(2)
        results.append(c.evaluate(x, (scale, 0.1), perturbations_per_eval=ppe, target=y))
    a, b = results
    torch.testing.assert_close(a["Original"], b["Original"])
    for key in ("noise", "flip"):
        assert a[key].keys() == b[key].keys()
        for stat in a[key]:
            torch.testing.assert_close(a[key][stat], b[key][stat])


def test_result_layout_tuple_metrics_and_reset() -> None:
    Pair = namedtuple("Pair", ["acc", "conf"])

    def metric(out: torch.Tensor, target: torch.Tensor) -> Pair:
        return Pair(accuracy(out, target), out.max(1).values)

    c = AttackComparator(model(), metric, preproc_fn=lambda v: v * 2)
    c.add_attack(noise, "noise", num_attempts=2)
    c.add_attack(lambda v: v + 1, "plus one", apply_before_preproc=False)
    x, y = batches()[0]
    out = c.evaluate(x, target=y)
    # as in Captum, a named tuple comes back as a named tuple of the same name and fields
    assert type(out["Original"]).__name__ == "Pair" and out["Original"].acc.shape == (6,)
    assert list(out["noise"]) == ["mean", "min", "max"]
    assert list(out["plus one"]) == ["mean"]
    expected = metric(model()(x * 2 + 1), y)
    torch.testing.assert_close(out["plus one"]["mean"].conf, expected.conf)
    assert c.summary()["Original"]["mean"]._fields == Pair._fields
    c.reset()
    assert c.summary() == {}


def test_float_metric_and_missing_attack_args() -> None:
    c = AttackComparator(model(), lambda out, target: float(accuracy(out, target).mean()))
    c.add_attack(FGSM(model()), attack_kwargs={"epsilon": 0.1}, additional_attack_arg_names=["y"])
    x, y = batches()[0]
    with pytest.warns(UserWarning, match="'y' was not given"), pytest.raises(TypeError):
        c.evaluate(x, target=y)  # FGSM then misses its target
    c2 = AttackComparator(model(), lambda out, target: float(accuracy(out, target).mean()))
    out = c2.evaluate(x, target=y)
    assert isinstance(out["Original"], torch.Tensor) and out["Original"].dim() == 0


def test_bad_arguments() -> None:
    c = comparator(model())
    with pytest.raises(ArgumentError, match="already used"):
        c.add_attack(noise, "noise")
    with pytest.raises(ArgumentError, match="num_attempts"):
        c.add_attack(noise, "other", num_attempts=0)
    with pytest.raises(ArgumentError, match="perturbations_per_eval"):
        c.evaluate(torch.zeros(2, 5), perturbations_per_eval=0, target=torch.zeros(2))
    with pytest.raises(TypeError, match="metric"):
        AttackComparator(model(), "accuracy")  # type: ignore[arg-type]
    c = AttackComparator(model(), accuracy)
    c.add_attack(lambda v: v, "identity")
    with pytest.raises(ArgumentError, match="a tensor or a tuple of tensors"):
        c.evaluate([torch.zeros(2, 5)], perturbations_per_eval=2, target=torch.zeros(2))


def test_plot_draws_one_curve_per_attack_family() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    m = model()
    c = AttackComparator(m, accuracy)
    for eps in (0.1, 0.3, 0.6):
        c.add_attack(FGSM(m), f"FGSM {eps}", attack_kwargs={"epsilon": eps},
                     additional_attack_arg_names=["target"])  # fmt: skip
    c.add_attack(noise, "noise", num_attempts=2)
    x = batches()[0][0]
    c.evaluate(x, target=m(x).argmax(1))
    ax = c.plot(strengths={"noise": 0.5})
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"FGSM", "noise"}
    assert list(lines["FGSM"].get_xdata()) == [0.0, 0.1, 0.3, 0.6]
    summary = c.summary()
    ys = [summary[k]["mean"].item() for k in ("Original", "FGSM 0.1", "FGSM 0.3", "FGSM 0.6")]
    assert list(lines["FGSM"].get_ydata()) == pytest.approx(ys)
    with pytest.raises(ArgumentError, match="strength of attack 'noise'"):
        c.plot()
    import matplotlib.pyplot as plt

    plt.close("all")


def test_attacks_run_with_gradients_enabled() -> None:
    # an attack written with plain autograd (no enable_grad of its own) still works
    m = model()

    def grad_step(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_()
        nn.functional.nll_loss(m(x).log(), target).backward()
        return (x + 0.5 * x.grad.sign()).detach()

    c = AttackComparator(m, accuracy)
    c.add_attack(grad_step, "step", additional_attack_arg_names=["target"])
    x, y = batches()[0]
    for per_eval in (1, 2):
        out = c.evaluate(x, perturbations_per_eval=per_eval, target=y)
        assert out["step"]["mean"].shape == (6,)
    m.zero_grad(set_to_none=True)
