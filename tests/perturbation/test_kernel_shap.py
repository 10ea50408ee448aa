"""KernelShap: efficiency, convergence to exact Shapley values, Captum's helpers."""

from __future__ import annotations

from itertools import combinations
from math import factorial
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio.attr import KernelShap
from perspicio.models import ShapleyLinearRegression
from perspicio.perturbation.kernel_shap import _shapley_coalitions, _size_distribution
from perspicio.testing import BasicLinearModel, ConvNet, MultiInputModel, ReLUMLP
from tests.helpers import CountingModel


def _x(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


class Game(nn.Module):
    """A small model with interactions between its four inputs."""

    def forward(self, x: Tensor) -> Tensor:
        a, b, c, d = x.unbind(1)
        return a * b + torch.relu(c) * d + torch.sin(b + d) + 0.5 * a


def brute_force_shapley(model: nn.Module, x: Tensor, base: Tensor) -> Tensor:
    """Exact Shapley values of one example by enumerating every coalition."""
    m = x.shape[1]

    def value(s: tuple[int, ...]) -> float:
        point = base.clone()
        point[0, list(s)] = x[0, list(s)]
        return float(model(point)[0])

    phi = torch.zeros(m)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for k in range(m):
            for s in combinations(others, k):
                weight = factorial(k) * factorial(m - k - 1) / factorial(m)
                phi[i] += weight * (value(tuple(sorted((*s, i)))) - value(s))
    return phi


@pytest.mark.parametrize("n_samples", [2, 5, 40])
def test_efficiency_holds_exactly(n_samples: int) -> None:
    model = ReLUMLP()
    x = _x(4, 6, seed=1)
    base = torch.full((1, 6), 0.3)
    torch.manual_seed(0)
    attr = KernelShap(model).attribute(x, baselines=base, target=1, n_samples=n_samples)
    gap = model(x)[:, 1] - model(base)[:, 1]
    torch.testing.assert_close(attr.sum(1), gap.detach(), atol=1e-5, rtol=0)


def test_efficiency_with_groups_across_inputs() -> None:
    model = MultiInputModel()
    x = (_x(3, 4, seed=2), _x(3, 3, seed=3))
    mask = (torch.tensor([[0, 1, 1, 2]]), torch.tensor([[2, 3, 0]]))
    scale = torch.tensor([0.5, 1.0, 2.0])
    torch.manual_seed(0)
    a, b = KernelShap(model).attribute(
        x, target=2, feature_mask=mask, additional_forward_args=(scale,), n_samples=10
    )
    coefs = a[:, [0, 1, 3]].sum(1) + b[:, 1]  # one value per group
    gap = model(*x, scale)[:, 2] - model(torch.zeros(1, 4), torch.zeros(1, 3), scale)[:, 2]
    torch.testing.assert_close(coefs, gap.detach(), atol=1e-5, rtol=0)


def test_efficiency_on_images_with_per_example_masks() -> None:
    model = ConvNet()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    mask = torch.stack(
        [torch.arange(64).reshape(1, 8, 8) // 16, torch.arange(64).reshape(1, 8, 8) % 4]
    )
    torch.manual_seed(0)
    coefs = KernelShap(model).attribute(
        x, target=5, feature_mask=mask, n_samples=20, return_input_shape=False
    )
    assert coefs.shape == (2, 4)
    gap = model(x)[:, 5] - model(torch.zeros_like(x))[:, 5]
    torch.testing.assert_close(coefs.sum(1), gap.detach(), atol=1e-5, rtol=0)


def test_linear_model_gets_weight_times_difference() -> None:
    model = BasicLinearModel()
    x = _x(3, 4, seed=5)
    torch.manual_seed(0)
    attr = KernelShap(model).attribute(x, baselines=-0.5, target=0, n_samples=30)
    torch.testing.assert_close(attr, model.linear.weight[0].detach() * (x + 0.5), atol=1e-5, rtol=0)


def test_converges_to_brute_force_shapley_values() -> None:
    model = Game()
    x, base = _x(1, 4, seed=6), _x(1, 4, seed=7)
    exact = brute_force_shapley(model, x, base)
    errors = []
    for n in (20, 3000):
        torch.manual_seed(1)
        attr = KernelShap(model).attribute(x, baselines=base, n_samples=n)
        errors.append(float((attr[0] - exact).abs().max()))
    assert errors[1] < errors[0]
    assert errors[1] < 0.06 * float(exact.abs().max())  # Monte Carlo error ~ 1/sqrt(n)


def test_single_feature_gets_the_whole_difference() -> None:
    model = CountingModel(ReLUMLP())
    x = _x(2, 6, seed=8)
    attr = KernelShap(model).attribute(
        x, target=0, feature_mask=torch.zeros(1, 6, dtype=torch.long), n_samples=25
    )
    gap = model(x)[:, 0] - model(torch.zeros(1, 6))[:, 0]
    torch.testing.assert_close(attr[:, 0], gap.detach(), atol=1e-5, rtol=0)
    assert model.calls == 3 + 2  # two samples suffice for one feature


def test_batch_scalar_output_fits_one_model() -> None:
    model = ReLUMLP()
    x = _x(3, 6, seed=9)
    total = lambda inp: model(inp)[:, 0].sum()  # noqa: E731
    torch.manual_seed(0)
    attr = KernelShap(total).attribute(x, n_samples=20)
    assert attr.shape == (1, 6)
    torch.testing.assert_close(attr.sum(), total(x) - total(torch.zeros_like(x)), atol=1e-5, rtol=0)


def test_coalition_sampling_follows_the_shapley_kernel() -> None:
    from perspicio._core.call import build_call
    from perspicio._core.masks import FeatureGroups
    from perspicio.perturbation.coalitions import Problem
    from perspicio.perturbation.lime_functions import construct_feature_mask

    call = build_call(torch.zeros(2, 6), None, None, None, use_baselines=True)
    masks, width = construct_feature_mask(None, call.inputs)
    p = Problem(call, masks, FeatureGroups.build(masks, call.inputs), width, 20000, 2)
    torch.manual_seed(0)
    z = _shapley_coalitions(p)
    assert z.shape == (1, 20000, 6)  # shared by the two surrogates
    assert z[:, 0].all() and not z[:, 1].any()
    sizes = z[:, 2:].sum(2).reshape(-1)
    freq = torch.bincount(sizes, minlength=7).double() / sizes.numel()
    expected = _size_distribution(6).probs
    torch.testing.assert_close(freq[:6], expected, atol=0.01, rtol=0)
    assert freq[6] == 0
    per_feature = z[:, 2:].double().mean((0, 1))  # symmetric across features
    assert float(per_feature.max() - per_feature.min()) < 0.02


def test_an_example_gets_the_result_it_gets_alone() -> None:
    """Shared coalitions: with the same seed, the batch does not change an example's result."""
    model, x = ReLUMLP(), _x(5, 6, seed=19)
    torch.manual_seed(4)
    batch = KernelShap(model).attribute(x, target=1, n_samples=40)
    for i in (0, 4):
        torch.manual_seed(4)
        alone = KernelShap(model).attribute(x[i : i + 1], target=1, n_samples=40)
        torch.testing.assert_close(batch[i : i + 1], alone, atol=1e-5, rtol=1e-5)


def test_captum_helpers() -> None:
    ks = KernelShap(ReLUMLP())
    assert isinstance(ks.interpretable_model, ShapleyLinearRegression)
    assert ks.inf_weight == 1e6
    full = ks.kernel_shap_similarity_kernel(None, None, torch.ones(1, 4), num_interp_features=4)
    some = ks.kernel_shap_similarity_kernel(
        None, None, torch.tensor([[1, 0, 1, 0]]), num_interp_features=4
    )
    assert full.tolist() == [1e6] and some.tolist() == [1.0]
    torch.manual_seed(0)
    gen = ks.kernel_shap_perturb_generator(torch.zeros(1, 5), num_interp_features=5)
    first = [next(gen) for _ in range(50)]
    assert first[0].tolist() == [[1] * 5] and first[1].tolist() == [[0] * 5]
    assert all(0 < int(s.sum()) < 5 and s.shape == (1, 5) for s in first[2:])
    with pytest.raises(ValueError, match="num_interp_features"):
        next(ks.kernel_shap_perturb_generator(torch.zeros(1, 5)))
    with pytest.raises(ValueError, match="num_interp_features"):
        ks.kernel_shap_similarity_kernel(None, None, torch.ones(1, 4))


def test_overridden_generator_uses_the_one_sample_protocol() -> None:
    seen: list[dict[str, Any]] = []

    class Enumerating(KernelShap):
        def kernel_shap_perturb_generator(self, original_inp: Any, **kwargs: Any) -> Any:
            seen.append(kwargs)
            m = kwargs["num_interp_features"]
            for k in range(2**m):
                yield torch.tensor([[(k >> j) & 1 for j in range(m)]])

    model = Game()
    x, base = _x(1, 4, seed=6), _x(1, 4, seed=7)
    attr = Enumerating(model).attribute(x, baselines=base, n_samples=16)
    assert "num_select_distribution" in seen[0]
    torch.testing.assert_close(attr.sum(), model(x)[0] - model(base)[0], atol=1e-5, rtol=0)


def test_attribute_future() -> None:
    model = ReLUMLP()

    def remote(x: Tensor) -> Any:
        fut: torch.futures.Future[Tensor] = torch.futures.Future()
        fut.set_result(model(x))
        return fut

    x = _x(3, 6, seed=10)
    torch.manual_seed(2)
    got = KernelShap(remote).attribute_future(x, target=0, n_samples=12).wait()
    torch.manual_seed(2)
    torch.testing.assert_close(got, KernelShap(model).attribute(x, target=0, n_samples=12))


@pytest.mark.parametrize("per_eval", [1, 4, None])
def test_results_do_not_depend_on_perturbations_per_eval(per_eval: int | None) -> None:
    model = ReLUMLP()
    x = _x(3, 6, seed=11)
    torch.manual_seed(3)
    auto = KernelShap(model).attribute(x, target=2, n_samples=14)
    torch.manual_seed(3)
    other = KernelShap(model).attribute(x, target=2, n_samples=14, perturbations_per_eval=per_eval)
    torch.testing.assert_close(auto, other)


@pytest.mark.parametrize(
    ("n_samples", "error", "match"),
    [
        (1, ValueError, "n_samples >= 2"),
        (0, ValueError, "at least 1"),
        ("10", TypeError, "must be an int"),
    ],
)
def test_too_few_samples(n_samples: Any, error: type, match: str) -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(error, match=match):
        KernelShap(model).attribute(_x(2, 6), target=0, n_samples=n_samples)
    with pytest.raises(error, match=match):
        KernelShap(model).attribute_future(_x(2, 6), target=0, n_samples=n_samples)
    assert model.calls == 0


@pytest.mark.parametrize(
    ("where", "kw"),
    [
        ("inputs[0]", {"inputs": torch.tensor([[0.0, float("nan"), 1.0, 2.0]])}),
        ("inputs[0]", {"inputs": torch.tensor([[0.0, float("inf"), 1.0, 2.0]])}),
        ("baselines[0]", {"inputs": torch.ones(1, 4), "baselines": float("nan")}),
        ("baselines[0]", {"inputs": torch.ones(1, 4), "baselines": torch.full((1, 4), -torch.inf)}),
    ],
)
def test_nan_or_inf_inputs_and_baselines_are_refused_first(where: str, kw: dict[str, Any]) -> None:
    model = CountingModel(BasicLinearModel())
    with pytest.raises(ValueError, match=rf"{where.replace('[', '.').replace(']', '.')} holds NaN"):
        KernelShap(model).attribute(**kw, target=0, n_samples=20)
    assert model.calls == 0


@pytest.mark.parametrize("wrap", [lambda y: (y, y), lambda y: {"logits": y}])
@pytest.mark.parametrize("batch", [1, 3])
def test_tuple_or_dict_model_outputs_are_named(wrap: Any, batch: int) -> None:
    from perspicio.attr import Lime

    mlp = ReLUMLP()
    kind = type(wrap(torch.zeros(1))).__name__
    for cls in (Lime, KernelShap):
        with pytest.raises(TypeError, match=f"forward_func returned a {kind}: perturbation"):
            cls(lambda x: wrap(mlp(x))).attribute(torch.randn(batch, 6), target=0, n_samples=20)
