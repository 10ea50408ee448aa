"""LimeBase, Lime and Captum's LIME helper functions (perturbation/lime.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio._core.masks import FeatureGroups
from perspicio.attr import Lime, LimeBase
from perspicio.models import SkLearnLasso, TorchLasso, TorchLinearRegression
from perspicio.perturbation import lime_functions as lime_mod
from perspicio.perturbation.coalitions import Coalitions, Problem, bernoulli
from perspicio.testing import BasicLinearModel, MultiInputModel, ReLUMLP
from tests.helpers import CountingModel


def _x(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _linear_lime(model: nn.Module) -> Lime:
    return Lime(model, interpretable_model=TorchLinearRegression())


# --- closed forms --------------------------------------------------------------------------


@pytest.mark.parametrize("baselines", [None, 0.5, "tensor"])
def test_linear_surrogate_of_linear_model_is_weight_times_difference(baselines: Any) -> None:
    model = BasicLinearModel()
    x = _x(3, 4)
    base = torch.linspace(-1, 1, 4).reshape(1, 4) if baselines == "tensor" else baselines
    attr = _linear_lime(model).attribute(x, baselines=base, target=2, n_samples=40)
    b = 0.0 if base is None else base
    expected = model.linear.weight[2].detach() * (x - b)
    torch.testing.assert_close(attr, expected, atol=1e-4, rtol=1e-4)


def test_feature_groups_spanning_inputs_share_one_coefficient() -> None:
    model = MultiInputModel()
    x = (_x(2, 4, seed=1), _x(2, 3, seed=2))
    mask = (torch.tensor([[0, 1, 1, 2]]), torch.tensor([[2, 3, 0]]))
    torch.manual_seed(0)
    a, b = Lime(model).attribute(x, target=1, feature_mask=mask, n_samples=30)
    assert a.shape == (2, 4) and b.shape == (2, 3)
    torch.testing.assert_close(a[:, 0], b[:, 2])  # id 0 in both tensors
    torch.testing.assert_close(a[:, 3], b[:, 0])  # id 2
    torch.testing.assert_close(a[:, 1], a[:, 2])  # id 1
    torch.manual_seed(0)
    coefs = Lime(model).attribute(
        x, target=1, feature_mask=mask, n_samples=30, return_input_shape=False
    )
    assert coefs.shape == (2, 4)
    torch.testing.assert_close(coefs[:, 0], a[:, 0])
    torch.testing.assert_close(coefs[:, 3], b[:, 1])


def test_per_example_masks() -> None:
    model = BasicLinearModel()
    x = _x(2, 4, seed=3)
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    attr = _linear_lime(model).attribute(x, target=0, feature_mask=mask, n_samples=20)
    contrib = model.linear.weight[0].detach() * x
    torch.testing.assert_close(attr[0, :2], contrib[0, :2].sum().expand(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(attr[1, 1:], contrib[1, 1:].sum().expand(3), atol=1e-4, rtol=0)


def test_mask_ids_are_shifted_and_gaps_get_zero() -> None:
    model = BasicLinearModel()
    x = _x(1, 4, seed=4)
    mask = torch.tensor([[3, 3, 7, 5]])  # ids 3, 5, 7: Captum shifts to 0, 2, 4
    lime = _linear_lime(model)
    coefs = lime.attribute(x, target=0, feature_mask=mask, n_samples=20, return_input_shape=False)
    assert coefs.shape == (1, 5)
    assert coefs[0, 1] == 0 and coefs[0, 3] == 0
    contrib = model.linear.weight[0].detach() * x[0]
    expected = torch.stack([contrib[:2].sum(), contrib[3], contrib[2]])
    torch.testing.assert_close(coefs[0, [0, 2, 4]], expected, atol=1e-4, rtol=0)


def test_forward_returning_one_value_for_the_batch_fits_one_surrogate() -> None:
    model = BasicLinearModel()
    x = _x(3, 4, seed=5)
    lime = _linear_lime(lambda inp: model(inp)[:, 0].sum())
    attr = lime.attribute(x, n_samples=20)
    assert attr.shape == (1, 4)
    # one coalition switches a feature off in every example: its column sum times the weight
    torch.testing.assert_close(
        attr[0], model.linear.weight[0].detach() * x.sum(0), atol=1e-4, rtol=0
    )
    coefs = lime.attribute(x, n_samples=20, return_input_shape=False)
    assert coefs.shape == (1, 4)


def test_per_example_targets_and_additional_args() -> None:
    model = BasicLinearModel()
    x, scale = _x(3, 4, seed=6), torch.tensor([0.5, 1.0, 2.0])
    lime = _linear_lime(lambda inp, s: model(inp) * s.unsqueeze(1))
    attr = lime.attribute(x, target=[0, 2, 1], additional_forward_args=(scale,), n_samples=25)
    weights = model.linear.weight.detach()[[0, 2, 1]]
    torch.testing.assert_close(attr, weights * scale.unsqueeze(1) * x, atol=1e-4, rtol=1e-4)


def test_callable_target() -> None:
    model = ReLUMLP()
    x = _x(2, 6, seed=8)
    torch.manual_seed(0)
    a = Lime(model).attribute(x, target=lambda out: out[:, 1], n_samples=20)
    torch.manual_seed(0)
    b = Lime(model).attribute(x, target=1, n_samples=20)
    torch.testing.assert_close(a, b)


# --- defaults: batched path equals Captum's one-sample protocol ----------------------------


def _problem(x: Tensor, base: float, mask: Tensor | None, n: int, rows: int) -> Problem:
    from perspicio._core.call import build_call

    call = build_call(x, 0, None, base, use_baselines=True)
    masks, width = lime_mod.construct_feature_mask(mask, call.inputs)
    return Problem(call, masks, FeatureGroups.build(masks, call.inputs), width, n, rows)


@pytest.mark.parametrize("mode", ["cosine", "euclidean"])
@pytest.mark.parametrize("rows", [3, 1])
def test_batched_kernel_and_inputs_equal_per_sample_helpers(mode: str, rows: int) -> None:
    x = _x(3, 6, seed=9)
    mask = torch.tensor([[0, 0, 1, 2, 2, 1]])
    p = _problem(x, 0.3, mask, 7, rows)
    torch.manual_seed(0)
    z = bernoulli(p)
    kernel = lime_mod.get_exp_kernel_similarity_function(mode, kernel_width=0.7)
    weights = kernel.batched(
        x=p.call.inputs, base=p.call.expanded_baselines(), groups=p.groups, z=z, rows=rows
    )  # type: ignore[attr-defined]
    assert z.shape == (1, 7, 3) and weights.shape == (rows, 7)
    stacked = Coalitions(p, z).inputs(0, 7)[0].reshape(7, 3, 6)
    for r in range(rows):
        inp = x if rows == 1 else x[r : r + 1]
        for s in range(7):
            sample = z[0, s].long().unsqueeze(0)
            pert = lime_mod.default_from_interp_rep_transform(
                sample, inp, feature_mask=mask, baselines=torch.tensor(0.3)
            )
            got = stacked[s] if rows == 1 else stacked[s, r : r + 1]
            torch.testing.assert_close(got, pert)
            expected = kernel(inp, pert, sample)
            assert float(weights[r, s]) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_similarity_function_values() -> None:
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    cos = lime_mod.get_exp_kernel_similarity_function()
    assert cos(a, b, None) == pytest.approx(math.exp(-0.5))  # cosine distance 1
    euc = lime_mod.get_exp_kernel_similarity_function("euclidean", kernel_width=2.0)
    assert euc((a, a), (b, a), None) == pytest.approx(math.exp(-2 / 8))
    with pytest.raises(ValueError, match="distance_mode"):
        lime_mod.get_exp_kernel_similarity_function("manhattan")


def test_default_perturb_func() -> None:
    torch.manual_seed(0)
    z = lime_mod.default_perturb_func(torch.zeros(1, 3), num_interp_features=500)
    assert z.shape == (1, 500) and z.dtype == torch.long
    assert set(z.unique().tolist()) == {0, 1} and 200 < int(z.sum()) < 300
    with pytest.raises(ValueError, match="num_interp_features"):
        lime_mod.default_perturb_func(torch.zeros(1, 3))


def test_default_from_interp_rep_transform_tuple() -> None:
    x = (torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0]]))
    mask = (torch.tensor([[0, 1]]), torch.tensor([[1]]))
    out = lime_mod.default_from_interp_rep_transform(
        torch.tensor([[1, 0]]), x, feature_mask=mask, baselines=(-1.0, -2.0)
    )
    torch.testing.assert_close(out[0], torch.tensor([[1.0, -1.0]]))
    torch.testing.assert_close(out[1], torch.tensor([[-2.0]]))
    with pytest.raises(ValueError, match="feature_mask and baselines"):
        lime_mod.default_from_interp_rep_transform(torch.ones(1, 2), x[0])


def test_construct_feature_mask() -> None:
    x = (torch.zeros(2, 3), torch.zeros(2, 2, 2))
    masks, n = lime_mod.construct_feature_mask(None, x)
    assert n == 7 and masks[1].tolist() == [[[3, 4], [5, 6]]]
    masks, n = lime_mod.construct_feature_mask((torch.tensor([[2, 3, 4]]), torch.tensor(5)), x)
    assert n == 4 and masks[0].tolist() == [[0, 1, 2]] and int(masks[1].max()) == 3


# --- user functions (Captum's one-sample protocol) ----------------------------------------


def test_custom_perturb_generator_and_similarity() -> None:
    model = BasicLinearModel()
    x = _x(2, 4, seed=10)
    seen: list[dict[str, Any]] = []

    def coalitions(inp: Tensor, **kwargs: Any) -> Any:
        seen.append(kwargs)
        for bits in ([1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]):
            yield torch.tensor([bits])

    lime = Lime(
        model,
        interpretable_model=TorchLinearRegression(),
        similarity_func=lambda a, b, z, **kw: 1.0,
        perturb_func=coalitions,
    )
    with pytest.warns(UserWarning, match="stopped after 5 of n_samples=9"):
        attr = lime.attribute(x, target=0, n_samples=9, baselines=0.2)
    expected = model.linear.weight[0].detach() * (x - 0.2)
    torch.testing.assert_close(attr, expected, atol=1e-5, rtol=1e-5)
    assert len(seen) == 2 and seen[0]["num_interp_features"] == 4
    assert seen[0]["baselines"].shape == (1, 1) and seen[0]["feature_mask"].shape == (1, 4)


def test_custom_perturb_matches_default_path_on_the_same_samples() -> None:
    model = ReLUMLP()
    x = _x(1, 6, seed=11)
    torch.manual_seed(5)
    fast = Lime(model).attribute(x, target=1, n_samples=30)
    torch.manual_seed(5)
    z = bernoulli(_problem(x, 0.0, None, 30, 1))[0]  # the same draw as the fast path's
    it = iter(z.long())
    slow = Lime(model, perturb_func=lambda inp, **kw: next(it).unsqueeze(0)).attribute(
        x, target=1, n_samples=30
    )
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)


def test_lime_base_in_input_space() -> None:
    model = BasicLinearModel()
    x = _x(1, 4, seed=12)
    calls = {"to": 0}

    def perturb(inp: Tensor, **kwargs: Any) -> Tensor:
        return inp * (torch.rand(1, 4) < 0.5)

    def to_interp(sample: Tensor, inp: Tensor, **kwargs: Any) -> Tensor:
        calls["to"] += 1
        assert kwargs == {"extra": 7}
        return (sample != 0).float()

    base = LimeBase(
        lambda t: model(t)[:, 0], TorchLinearRegression(), lambda *a, **k: 1.0, perturb,
        False, None, to_interp,
    )  # fmt: skip
    torch.manual_seed(0)
    rep = base.attribute(x, n_samples=30, extra=7)
    assert calls["to"] == 30
    torch.testing.assert_close(rep, model.linear.weight[0:1].detach() * x, atol=1e-4, rtol=0)


def test_lime_base_needs_one_value_for_the_whole_input() -> None:
    model = ReLUMLP()
    base = LimeBase(
        model, TorchLinearRegression(), lambda *a, **k: 1.0,
        lambda inp, **k: torch.ones(1, 6), True, lambda z, inp, **k: inp * z, None,
    )  # fmt: skip
    with pytest.raises(ValueError, match="LimeBase fits one model"):
        base.attribute(_x(3, 6), target=0, n_samples=4)


@pytest.mark.parametrize(
    ("space", "kw", "match"),
    [
        (True, {"from_interp_rep_transform": None}, "needs from_interp_rep_transform"),
        (False, {"to_interp_rep_transform": None}, "needs to_interp_rep_transform"),
    ],
)
def test_lime_base_transform_errors(space: bool, kw: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "from_interp_rep_transform": lambda *a, **k: a[1],
        "to_interp_rep_transform": lambda *a, **k: a[0],
    }
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        LimeBase(
            ReLUMLP(), TorchLinearRegression(), lambda *a, **k: 1.0, lambda *a, **k: None,
            space, args["from_interp_rep_transform"], args["to_interp_rep_transform"],
        )  # fmt: skip


# --- surrogate models -----------------------------------------------------------------------


def test_default_surrogate_is_torch_lasso_and_matches_sklearn_lasso() -> None:
    pytest.importorskip("sklearn")
    model = ReLUMLP()
    x = _x(3, 6, seed=13)
    lime = Lime(model)
    assert isinstance(lime.interpretable_model, TorchLasso)
    assert lime.interpretable_model.alpha == 0.01
    torch.manual_seed(2)
    ours = lime.attribute(x, target=0, n_samples=200)
    torch.manual_seed(2)
    theirs = Lime(model, interpretable_model=SkLearnLasso(alpha=0.01)).attribute(
        x, target=0, n_samples=200
    )
    torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=0)


# --- batching, determinism, progress, futures --------------------------------------------


@pytest.mark.parametrize("per_eval", [1, 3, 7, None])
def test_results_do_not_depend_on_perturbations_per_eval(per_eval: int | None) -> None:
    model = ReLUMLP()
    x = _x(4, 6, seed=14)
    torch.manual_seed(3)
    auto = Lime(model).attribute(x, target=2, n_samples=20)
    torch.manual_seed(3)
    chunked = Lime(model).attribute(x, target=2, n_samples=20, perturbations_per_eval=per_eval)
    torch.testing.assert_close(auto, chunked)


def test_explicit_per_eval_greater_than_one_with_batch_scalar_output_errors() -> None:
    model = ReLUMLP()
    lime = Lime(lambda t: model(t)[:, 0].sum())
    with pytest.raises(ValueError, match="perturbations_per_eval=3"):
        lime.attribute(_x(3, 6), n_samples=6, perturbations_per_eval=3)


def test_forward_passes_are_batched() -> None:
    model = CountingModel(ReLUMLP())
    Lime(model).attribute(_x(4, 6), target=0, n_samples=50)
    assert model.calls == 3  # the output-form check, the unperturbed batch, all samples
    model.calls = 0
    Lime(model).attribute(_x(4, 6), target=0, n_samples=50, perturbations_per_eval=20)
    assert model.calls == 2 + 3


def test_show_progress(capsys: pytest.CaptureFixture[str]) -> None:
    Lime(ReLUMLP()).attribute(_x(2, 6), target=0, n_samples=10, show_progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rLime attribution: ") and "10/10" in err


def test_attribute_future() -> None:
    model = ReLUMLP()

    def remote(x: Tensor) -> torch.futures.Future[Tensor]:
        fut: torch.futures.Future[Tensor] = torch.futures.Future()
        fut.set_result(model(x))
        return fut

    x = _x(3, 6, seed=15)
    torch.manual_seed(4)
    fut = Lime(remote).attribute_future(x, target=1, n_samples=15)
    assert isinstance(fut, torch._C.Future)
    torch.manual_seed(4)
    torch.testing.assert_close(fut.wait(), Lime(model).attribute(x, target=1, n_samples=15))
    with pytest.raises(TypeError, match="attribute_future"):
        Lime(remote).attribute(x, target=1, n_samples=5)
    with pytest.raises(TypeError, match="returns a torch.futures.Future"):
        Lime(model).attribute_future(x, target=1, n_samples=5)


def test_lime_base_attribute_future() -> None:
    model = BasicLinearModel()

    def remote(x: Tensor) -> torch.futures.Future[Tensor]:
        fut: torch.futures.Future[Tensor] = torch.futures.Future()
        fut.set_result(model(x)[:, 0])
        return fut

    base = LimeBase(
        remote, TorchLinearRegression(), lambda *a, **k: 1.0,
        lambda inp, **k: (torch.rand(1, 4) < 0.5).float(), True, lambda z, inp, **k: inp * z,
        None,
    )  # fmt: skip
    x = _x(1, 4, seed=16)
    rep = base.attribute_future(x, n_samples=20).wait()
    torch.testing.assert_close(rep, model.linear.weight[0:1].detach() * x, atol=1e-4, rtol=0)


def test_same_seed_same_result_and_rng_is_used() -> None:
    lime = Lime(ReLUMLP(), interpretable_model=TorchLinearRegression())
    x = _x(2, 6, seed=17)
    torch.manual_seed(9)
    a = lime.attribute(x, target=0, n_samples=15)
    torch.manual_seed(9)
    b = lime.attribute(x, target=0, n_samples=15)
    c = lime.attribute(x, target=0, n_samples=15)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.equal(a, c)


def test_an_example_gets_the_result_it_gets_alone() -> None:
    """The coalitions are shared by the batch: with the same seed, an example's attributions
    do not depend on the other examples."""
    model, x = ReLUMLP(), _x(5, 6, seed=18)
    for surrogate in (None, TorchLinearRegression()):
        lime = Lime(model, interpretable_model=surrogate)
        torch.manual_seed(3)
        batch = lime.attribute(x, target=1, n_samples=40)
        for i in (0, 3):
            torch.manual_seed(3)
            alone = lime.attribute(x[i : i + 1], target=1, n_samples=40)
            # (the lasso iterates until every row converges: its rows agree to the tolerance)
            torch.testing.assert_close(batch[i : i + 1], alone, atol=1e-4, rtol=1e-4)


def test_properties() -> None:
    lime = Lime(ReLUMLP())
    assert not lime.has_convergence_delta()
    assert not lime.multiplies_by_inputs
    assert Lime.get_name() == "Lime"


# --- bad input: clear errors before any model call ---------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_samples": 0}, ValueError, "n_samples must be at least 1"),
        ({"n_samples": 2.5}, TypeError, "n_samples must be an int"),
        ({"feature_mask": torch.zeros(1, 5, dtype=torch.long)}, ValueError, "does not broadcast"),
        ({"feature_mask": torch.full((1, 6), 0.5)}, ValueError, "integer feature ids"),
        ({"feature_mask": torch.zeros(2, 6, dtype=torch.long)}, ValueError, "does not broadcast"),
        ({"perturbations_per_eval": 0}, ValueError, "perturbations_per_eval must be at least 1"),
        ({"baselines": torch.zeros(5)}, ValueError, "baselines"),
        ({"target": [0, 1]}, ValueError, "target gives 2 indices"),
    ],
)
def test_bad_input_raises_before_any_model_call(
    kwargs: dict[str, Any], error: type, match: str
) -> None:
    model = CountingModel(ReLUMLP())
    args = {"target": 0, **kwargs}
    with pytest.raises(error, match=match):
        Lime(model).attribute(_x(3, 6), **args)
    assert model.calls == 0


def test_output_without_target_for_several_classes_errors() -> None:
    with pytest.raises(ValueError, match="3 value\\(s\\) per perturbed input where 1"):
        Lime(ReLUMLP()).attribute(_x(1, 6), n_samples=4)
    with pytest.raises(ValueError, match="one value per example"):
        Lime(lambda t: ReLUMLP()(t)[:2]).attribute(_x(3, 6), n_samples=4)
