"""Layer and Neuron methods give Captum's numbers (Captum is a test oracle only)."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from perspicio import attr as ours
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP, ReusedReLUNet, TinyResNet

captum_attr = pytest.importorskip("captum.attr")

IMG = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
TAB = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
RGB = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
MULTI = (
    torch.randn(3, 4, generator=torch.Generator().manual_seed(3)),
    torch.randn(3, 3, generator=torch.Generator().manual_seed(4)),
)
SCALE = torch.tensor([0.5, 1.0, 2.0])


def close(a: Any, b: Any, atol: float = 1e-5) -> None:
    if isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            close(x, y, atol)
        return
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def run_both(
    name: str, model: Any, layer: Any, *args: Any, ctor: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(captum_attr, name)(model, layer, **(ctor or {})).attribute(*args, **kwargs)
    return getattr(ours, name)(model, layer, **(ctor or {})).attribute(*args, **kwargs), theirs


def pool_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
        nn.MaxPool2d(2), nn.Sigmoid(), nn.Flatten(), nn.Linear(64, 5),
    )  # fmt: skip


class TokenModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.embedding(ids)).mean(1))


LIG = "LayerIntegratedGradients"


@pytest.mark.parametrize(("layer", "to_input"), [("conv2", False), ("relu2", True), ("fc1", False)])
def test_activation_gradient_x_activation_gradcam(layer: str, to_input: bool) -> None:
    model = ConvNet()
    where = getattr(model, layer)
    kw = {"attribute_to_layer_input": to_input}
    close(*run_both("LayerActivation", model, where, IMG, **kw))
    close(*run_both("LayerGradientXActivation", model, where, IMG, 2, **kw))
    for relu, summed in [(False, True), (True, False)]:
        opts = {"relu_attributions": relu, "attr_dim_summation": summed}
        close(*run_both("LayerGradCam", model, where, IMG, [1, 2, 3], **kw, **opts))


def test_layer_lists_and_options() -> None:
    model = ConvNet()
    layers = [model.conv1, model.fc1]
    close(*run_both("LayerActivation", model, layers, IMG))
    local = {"multiply_by_inputs": False}
    close(*run_both("LayerGradientXActivation", model, layers, IMG, 4, ctor=local))
    lean = {"memory_efficient": True}
    close(*run_both("LayerGradientXActivation", model, model.conv2, IMG, 4, ctor=lean))


def test_reused_layers() -> None:
    resnet = TinyResNet()
    close(*run_both("LayerActivation", resnet, resnet.layer1.relu, RGB))
    close(*run_both("LayerGradCam", resnet, resnet.layer1.relu, RGB, 1))
    reused, x = ReusedReLUNet(), torch.randn(3, 5)
    close(*run_both(LIG, reused, reused.relu, x, target=1, return_convergence_delta=True))


@pytest.mark.parametrize(("layer", "mode"), [("conv2", "nearest"), ("layer1", "bilinear")])
def test_guided_grad_cam(layer: str, mode: str) -> None:
    model, x = (ConvNet(), IMG) if layer == "conv2" else (TinyResNet(), RGB)
    close(*run_both("GuidedGradCam", model, getattr(model, layer), x, 2, interpolate_mode=mode))


@pytest.mark.parametrize(("method", "ibs"), [("riemann_right", None), ("gausslegendre", 7)])
def test_layer_integrated_gradients(method: str, ibs: int | None) -> None:
    model = ConvNet()
    kw = {"n_steps": 9, "method": method, "internal_batch_size": ibs}
    kw["return_convergence_delta"] = True
    close(*run_both(LIG, model, model.conv2, IMG, 0.1, [1, 2, 3], **kw))
    close(*run_both(LIG, model, model.fc1, IMG, target=5, attribute_to_layer_input=True, **kw))


def test_layer_integrated_gradients_lists_args_and_tokens() -> None:
    model = MultiInputModel()
    kw = {"additional_forward_args": (SCALE,), "return_convergence_delta": True}
    close(*run_both(LIG, model, [model.fa, model.fb], MULTI, target=1, **kw))
    tokens = TokenModel()
    ids = torch.randint(1, 10, (3, 5), generator=torch.Generator().manual_seed(5))
    delta = {"return_convergence_delta": True}
    close(*run_both(LIG, tokens, tokens.embedding, ids, 0, [0, 1, 2], **delta))


@pytest.mark.parametrize(
    ("method", "ibs"), [("riemann_trapezoid", None), ("riemann_left", 7), ("gausslegendre", 7)]
)
def test_layer_conductance_and_internal_influence(method: str, ibs: int | None) -> None:
    model = ConvNet()
    kw = {"n_steps": 9, "method": method, "internal_batch_size": ibs}
    delta = {"return_convergence_delta": True}
    close(*run_both("LayerConductance", model, model.conv2, IMG, target=[1, 2, 3], **kw, **delta))
    if method != "riemann_trapezoid":  # Captum's trapezoid weights sum to (n - 1) / n
        close(*run_both("InternalInfluence", model, model.relu2, IMG, target=4, **kw))


@pytest.mark.parametrize(
    ("selector", "method"),
    [((3, 2, 2), "gausslegendre"), ((slice(0, 2), 1, 1), "riemann_left"), (None, "riemann_left")],
)
def test_neuron_conductance(selector: Any, method: str) -> None:
    model = ConvNet()
    sel = selector or (lambda out: out[:, 2].mean((1, 2)))
    kw = {"target": [1, 2, 3], "n_steps": 9, "method": method}
    close(*run_both("NeuronConductance", model, model.conv2, IMG, sel, **kw))


def test_neuron_conductance_default_trapezoid_differs_by_captums_weight_sum() -> None:
    model, n = ConvNet(), 10
    a, b = run_both("NeuronConductance", model, model.fc1, IMG, 5, target=2, n_steps=n)
    close(a * (n - 1) / n, b)


@pytest.mark.parametrize(("layer", "to_input"), [("fc1", False), ("relu3", True), ("conv2", False)])
def test_neuron_gradient_methods(layer: str, to_input: bool) -> None:
    model = ConvNet()
    where = getattr(model, layer)
    sel = (1, 2, 2) if layer == "conv2" else 3
    kw = {"attribute_to_neuron_input": to_input}
    for name in ("NeuronGradient", "NeuronGuidedBackprop", "NeuronDeconvolution"):
        close(*run_both(name, model, where, IMG, sel, **kw))
    close(*run_both("NeuronIntegratedGradients", model, where, IMG, sel, n_steps=8, **kw))


@pytest.mark.parametrize("layer", [3, 4, 6])
@pytest.mark.parametrize("multiply", [True, False])
def test_layer_deeplift(layer: int, multiply: bool) -> None:
    # layers after the MaxPool: before it Captum loses ~2e-5 of completeness (see test_gradient)
    model = pool_net()
    base = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(6)) * 0.2
    ctor = {"multiply_by_inputs": multiply}
    delta = {"return_convergence_delta": True}
    close(*run_both("LayerDeepLift", model, model[layer], IMG, base, 1, ctor=ctor, **delta))
    to_input = {"attribute_to_layer_input": True}
    close(*run_both("LayerDeepLift", model, model[6], IMG, base, 1, ctor=ctor, **to_input))
    dist = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    close(*run_both("LayerDeepLiftShap", model, model[layer], IMG, dist, 1, ctor=ctor))


def test_layer_deeplift_at_a_nonlinear_layer_input_is_complete_unlike_captums() -> None:
    # Captum's multipliers at the input of a DeepLift non-linearity skip its rescale rule, so
    # its attributions do not add up to f(x) - f(ref); ours do.
    model = pool_net()
    base = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(6)) * 0.2
    kw = {"attribute_to_layer_input": True, "return_convergence_delta": True}
    (_, delta), (_, captum_delta) = run_both("LayerDeepLift", model, model[1], IMG, base, 1, **kw)
    assert delta.abs().max() < 1e-5 < captum_delta.abs().max()


@pytest.mark.parametrize("layer", ["fc2", "relu2"])
def test_neuron_deeplift(layer: str) -> None:
    model = ReLUMLP()
    where = getattr(model, layer)
    close(*run_both("NeuronDeepLift", model, where, TAB, 5, 0.1))
    close(*run_both("NeuronDeepLift", model, where, TAB, 5, attribute_to_neuron_input=True))
    dist = torch.randn(3, 6, generator=torch.Generator().manual_seed(8))
    close(*run_both("NeuronDeepLiftShap", model, where, TAB, (slice(0, 4),), dist))


def test_feature_ablation_variants() -> None:
    # Captum runs one forward pass per feature: masks keep the feature counts small
    model = ConvNet()
    channels = (torch.arange(16) // 4).reshape(1, 16, 1, 1).expand(1, 16, 8, 8)
    halves = (torch.arange(256) // 128).reshape(1, 256)
    rows = torch.arange(64).reshape(1, 1, 8, 8) // 8
    lfa, nfa = "LayerFeatureAblation", "NeuronFeatureAblation"
    close(*run_both(lfa, model, model.fc1, IMG, target=2))
    kw = {"layer_mask": channels, "perturbations_per_eval": 3}
    close(*run_both(lfa, model, model.conv2, IMG, 0.5, 2, **kw))
    kw = {"layer_mask": halves, "attribute_to_layer_input": True}
    close(*run_both(lfa, model, model.fc1, IMG, target=2, **kw))
    close(*run_both(nfa, model, model.conv2, IMG, (2, 3, 3), 0.1, feature_mask=rows))
    kw = {"feature_mask": rows, "attribute_to_neuron_input": True}
    close(*run_both(nfa, model, model.fc1, IMG, 7, **kw))


NAMES = [
    "LayerActivation", "LayerGradientXActivation", "LayerConductance", "InternalInfluence",
    "LayerGradCam", "LayerIntegratedGradients", "LayerDeepLift", "LayerDeepLiftShap",
    "LayerGradientShap", "LayerFeatureAblation", "LayerFeaturePermutation", "NeuronGradient",
    "NeuronIntegratedGradients", "NeuronConductance", "NeuronDeepLift", "NeuronDeepLiftShap",
    "NeuronGradientShap", "NeuronGuidedBackprop", "NeuronDeconvolution", "NeuronFeatureAblation",
    "GuidedGradCam", "InterpretableEmbeddingBase", "TokenReferenceBase",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_signatures_match(name: str) -> None:
    # same parameter names, order and defaults; perspicio may add parameters at the end
    ours_cls, theirs_cls = getattr(ours, name), getattr(captum_attr, name)
    methods = ["__init__"] + [
        m for m in ("attribute", "generate_reference") if hasattr(theirs_cls, m)
    ]
    for method in methods:
        mine = list(inspect.signature(getattr(ours_cls, method)).parameters.values())
        theirs = list(inspect.signature(getattr(theirs_cls, method)).parameters.values())
        assert [p.name for p in mine[: len(theirs)]] == [p.name for p in theirs], method
        for p, q in zip(mine, theirs):
            if q.default is not inspect.Parameter.empty and p.name != "forward_func":
                assert p.default == q.default, (method, p.name)


def test_embedding_helpers_signatures() -> None:
    for name in ("configure_interpretable_embedding_layer", "remove_interpretable_embedding_layer"):
        mine = inspect.signature(getattr(ours, name)).parameters
        theirs = inspect.signature(getattr(captum_attr, name)).parameters
        assert [(p.name, p.default) for p in mine.values()] == [
            (p.name, p.default) for p in theirs.values()
        ]
