"""The result object: context, slicing, aggregation, storage and plots."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.attr import FeatureAblation, GradientShap, IntegratedGradients, LayerGradCam
from perspicio.result import Explanation, explain

pytest.importorskip("safetensors")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def test_explain_keeps_the_attribute_result_and_adds_scores() -> None:
    model = _model()
    x = torch.randn(6, 5, dtype=torch.float64)
    ig = IntegratedGradients(model)
    e = explain(ig, x, target=2, baselines=0.5, n_steps=64, feature_names=list("abcde"))
    torch.testing.assert_close(e.values[0], ig.attribute(x, target=2, baselines=0.5, n_steps=64))
    torch.testing.assert_close(e.output, model(x)[:, 2].detach())
    torch.testing.assert_close(e.base_value, model(torch.full_like(x, 0.5))[:, 2].detach())
    torch.testing.assert_close(e.flat().sum(1), e.output - e.base_value, atol=1e-6, rtol=0)
    assert e.arguments == {"target": 2, "baselines": 0.5, "n_steps": 64}
    assert e.method == "IntegratedGradients"
    assert e.target.tolist() == [2] * 6
    assert e.names == tuple("abcde")


def test_layer_methods_and_distributions_get_no_base_value() -> None:
    model = _model()
    x = torch.randn(4, 5, dtype=torch.float64)
    gs = explain(GradientShap(model), x, baselines=torch.zeros(3, 5, dtype=torch.float64), target=0)
    assert gs.output is not None and gs.base_value is None
    cam = explain(LayerGradCam(model, model[0]), x, target=0)
    assert cam.output is None and cam.base_value is None


def test_slicing_aggregation_and_concat() -> None:
    model = _model()
    x = (torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64))

    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return model(torch.cat([a, b], 1))

    e = explain(FeatureAblation(f), x, target=1)
    assert len(e) == 6 and e.n_features == 5
    assert e.names[:3] == ("x0[0]", "x0[1]", "x1[0]")
    part = e[1:3]
    assert len(part) == 2
    torch.testing.assert_close(part.values[1], e.values[1][1:3])
    one = e[4]
    assert len(one) == 1 and torch.equal(one.output, e.output[4:5])
    picked = e[[0, 5]]
    torch.testing.assert_close(picked.flat(), e.flat()[[0, 5]])
    whole = Explanation.concat([e[:2], e[2:]])
    assert all(torch.equal(a, b) for a, b in zip(whole.values, e.values))
    torch.testing.assert_close(e.mean_abs(), e.flat().abs().mean(0))
    top = e.top_features(2)
    assert [v for _, v in top] == sorted(e.mean_abs().tolist(), reverse=True)[:2]


def test_save_and_load_round_trip_exactly(tmp_path) -> None:
    model = _model()
    x = torch.randn(5, 5, dtype=torch.float64)
    e = explain(
        IntegratedGradients(model),
        x,
        target=torch.tensor([0, 1, 2, 0, 1]),
        feature_names=list("vwxyz"),
    )
    path = tmp_path / "e.safetensors"
    e.save(path)
    back = Explanation.load(path)
    for name in ("output", "base_value", "target"):
        assert torch.equal(getattr(back, name), getattr(e, name))
    assert all(torch.equal(a, b) for a, b in zip(back.values, e.values))
    assert all(torch.equal(a, b) for a, b in zip(back.data, e.data))
    assert back.feature_names == e.feature_names and back.method == e.method
    assert back.arguments == e.arguments


def test_load_rejects_other_files(tmp_path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"a": torch.zeros(2)}, str(path))
    with pytest.raises(ArgumentError, match="not a perspicio explanation"):
        Explanation.load(path)


def test_bad_context_is_rejected() -> None:
    v = torch.zeros(3, 4)
    with pytest.raises(ArgumentError, match="feature_names has 2 names for 4 features"):
        Explanation(values=(v,), feature_names=("a", "b"))
    with pytest.raises(ArgumentError, match="output must be a tensor with 3 rows"):
        Explanation(values=(v,), output=torch.zeros(2))
    with pytest.raises(ArgumentError, match="data shapes"):
        Explanation(values=(v,), data=(torch.zeros(3, 5),))


def test_plots_draw_what_they_claim() -> None:
    pytest.importorskip("matplotlib")
    model = _model()
    x = torch.randn(8, 5, dtype=torch.float64)
    e = explain(IntegratedGradients(model), x, target=0, feature_names=list("abcde"))
    ax = e.plot_bar(k=3)
    widths = sorted((p.get_width() for p in ax.patches), reverse=True)
    torch.testing.assert_close(torch.tensor(widths), e.mean_abs().sort(descending=True)[0][:3])
    ax = e.plot_beeswarm(k=2)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 16
    ax = e.plot_waterfall(row=1, k=2)
    end = ax.patches[-1].get_x() + ax.patches[-1].get_width()
    assert end == pytest.approx(float(e.output[1]), abs=1e-5)
    img = torch.randn(2, 3, 4, 4)
    ei = Explanation(values=(img,), data=(img.abs(),))
    fig, _ = ei.plot_image(0)
    assert fig is not None
    html = Explanation(values=(torch.tensor([[0.5, -1.0]]),)).plot_text(0, ["a<i>b", "ok"])
    body = getattr(html, "data", html)
    assert "a&lt;i&gt;b" in body and "<i>" not in body
