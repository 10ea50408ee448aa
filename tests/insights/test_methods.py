"""The methods registry: typed argument validation, and every importable method runs."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from perspicio.insights.methods import REGISTRY, ArgSpec, ArgumentError, available_methods

pytest.importorskip("fastapi")


def test_first_methods_are_available() -> None:
    assert {"Saliency", "IntegratedGradients"} <= set(available_methods())


def test_registry_covers_the_planned_methods() -> None:
    planned = {
        "IntegratedGradients", "Saliency", "InputXGradient", "DeepLift", "GuidedBackprop",
        "Deconvolution", "GradientShap", "NoiseTunnel", "FeatureAblation", "Occlusion", "Lime",
        "KernelShap", "ShapleyValueSampling", "LayerGradCam", "GuidedGradCam",
    }  # fmt: skip
    assert planned <= set(REGISTRY)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_method_runs_with_default_arguments(client: Any, name: str) -> None:
    if name not in available_methods():
        pytest.skip(f"{name} is not in perspicio.attr yet")
    response = client.post("/api/fetch", json={"method": name, "count": 1})
    assert response.status_code == 200, response.text
    view = response.json()["examples"][0]["models"][0]
    assert view["method"] == name
    assert view["features"][0]["modified"]["heat_map"].startswith("data:image/png")


@pytest.mark.parametrize("name", ["FeatureAblation", "Occlusion", "Lime", "KernelShap"])
def test_perturbation_methods_on_a_multimodal_model(multimodal_client: Any, name: str) -> None:
    if name not in available_methods():
        pytest.skip(f"{name} is not in perspicio.attr yet")
    response = multimodal_client.post("/api/fetch", json={"method": name, "count": 1})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("base", ["Saliency", "IntegratedGradients", "DeepLift"])
def test_noise_tunnel_wraps_another_method(client: Any, base: str) -> None:
    if not {"NoiseTunnel", base} <= set(available_methods()):
        pytest.skip("NoiseTunnel or its base is not in perspicio.attr yet")
    args = {"base": base, "nt_type": "vargrad", "nt_samples": 3, "stdevs": 0.1}
    response = client.post("/api/fetch", json={"method": "NoiseTunnel", "arguments": args})
    assert response.status_code == 200, response.text


def test_occlusion_window_must_match_the_input_rank(client: Any) -> None:
    if "Occlusion" not in available_methods():
        pytest.skip("Occlusion is not in perspicio.attr yet")
    ok = {"sliding_window_shapes": [1, 3, 3], "strides": [1, 2, 2]}
    response = client.post("/api/fetch", json={"method": "Occlusion", "arguments": ok})
    assert response.status_code == 200, response.text
    bad = {"sliding_window_shapes": [3, 3]}
    response = client.post("/api/fetch", json={"method": "Occlusion", "arguments": bad})
    assert response.status_code == 422 and "one entry per input" in response.json()["error"]


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (ArgSpec("n", "int", 5, 1, 10), 3, 3),
        (ArgSpec("n", "int", 5, 1, 10), 4.0, 4),
        (ArgSpec("x", "float", 0.5, 0.0, 1.0), 1, 1.0),
        (ArgSpec("b", "bool", True), False, False),
        (ArgSpec("c", "choice", "a", choices=("a", "b")), "b", "b"),
        (ArgSpec("w", "ints", None, 1, 9), [1, 2, 2], (1, 2, 2)),
        (ArgSpec("w", "ints", None, 1, 9), None, None),
    ],
)
def test_argument_validation_accepts(spec: ArgSpec, value: Any, expected: Any) -> None:
    assert spec.validate(value, "M") == expected


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        (ArgSpec("n", "int", 5, 1, 10), 11),
        (ArgSpec("n", "int", 5, 1, 10), 2.5),
        (ArgSpec("n", "int", 5, 1, 10), True),
        (ArgSpec("n", "int", 5, 1, 10), "3"),
        (ArgSpec("n", "int", 5, 1, 10), None),
        (ArgSpec("x", "float", 0.5, 0.0, 1.0), float("nan")),
        (ArgSpec("x", "float", 0.5, 0.0, 1.0), -0.1),
        (ArgSpec("b", "bool", True), 1),
        (ArgSpec("c", "choice", "a", choices=("a", "b")), "z"),
        (ArgSpec("w", "ints", None, 1, 9), []),
        (ArgSpec("w", "ints", None, 1, 9), [1, 0]),
        (ArgSpec("w", "ints", None, 1, 9), [1] * 9),
        (ArgSpec("w", "ints", None, 1, 9), "1,2"),
    ],
)
def test_argument_validation_refuses(spec: ArgSpec, value: Any) -> None:
    with pytest.raises(ArgumentError, match=f"argument '{spec.name}'"):
        spec.validate(value, "M")


def test_spec_validate_fills_defaults_and_refuses_unknown_names() -> None:
    spec = REGISTRY["IntegratedGradients"]
    assert spec.validate({"n_steps": 7}) == {
        "n_steps": 7,
        "method": "gausslegendre",
        "internal_batch_size": None,
    }
    with pytest.raises(ArgumentError, match="unknown argument"):
        spec.validate({"steps": 7})


@pytest.mark.parametrize("name", ["GradientShap", "DeepLiftShap", "IntegratedGradients"])
def test_baseline_transforms_form_a_distribution(multimodal_client: Any, name: str) -> None:
    if name not in available_methods():
        pytest.skip(f"{name} is not in perspicio.attr yet")
    response = multimodal_client.post("/api/fetch", json={"method": name, "count": 2})
    assert response.status_code == 200, response.text


def test_a_broken_baseline_transform_is_a_422() -> None:
    import torch
    from fastapi.testclient import TestClient

    from perspicio.insights import AttributionVisualizer, Batch
    from perspicio.insights.features import GeneralFeature
    from perspicio.insights.server import create_app

    feature = GeneralFeature("x", "abc")
    feature.baseline_transforms = [lambda x: torch.zeros(7)]
    data = [Batch(torch.rand(2, 3), torch.tensor([0, 1]))]
    vis = AttributionVisualizer(torch.nn.Linear(3, 2), ["a", "b"], [feature], data)
    with TestClient(create_app(vis.engine)) as c:
        response = c.post("/api/fetch", json={"method": "IntegratedGradients"})
    assert response.status_code == 422 and "failed" in response.json()["error"]


class _TokenModel(torch.nn.Module):
    """Takes token ids ``(N, T)`` directly: no input transform embeds them."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(10, 4)
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.linear(self.embedding(ids).mean(1))


def _config_and_client(model: torch.nn.Module, feature: Any, x: torch.Tensor) -> tuple[Any, Any]:
    from fastapi.testclient import TestClient

    from perspicio.insights import AttributionVisualizer, Batch
    from perspicio.insights.server import create_app

    vis = AttributionVisualizer(model, ["a", "b"], [feature], [Batch(x, torch.tensor([0, 1]))])
    methods = {m["name"]: m for m in vis.engine.config().model_dump()["methods"]}
    return methods, TestClient(create_app(vis.engine))


def test_gradient_methods_are_not_offered_on_token_ids() -> None:
    from perspicio.insights.features import TextFeature

    feature = TextFeature("text", None, None, None)
    ids = torch.randint(0, 10, (2, 5))
    methods, client = _config_and_client(_TokenModel(), feature, ids)
    for name in ("Saliency", "IntegratedGradients", "DeepLift"):
        assert "integer tensor" in methods[name]["unavailable"]
    for name in ("FeatureAblation", "Occlusion"):
        assert methods[name]["unavailable"] is None
    with client:
        refused = client.post("/api/fetch", json={"method": "Saliency"})
        assert refused.status_code == 422 and "input transform" in refused.json()["error"]
        ok = client.post("/api/fetch", json={"method": "FeatureAblation", "count": 1})
        assert ok.status_code == 200, ok.text


def test_grad_cam_needs_a_convolution_and_lrp_a_rule() -> None:
    from perspicio.insights.features import GeneralFeature

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    methods, client = _config_and_client(model, GeneralFeature("x", "pqr"), torch.rand(2, 3))
    assert "convolution" in methods["LayerGradCam"]["unavailable"]
    assert "convolution" in methods["GuidedGradCam"]["unavailable"]
    if "LRP" in methods:
        assert "LayerNorm" in methods["LRP"]["unavailable"]
    assert methods["Saliency"]["unavailable"] is None
    with client:
        refused = client.post("/api/fetch", json={"method": "LayerGradCam"})
        assert refused.status_code == 422 and "convolution" in refused.json()["error"]


@pytest.mark.parametrize("name", ["FeatureAblation", "Lime", "KernelShap", "Occlusion"])
def test_perturbation_methods_group_a_large_image(name: str) -> None:
    from perspicio.insights.features import ImageFeature

    if name not in available_methods():
        pytest.skip(f"{name} is not in perspicio.attr yet")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 5, stride=4), torch.nn.Flatten())
    model.append(torch.nn.LazyLinear(2))
    x = torch.rand(2, 3, 64, 64)
    model(x)
    _, client = _config_and_client(model, ImageFeature("img", None, None), x)
    with client:
        started = client.post("/api/jobs/fetch", json={"method": name, "count": 1}).json()
        assert started["job"] is not None
        assert started["evaluations"] <= 300  # not one per pixel (12,289)
