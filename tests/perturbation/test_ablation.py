from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio._core.sweep import AUTO
from perspicio.attr import FeatureAblation, Occlusion
from perspicio.testing import BasicLinearModel, ConvNet, MultiInputModel, ReLUMLP
from tests.helpers import CountingModel


def future_of(model: nn.Module) -> Any:
    def remote(*args: Any) -> torch.futures.Future[Tensor]:
        fut: torch.futures.Future[Tensor] = torch.futures.Future()
        fut.set_result(model(*args))
        return fut

    return remote


def ablation_reference(f: Any, x: Tensor, mask: Tensor, baseline: Tensor | float) -> Tensor:
    """One group at a time, one example at a time: the obviously correct version."""
    out = torch.zeros_like(x)
    with torch.no_grad():
        for n in range(len(x)):
            xn = x[n : n + 1]
            mn = mask[n] if mask.shape[0] > 1 else mask[0]
            bn = baseline[n : n + 1] if isinstance(baseline, Tensor) else baseline
            base = f(xn)
            for g in mn.unique():
                sel = (mn == g).expand_as(xn[0]).unsqueeze(0)
                ablated = torch.where(sel, torch.as_tensor(bn).expand_as(xn), xn)
                out[n][sel[0]] = (base - f(ablated)).item()
    return out


@pytest.mark.parametrize("baselines", [None, 0.5, "tensor"])
@pytest.mark.parametrize("per_eval", [AUTO, 1, 3])
def test_linear_model_gets_weight_times_input_minus_baseline(baselines: Any, per_eval: int) -> None:
    model = BasicLinearModel()
    x = torch.randn(5, 4)
    b = torch.randn(1, 4) if baselines == "tensor" else baselines
    attr = FeatureAblation(model).attribute(
        x, baselines=b, target=2, perturbations_per_eval=per_eval
    )
    ref = 0.0 if b is None else b
    expected = model.linear.weight[2].detach() * (x - ref)
    torch.testing.assert_close(attr, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("per_example_mask", [False, True])
def test_groups_match_the_reference(per_example_mask: bool) -> None:
    model = ReLUMLP()
    x = torch.randn(4, 6)
    g = torch.Generator().manual_seed(3)
    mask = torch.randint(0, 3, (4 if per_example_mask else 1, 6), generator=g)
    base = torch.randn(4, 6)
    attr = FeatureAblation(model).attribute(
        x, baselines=base, target=1, feature_mask=mask, perturbations_per_eval=2
    )
    ref = ablation_reference(lambda t: model(t)[:, 1], x, mask, base)
    torch.testing.assert_close(attr, ref, atol=1e-5, rtol=1e-5)


def test_cross_tensor_groups_are_ablated_together() -> None:
    model = MultiInputModel()
    a, b = torch.randn(3, 4), torch.randn(3, 3)
    masks = (torch.tensor([[0, 0, 1, 1]]), torch.tensor([[1, 2, 2]]))
    ours = FeatureAblation(model).attribute((a, b), target=0, feature_mask=masks)
    with torch.no_grad():
        full = model(a, b)[:, 0]
        group1 = model(a * torch.tensor([1.0, 1, 0, 0]), b * torch.tensor([0.0, 1, 1]))[:, 0]
    assert isinstance(ours, tuple) and len(ours) == 2
    torch.testing.assert_close(ours[0][:, 2], full - group1)
    torch.testing.assert_close(ours[1][:, 0], full - group1)
    torch.testing.assert_close(ours[0][:, 3], ours[1][:, 0])


def test_masks_broadcast_over_the_batch_and_channels() -> None:
    model = ConvNet()
    x = torch.rand(2, 1, 8, 8)
    blocks = (torch.arange(8) // 4).reshape(1, 8) * 2 + (torch.arange(8) // 4).reshape(8, 1)
    attr = FeatureAblation(model).attribute(x, target=4, feature_mask=blocks)  # (8, 8) only
    assert attr.shape == x.shape
    assert torch.unique(attr[0]).numel() <= 4
    ref = ablation_reference(lambda t: model(t)[:, 4], x, blocks.reshape(1, 1, 8, 8), 0.0)
    torch.testing.assert_close(attr, ref, atol=1e-5, rtol=1e-5)


def test_batch_level_output_gives_first_dimension_one() -> None:
    model = ReLUMLP()
    x = torch.randn(4, 6)
    total = lambda t: model(t)[:, 0].sum()  # noqa: E731
    attr = FeatureAblation(total).attribute(x)
    assert attr.shape == (1, 6)
    with torch.no_grad():
        expected = [total(x) - total(x * (torch.arange(6) != j)) for j in range(6)]
    torch.testing.assert_close(attr[0], torch.stack(expected), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="feature_mask must be shared by the batch"):
        FeatureAblation(total).attribute(x, feature_mask=torch.randint(0, 2, (4, 6)))


def test_several_values_per_example_give_one_row_each() -> None:
    model = ReLUMLP()
    x = torch.randn(2, 6)
    attr = FeatureAblation(model).attribute(x, perturbations_per_eval=4)  # no target: (2, 3)
    assert attr.shape == (6, 6)
    for c in range(3):
        per_class = FeatureAblation(model).attribute(x, target=c)
        torch.testing.assert_close(attr.reshape(2, 3, 6)[:, c], per_class)


def test_integer_inputs_stay_integer() -> None:
    emb = nn.EmbeddingBag(10, 3, mode="sum")
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    attr = FeatureAblation(lambda t: emb(t)[:, 0]).attribute(ids, baselines=0)
    with torch.no_grad():
        expected = emb.weight[ids, 0] - emb.weight[0, 0]
    torch.testing.assert_close(attr, expected)


def test_attribute_future_matches_attribute() -> None:
    model = ReLUMLP()
    x = torch.randn(3, 6)
    fut = FeatureAblation(future_of(model)).attribute_future(x, target=2, perturbations_per_eval=4)
    assert isinstance(fut, torch._C.Future)
    torch.testing.assert_close(fut.wait(), FeatureAblation(model).attribute(x, target=2))


def test_show_progress_names_the_method(capsys: pytest.CaptureFixture[str]) -> None:
    FeatureAblation(ReLUMLP()).attribute(torch.randn(2, 6), target=0, show_progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rFeature Ablation attribution: ") and "7/7" in err


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"feature_mask": torch.zeros(1, 5, dtype=torch.long)}, ValueError, "does not broadcast"),
        ({"feature_mask": torch.full((1, 6), 0.5)}, ValueError, "integer feature ids"),
        ({"perturbations_per_eval": 0}, ValueError, "perturbations_per_eval must be at least 1"),
        ({"baselines": torch.zeros(3, 6)}, ValueError, "baselines"),
        ({"target": [0, 1]}, ValueError, "target gives 2 indices"),
    ],
)
def test_bad_input_fails_before_any_model_call(kwargs: Any, error: type, message: str) -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(error, match=message):
        FeatureAblation(model).attribute(torch.randn(4, 6), **kwargs)
    assert model.calls == 0


# Occlusion


def occlusion_reference(
    f: Any, x: Tensor, window: tuple[int, ...], stride: tuple[int, ...]
) -> Tensor:
    """Slide the window with a Python loop; windows past the edge are cut off."""
    dims = x.shape[1:]
    starts = [
        range(0, s * (math.ceil((d - w) / s) + 1), s) for d, w, s in zip(dims, window, stride)
    ]
    total, count = torch.zeros_like(x), torch.zeros_like(x[0])
    with torch.no_grad():
        base = f(x)
        for corner in itertools.product(*starts):
            region = tuple(slice(c, min(c + w, d)) for c, w, d in zip(corner, window, dims))
            occluded = x.clone()
            occluded[(slice(None), *region)] = 0
            diff = base - f(occluded)
            total[(slice(None), *region)] += diff.reshape(-1, *[1] * len(dims))
            count[region] += 1
    return total / count


@pytest.mark.parametrize(
    ("window", "stride"), [((1, 3, 3), (1, 1, 1)), ((1, 4, 4), (1, 3, 3)), ((1, 2, 5), (1, 2, 2))]
)
def test_occlusion_averages_overlapping_windows(
    window: tuple[int, ...], stride: tuple[int, ...]
) -> None:
    model = ConvNet()
    x = torch.rand(2, 1, 8, 8)
    attr = Occlusion(model).attribute(
        x, sliding_window_shapes=window, strides=stride, target=1, perturbations_per_eval=5
    )
    ref = occlusion_reference(lambda t: model(t)[:, 1], x, window, stride)
    torch.testing.assert_close(attr, ref, atol=1e-5, rtol=1e-5)


def test_occlusion_with_a_one_wide_window_is_feature_ablation() -> None:
    model = MultiInputModel()
    xs = (torch.randn(3, 4), torch.randn(3, 3))
    scale = torch.rand(3)
    occ = Occlusion(model).attribute(
        xs, sliding_window_shapes=((1,), (1,)), baselines=(0.3, 0.1), target=2,
        additional_forward_args=(scale,),
    )  # fmt: skip
    abl = FeatureAblation(model).attribute(
        xs, baselines=(0.3, 0.1), target=2, additional_forward_args=(scale,)
    )
    for o, a in zip(occ, abl):
        torch.testing.assert_close(o, a, atol=1e-6, rtol=1e-6)


def test_occlusion_future_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    model = ConvNet()
    x = torch.rand(1, 1, 8, 8)
    kw: dict[str, Any] = {"sliding_window_shapes": (1, 4, 4), "strides": 4, "target": 0}
    fut = Occlusion(future_of(model)).attribute_future(x, show_progress=True, **kw)
    torch.testing.assert_close(fut.wait(), Occlusion(model).attribute(x, **kw))
    err = capsys.readouterr().err
    assert err.startswith("\rOcclusion attribution: ") and "5/5" in err


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sliding_window_shapes": (1, 9, 2)}, ValueError, r"\(1, 9, 2\) is larger than the input"),
        ({"sliding_window_shapes": (2, 2)}, ValueError, "one int per input dimension"),
        ({"sliding_window_shapes": (1, 2, 2), "strides": 0}, ValueError, "must be positive"),
        ({"sliding_window_shapes": (1, 2, 2), "strides": (1, -1, 1)}, ValueError, "positive"),
        ({"sliding_window_shapes": (1, 2, 2), "strides": 3}, ValueError, "larger than the window"),
        ({"sliding_window_shapes": (1, 2, 2), "strides": (1, 2)}, ValueError, "one int per"),
        ({"sliding_window_shapes": ((1, 2, 2), (1,))}, ValueError, "one shape per input"),
    ],
)
def test_occlusion_bad_input_fails_before_any_model_call(
    kwargs: Any, error: type, message: str
) -> None:
    model = CountingModel(ConvNet())
    with pytest.raises(error, match=message):
        Occlusion(model).attribute(torch.rand(2, 1, 8, 8), target=0, **kwargs)
    assert model.calls == 0
