"""NumPy integers are accepted wherever an int is (one normalisation in ``_core.validate``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from perspicio import attr
from perspicio._core.validate import ArgumentError, is_int, plain_ints
from perspicio.testing import ReLUMLP

i = np.int64
X = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
MASK = torch.tensor([[0, 0, 1, 1, 2, 2]])


def test_is_int_and_plain_ints() -> None:
    assert is_int(3) and is_int(np.int32(3)) and is_int(np.uint8(3))
    assert not is_int(True) and not is_int(np.bool_(True)) and not is_int(3.0)
    assert not is_int(torch.tensor(3))
    got = plain_ints((i(1), [np.int16(2), slice(None)], 3.5, "a"))
    assert got == (1, [2, slice(None)], 3.5, "a")
    assert type(got[0]) is int and type(got[1][0]) is int


# (class, constructor uses the layer, arguments with NumPy ints, the same with ints)
CASES: list[tuple[str, bool, dict[str, Any], dict[str, Any]]] = [
    ("IntegratedGradients", False,
     {"target": i(1), "n_steps": i(8), "internal_batch_size": i(4)},
     {"target": 1, "n_steps": 8, "internal_batch_size": 4}),
    ("IntegratedGradients", False, {"target": [i(1), i(0), i(2)]}, {"target": [1, 0, 2]}),
    ("Saliency", False, {"target": (i(2),)}, {"target": (2,)}),
    ("FeatureAblation", False,
     {"target": i(1), "perturbations_per_eval": i(2), "feature_mask": MASK.double()},
     {"target": 1, "perturbations_per_eval": 2, "feature_mask": MASK}),
    ("Occlusion", False,
     {"target": i(1), "sliding_window_shapes": (i(2),), "strides": i(2)},
     {"target": 1, "sliding_window_shapes": (2,), "strides": 2}),
    ("ShapleyValueSampling", False, {"target": i(1), "n_samples": i(2)},
     {"target": 1, "n_samples": 2}),
    ("KernelShap", False, {"target": i(1), "n_samples": i(20), "perturbations_per_eval": i(5)},
     {"target": 1, "n_samples": 20, "perturbations_per_eval": 5}),
    ("Lime", False, {"target": i(1), "n_samples": i(20), "feature_mask": MASK.float()},
     {"target": 1, "n_samples": 20, "feature_mask": MASK}),
    ("GradientShap", False, {"baselines": torch.zeros(2, 6), "target": i(1), "n_samples": i(3)},
     {"baselines": torch.zeros(2, 6), "target": 1, "n_samples": 3}),
    ("LayerConductance", True, {"target": i(1), "n_steps": i(5)}, {"target": 1, "n_steps": 5}),
    ("NeuronConductance", True, {"neuron_selector": (i(2),), "target": i(1), "n_steps": i(5)},
     {"neuron_selector": (2,), "target": 1, "n_steps": 5}),
    ("NeuronGradient", True, {"neuron_selector": i(2)}, {"neuron_selector": 2}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "layer", "np_kw", "kw"), CASES)
def test_numpy_integers_give_the_same_result(
    name: str, layer: bool, np_kw: dict[str, Any], kw: dict[str, Any]
) -> None:
    model = ReLUMLP()
    ctor = (model, model.fc1) if layer else (model,)
    torch.manual_seed(0)
    want = getattr(attr, name)(*ctor).attribute(X, **kw)
    torch.manual_seed(0)
    got = getattr(attr, name)(*ctor).attribute(X, **np_kw)
    torch.testing.assert_close(got, want)


def test_noise_tunnel_takes_numpy_integers() -> None:
    model = ReLUMLP()
    kw = {"nt_samples": 3, "nt_samples_batch_size": 2, "target": 1, "stdevs": 0.1}
    torch.manual_seed(0)
    want = attr.NoiseTunnel(attr.Saliency(model)).attribute(X, **kw)
    torch.manual_seed(0)
    np_kw = {k: i(v) if isinstance(v, int) else v for k, v in kw.items()}
    got = attr.NoiseTunnel(attr.Saliency(model)).attribute(X, **np_kw)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("bad", [np.bool_(True), np.float64(2.0), torch.tensor(3)])
def test_other_numbers_are_still_rejected(bad: Any) -> None:
    with pytest.raises(TypeError, match="n_steps"):
        attr.IntegratedGradients(ReLUMLP()).attribute(X, target=0, n_steps=bad)


def test_numpy_integer_values_are_still_checked() -> None:
    with pytest.raises(ArgumentError, match="n_steps must be at least 1, got 0"):
        attr.IntegratedGradients(ReLUMLP()).attribute(X, target=0, n_steps=i(0))


def test_float16_gradient_shap_and_noise_tunnel() -> None:
    model = ReLUMLP()
    half = ReLUMLP().half()
    base = torch.zeros(2, 6)
    torch.manual_seed(0)
    want = attr.GradientShap(model).attribute(X, base, n_samples=3, target=1)
    for m, x, b in ((model, X, base), (half, X.half(), base.half())):
        torch.manual_seed(0)
        out = attr.GradientShap(m).attribute(x, b, n_samples=3, target=1)
        assert out.dtype == x.dtype
        torch.testing.assert_close(out.float(), want, atol=2e-2, rtol=2e-2)
        torch.manual_seed(0)
        nt = attr.NoiseTunnel(attr.IntegratedGradients(m))
        out = nt.attribute(x, nt_samples=3, target=1, stdevs=0.1, n_steps=4)
        assert out.dtype == x.dtype and torch.isfinite(out).all()
