"""infidelity: closed forms, a reference implementation, batching and bad input."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest
import torch
from torch import nn

from perspicio.attr import InputXGradient, Saliency
from perspicio.metrics import infidelity, infidelity_perturb_func_decorator
from perspicio.testing import BasicLinearModel, MultiInputModel, ReLUMLP
from tests.helpers import CountingModel

X = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))


def gaussian(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    noise = 0.3 * torch.randn_like(inputs)
    return noise, inputs - noise


@infidelity_perturb_func_decorator(True)
def drop_half(inputs: torch.Tensor, baselines: Any = None) -> torch.Tensor:
    fill = 0.0 if baselines is None else baselines
    return torch.where(torch.rand_like(inputs) < 0.5, inputs * 0 + fill, inputs)


def fixed(inputs: Any) -> Any:
    """A deterministic perturbation (the same for every sample)."""
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    ps = tuple(0.1 * x.sin() + 0.05 for x in xs)
    out = (ps, tuple(x - p for x, p in zip(xs, ps)))
    return out if isinstance(inputs, tuple) else (out[0][0], out[1][0])


def test_docstring_examples() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.metrics.infidelity")).failed == 0


def test_exact_gradient_of_a_linear_model_has_zero_infidelity() -> None:
    model = BasicLinearModel()
    grads = Saliency(model).attribute(X, target=1, abs=False)
    torch.manual_seed(0)
    result = infidelity(model, gaussian, X, grads, target=1, n_perturb_samples=20)
    assert result.shape == (4,)
    assert result.abs().max() < 1e-10


@pytest.mark.parametrize("baselines", [None, 0.5, torch.full((1, 4), -0.2)])
def test_exact_global_attributions_have_zero_infidelity_under_removal(baselines: Any) -> None:
    # For a linear model, grad * (x - baseline) summed over any removed subset equals the
    # output change, and the decorator turns the removal into a 0/1 mask.
    model = BasicLinearModel()
    ref = 0.0 if baselines is None else baselines
    attributions = model.linear.weight[2].detach() * (X - ref)
    torch.manual_seed(1)
    result = infidelity(model, drop_half, X, attributions, baselines=baselines, target=2)
    assert result.abs().max() < 1e-10


def reference(
    model: nn.Module,
    inputs: torch.Tensor,
    attributions: torch.Tensor,
    target: int,
    perturbations: list[torch.Tensor],
    normalize: bool,
) -> torch.Tensor:
    """Infidelity one example and one perturbation at a time."""
    out = []
    for i in range(len(inputs)):
        dots, diffs = [], []
        for p in perturbations:
            x = inputs[i : i + 1]
            with torch.no_grad():
                diffs.append(float(model(x)[0, target] - model(x - p[i : i + 1])[0, target]))
            dots.append(float((attributions[i] * p[i]).sum()))
        a, b = torch.tensor(dots, dtype=torch.float64), torch.tensor(diffs, dtype=torch.float64)
        beta = (a * b).sum() / (a * a).sum() if normalize else 1.0
        out.append(((beta * a - b) ** 2).mean())
    return torch.stack(out)


@pytest.mark.parametrize("normalize", [False, True])
def test_matches_a_one_at_a_time_reference(normalize: bool) -> None:
    model = ReLUMLP(in_features=4)
    attributions = torch.randn(4, 4, generator=torch.Generator().manual_seed(2))
    perturbations = [
        torch.randn(4, 4, generator=torch.Generator().manual_seed(10 + j)) for j in range(3)
    ]
    calls = iter(range(3))

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # one sample per chunk (max_examples_per_batch = batch size): sample j on call j
        p = perturbations[next(calls)]
        return p, inputs - p

    result = infidelity(
        model,
        perturb,
        X,
        attributions,
        target=0,
        n_perturb_samples=3,
        max_examples_per_batch=4,
        normalize=normalize,
    )
    expected = reference(model, X, attributions, 0, perturbations, normalize)
    torch.testing.assert_close(result.double(), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("per_batch", "passes"), [(None, 1), (8, 3)])
def test_the_unperturbed_rows_share_the_first_pass(per_batch: int | None, passes: int) -> None:
    model = CountingModel(ReLUMLP(in_features=4))
    attributions = torch.randn(4, 4, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(5)
    fused = infidelity(model, gaussian, X, attributions, target=1, n_perturb_samples=5,
                       max_examples_per_batch=per_batch)  # fmt: skip
    assert model.calls == passes  # 5 samples in chunks of 2 per example: 3 passes

    def double(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise, perturbed = gaussian(inputs)  # a dtype the inputs lack: no fusing
        return noise, perturbed.double()

    model.calls = 0
    torch.manual_seed(5)
    apart = infidelity(lambda t: model(t.float()), double, X, attributions, target=1,
                       n_perturb_samples=5, max_examples_per_batch=per_batch)  # fmt: skip
    assert model.calls == passes + 1
    torch.testing.assert_close(fused, apart)


def test_normalized_infidelity_ignores_the_attributions_scale() -> None:
    model = ReLUMLP(in_features=4)
    attributions = Saliency(model).attribute(X, target=1, abs=False)
    results = []
    for scale in (1.0, 7.0):
        torch.manual_seed(3)
        results.append(
            infidelity(model, gaussian, X, attributions * scale, target=1, normalize=True)
        )
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-7)
    torch.manual_seed(3)
    plain = infidelity(model, gaussian, X, attributions * 7.0, target=1)
    assert (plain > results[1]).all()


@pytest.mark.parametrize("mepb", [1, 4, 7, 12, 100])
@pytest.mark.parametrize("normalize", [False, True])
def test_chunk_invariance_with_a_deterministic_perturbation(mepb: int, normalize: bool) -> None:
    model = MultiInputModel()
    g = torch.Generator().manual_seed(4)
    inputs = (torch.randn(3, 4, generator=g), torch.randn(3, 3, generator=g))
    attrs = InputXGradient(model).attribute(
        inputs, target=1, additional_forward_args=(torch.ones(3),)
    )
    kw: dict[str, Any] = {
        "additional_forward_args": (torch.tensor([0.5, 1.0, 2.0]),),
        "target": [0, 1, 2],
        "n_perturb_samples": 5,
        "normalize": normalize,
    }
    full = infidelity(model, fixed, inputs, attrs, **kw)
    torch.testing.assert_close(
        infidelity(model, fixed, inputs, attrs, max_examples_per_batch=mepb, **kw), full
    )


def test_same_seed_same_result() -> None:
    model = ReLUMLP(in_features=4)
    attributions = torch.randn(4, 4)
    runs = []
    for _ in range(2):
        torch.manual_seed(9)
        runs.append(
            infidelity(model, gaussian, X, attributions, target=0, max_examples_per_batch=8)
        )
    torch.testing.assert_close(runs[0], runs[1], atol=0, rtol=0)


def test_perturb_func_gets_baselines_only_when_given() -> None:
    seen: list[tuple[int, Any]] = []

    def record(*args: Any) -> Any:
        seen.append((len(args), args[1] if len(args) > 1 else None))
        return fixed(args[0])

    model = ReLUMLP(in_features=4)
    infidelity(model, record, X, torch.ones(4, 4), target=0, n_perturb_samples=2)
    per_example = torch.arange(16.0).reshape(4, 4)
    infidelity(
        model, record, X, torch.ones(4, 4), baselines=per_example, target=0, n_perturb_samples=2
    )
    assert seen[0] == (1, None)
    assert seen[1][0] == 2
    torch.testing.assert_close(seen[1][1], per_example.repeat_interleave(2, 0))


def test_decorator_divides_by_inputs_minus_baselines() -> None:
    @infidelity_perturb_func_decorator(True)
    def halve(x: torch.Tensor, baselines: Any = None) -> torch.Tensor:
        return x / 2

    x = torch.tensor([[2.0, 0.0, 4.0]])
    pert, perturbed = halve(x)
    torch.testing.assert_close(pert[0], torch.tensor([[0.5, 0.0, 0.5]]))  # 0/0 counts as 0/1
    torch.testing.assert_close(perturbed[0], x / 2)
    pert, _ = halve(x, torch.tensor([[1.0, 0.0, 2.0]]))
    torch.testing.assert_close(pert[0], torch.tensor([[1.0, 0.0, 1.0]]))


def test_decorator_without_multiplying_returns_the_difference() -> None:
    @infidelity_perturb_func_decorator(False)
    def shift(xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(x - 0.25 for x in xs)

    pert, perturbed = shift((torch.zeros(1, 2), torch.ones(1, 3)))
    assert [p.tolist() for p in pert] == [[[0.25, 0.25]], [[0.25, 0.25, 0.25]]]
    assert len(perturbed) == 2


BAD = [
    (
        {"attributions": torch.ones(4, 3)},
        ValueError,
        r"attributions\[0\] has shape \(4, 3\) but inputs\[0\] has shape \(4, 4\)",
    ),
    (
        {"attributions": (torch.ones(4, 4), torch.ones(4, 4))},
        ValueError,
        "attributions has 2 tensors but inputs has 1",
    ),
    ({"n_perturb_samples": 0}, ValueError, "n_perturb_samples must be at least 1, got 0"),
    ({"n_perturb_samples": 1.5}, TypeError, "n_perturb_samples must be an int"),
    ({"max_examples_per_batch": 0}, ValueError, "max_examples_per_batch must be at least 1"),
    ({"target": [0, 1]}, ValueError, "target gives 2 indices but the batch has 4"),
    ({"baselines": torch.ones(2, 4)}, ValueError, r"baselines\[0\] has shape \(2, 4\)"),
]


@pytest.mark.parametrize(("override", "error", "message"), BAD)
def test_bad_input_is_rejected_before_the_model_runs(
    override: dict[str, Any], error: type, message: str
) -> None:
    model = CountingModel(ReLUMLP(in_features=4))
    kwargs: dict[str, Any] = {"attributions": torch.ones(4, 4), "target": 0, **override}
    attributions = kwargs.pop("attributions")
    with pytest.raises(error, match=message):
        infidelity(model, gaussian, X, attributions, **kwargs)
    assert model.calls == 0


@pytest.mark.parametrize(
    ("perturb", "message"),
    [
        (lambda x: x - 0.1, r"perturb_func must return \(perturbations, perturbed_inputs\)"),
        (
            lambda x: (torch.ones(8, 3), x),
            r"perturbations\[0\] of shape \(8, 3\) for inputs of shape \(8, 4\)",
        ),
    ],
)
def test_bad_perturb_func_output(perturb: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        infidelity(
            ReLUMLP(in_features=4), perturb, X, torch.ones(4, 4), target=0, n_perturb_samples=2
        )


def _noise(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    noise = torch.randn_like(inputs) * 0.1
    return noise, inputs - noise


def test_scalar_output_model_is_refused_with_the_reason() -> None:
    mlp, x = ReLUMLP(), torch.randn(3, 6)
    with pytest.raises(ValueError, match=r"one model output per example.*shape \(\)"):
        infidelity(lambda v: mlp(v).sum(), _noise, x, torch.randn(3, 6))


@pytest.mark.parametrize(
    ("perturb", "what"),
    [
        (lambda x: (torch.randn(2, 6), x[:2]), r"perturbations\[0\] of shape \(2, 6\)"),
        (lambda x: (x * 0, x[:, :5]), r"perturbed inputs\[0\] of shape \(30, 5\)"),
    ],
)
def test_perturb_func_of_the_wrong_shape_is_named(perturb: Any, what: str) -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(ValueError, match=what + r" for inputs of shape \(30, 6\)"):
        infidelity(model, perturb, torch.randn(3, 6), torch.randn(3, 6), target=0)
    assert model.calls == 0
