"""Layer sites, neuron objectives and the device-aware hooks behind the Layer/Neuron methods."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from perspicio import attr
from perspicio._core.call import build_call
from perspicio._core.hooks import Captured, capture, device_order, gather, replace, share
from perspicio._core.sites import LayerSite, neuron_objective, target_objective
from perspicio.testing import MultiInputModel, ReLUMLP, ReusedReLUNet


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class TupleLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, x + 1


class TupleNet(nn.Module):
    """A layer returning a tuple, followed by a layer taking two positional inputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3, 3)
        self.split = TupleLayer()
        self.out = nn.Bilinear(3, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(*self.split(self.fc(x)))


def test_probe_gives_values_layout_and_calls() -> None:
    model, x = ReusedReLUNet(), torch.randn(3, 5)
    site = LayerSite((model.fc1, model.relu))
    probe = site.probe(model, build_call(x))
    assert probe.counts == (1, 1) and probe.calls == (1, 2)
    torch.testing.assert_close(probe.values[0], model.fc1(x))
    h = torch.relu(model.fc2(torch.relu(model.fc1(x))))
    torch.testing.assert_close(probe.values[1], h)  # the last call of the reused ReLU
    assert [len(g) for g in probe.split(probe.values)] == [1, 1]


def test_tuple_layers_are_flattened_and_split() -> None:
    model, x = TupleNet(), torch.randn(2, 3)
    site = LayerSite((model.split, model.fc))
    probe = site.probe(model, build_call(x))
    assert probe.counts == (2, 1)
    groups = probe.split(probe.values)
    torch.testing.assert_close(groups[0][1], model.fc(x) + 1)
    # LayerActivation keeps the layer's tuple, and a list of layers gives a list
    got = attr.LayerActivation(model, [model.split, model.fc]).attribute(x)
    assert isinstance(got, list) and isinstance(got[0], tuple) and len(got[0]) == 2


def test_replaced_only_touches_the_last_call_once_bound() -> None:
    model, x = ReusedReLUNet(), torch.randn(3, 5)
    site = LayerSite(model.relu)
    bound = site.bind(site.probe(model, build_call(x)))
    zeros = (torch.zeros(3, 7),)
    with torch.no_grad(), bound.replaced(zeros):
        out = model(x)
    torch.testing.assert_close(out, model.fc3(torch.zeros(3, 7)))
    with torch.no_grad(), site.replaced(zeros):  # unbound: every call is replaced
        every = model(x)
    torch.testing.assert_close(every, model.fc3(torch.zeros(3, 7)))
    with torch.no_grad(), replace(model.relu, zeros, call_index=0):
        first = model(x)
    expected = model.fc3(torch.relu(model.fc2(torch.zeros(3, 7))))
    torch.testing.assert_close(first, expected)
    assert hook_count(model) == 0


def test_several_layers_keep_their_full_gradients() -> None:
    model, x = ReLUMLP(), torch.randn(4, 6)
    site = LayerSite((model.fc1, model.fc2))
    grads, values, _ = site.grads_and_values_by_layer(target_objective(model), build_call(x, 0))
    for layer, (g,), (v,) in zip((model.fc1, model.fc2), grads, values):
        leaf = layer(x if layer is model.fc1 else torch.relu(model.fc1(x))).detach()
        leaf.requires_grad_()
        rest = (
            (lambda h: model.fc3(torch.relu(model.fc2(torch.relu(h)))))
            if layer is model.fc1
            else (lambda h: model.fc3(torch.relu(h)))
        )
        (expected,) = torch.autograd.grad(rest(leaf)[:, 0].sum(), leaf)
        torch.testing.assert_close(g, expected)
        torch.testing.assert_close(v, leaf.detach())


def test_input_capture_runs_before_other_pre_hooks() -> None:
    model, x = ReLUMLP(), torch.randn(2, 6)
    handle = model.fc2.register_forward_pre_hook(lambda m, a: (a[0] * 0,))
    try:
        with capture([model.fc2], inputs=True) as rec:
            model(x)
    finally:
        handle.remove()
    torch.testing.assert_close(rec[model.fc2][0], torch.relu(model.fc1(x)))


def test_capture_keys_replicas_by_the_original_layer() -> None:
    model, x = ReLUMLP(), torch.randn(2, 6)
    replica = model._replicate_for_data_parallel()  # what DataParallel runs on each device
    with capture([model.fc1]) as rec:
        replica(x)
    torch.testing.assert_close(rec[model.fc1][0], model.fc1(x))


def test_device_order_and_gather() -> None:
    d0, d1 = torch.device("cuda", 0), torch.device("cuda", 1)
    assert device_order([d1, d0], [0, 1]) == [d0, d1]
    assert device_order([d0, d1], [1, 0]) == [d1, d0]
    assert device_order([torch.device("cpu")], None) == [torch.device("cpu")]
    with pytest.raises(ValueError, match="pass device_ids"):
        device_order([d0, d1], None)
    with pytest.raises(ValueError, match="do not match the devices"):
        device_order([d0, d1], [0, 2])
    rec = Captured(device_ids=[1, 0])
    layer = nn.Identity()
    a, b = torch.ones(2, 3), torch.zeros(1, 3)
    rec.values[layer] = (a,)
    rec.parts[layer] = {d0: (a,), d1: (b,)}  # shares recorded by two replicas, out of order
    torch.testing.assert_close(rec[layer][0], torch.cat([b, a]))
    assert gather([(a,), (b,)])[0].shape == (3, 3)


def test_share_without_dataparallel_is_everything() -> None:
    values = (torch.arange(5.0),)
    assert share(values, torch.device("cpu"), [0, 1]) is values
    assert share(values, torch.device("cpu"), None) is values


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_share_gives_the_rows_dataparallel_scatters() -> None:
    values = (torch.arange(5.0).reshape(5, 1),)
    (first,) = share(values, torch.device("cuda", 0), [0, 1])
    assert first.device.type == "cuda" and first.shape == (3, 1)  # chunk(2) of 5 rows


@pytest.mark.parametrize("selector", [3, (slice(0, 2),), lambda out: out[:, 1] * 2])
def test_neuron_objective_reads_the_layer(selector: Any) -> None:
    model, x = ReLUMLP(), torch.randn(3, 6)
    site = LayerSite(model.fc2)
    call = build_call(x)
    got = neuron_objective(model, site, selector)(call, call.inputs)
    h = model.fc2(torch.relu(model.fc1(x)))
    expected = h[:, 1] * 2 if callable(selector) else h[(slice(None), *(
        (selector,) if isinstance(selector, int) else selector
    ))].reshape(3, -1).sum(1)  # fmt: skip
    torch.testing.assert_close(got, expected)


# Every Neuron method is its primary method with a neuron objective, so on a model cut after
# the layer (whose output is the neuron) it equals the primary method with that target.


def truncated(model: ReLUMLP) -> nn.Module:
    return nn.Sequential(model.fc1, model.relu1, model.fc2)


PAIRS: list[tuple[str, str, dict[str, Any]]] = [
    ("NeuronGradient", "InputXGradient", {}),
    ("NeuronIntegratedGradients", "IntegratedGradients", {"n_steps": 7}),
    ("NeuronGuidedBackprop", "GuidedBackprop", {}),
    ("NeuronDeconvolution", "Deconvolution", {}),
    ("NeuronDeepLift", "DeepLift", {}),
    ("NeuronFeatureAblation", "FeatureAblation", {}),
]


@pytest.mark.parametrize(("neuron", "primary", "kwargs"), PAIRS, ids=[p[0] for p in PAIRS])
def test_neuron_method_is_primary_method_on_the_truncated_model(
    neuron: str, primary: str, kwargs: dict[str, Any]
) -> None:
    model, x = ReLUMLP(), torch.randn(4, 6)
    got = getattr(attr, neuron)(model, model.fc2).attribute(x, 5, **kwargs)
    expected = getattr(attr, primary)(truncated(model)).attribute(x, target=5, **kwargs)
    if neuron == "NeuronGradient":  # InputXGradient: gradient times input
        got = got * x
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("neuron", "primary"), [
    ("NeuronGradientShap", "GradientShap"), ("NeuronDeepLiftShap", "DeepLiftShap")
])  # fmt: skip
def test_neuron_shap_methods_on_the_truncated_model(neuron: str, primary: str) -> None:
    model, x, dist = ReLUMLP(), torch.randn(4, 6), torch.randn(3, 6)
    torch.manual_seed(5)
    got = getattr(attr, neuron)(model, model.fc2).attribute(x, 5, dist)
    torch.manual_seed(5)
    expected = getattr(attr, primary)(truncated(model)).attribute(x, dist, target=5)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_neuron_input_selector_reads_the_layer_input() -> None:
    model, x = MultiInputModel(), (torch.randn(3, 4), torch.randn(3, 3))
    got = attr.NeuronGradient(model, model.out).attribute(x, 2, attribute_to_neuron_input=True)
    expected = attr.NeuronGradient(model, model.act).attribute(x, 2)
    torch.testing.assert_close(got, expected)
