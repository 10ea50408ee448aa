"""The methods registry: typed argument validation, and every importable method runs."""

from __future__ import annotations

from typing import Any

import pytest

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
