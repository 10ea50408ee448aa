"""Conformance cases for the Layer and Neuron methods (and GuidedGradCam).

Several cases attribute to the model's last registered leaf module (``fc3`` of ReLUMLP,
``fc2`` of ConvNet), where the battery raises its forced exception: the exception then
happens inside the hooked layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from perspicio import attr
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP, ReusedReLUNet, TinyResNet
from tests.conformance.battery import Case


class TokenModel(nn.Module):
    """Token ids -> embedding -> tanh -> mean over positions -> 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.embedding(ids)).mean(1))


def on(model_cls: Any, cls: Any, layer: str | list[str], **ctor: Any) -> Callable[[], Any]:
    def build() -> tuple[nn.Module, Any]:
        model = model_cls()
        where = (
            [getattr(model, n) for n in layer] if isinstance(layer, list) else getattr(model, layer)
        )
        return model, cls(model, where, **ctor)

    return build


def shapes(*dims: tuple[int, ...]) -> Callable[[Any, Any], tuple[torch.Size, ...]]:
    return lambda model, inputs: tuple(torch.Size(d) for d in dims)


def x_mlp() -> torch.Tensor:
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(20))


def x_multi() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(21)
    return torch.randn(3, 4, generator=g), torch.randn(3, 3, generator=g)


def x_digit() -> torch.Tensor:
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(22))


def x_img() -> torch.Tensor:
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(23))


def x_reused() -> torch.Tensor:
    return torch.randn(3, 5, generator=torch.Generator().manual_seed(24))


def x_tokens() -> torch.Tensor:
    return torch.randint(1, 10, (3, 5), generator=torch.Generator().manual_seed(25))


SCALE = torch.tensor([0.5, 1.0, 2.0])
DIST = torch.randn(5, 6, generator=torch.Generator().manual_seed(26))
DIGIT_DIST = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(27))
IBS = "internal_batch_size"
PPE = "perturbations_per_eval"
CHANNELS = (torch.arange(16) // 4).reshape(1, 16, 1, 1).expand(1, 16, 8, 8)

CASES = [
    # LayerActivation
    Case("lact-mlp-list", on(ReLUMLP, attr.LayerActivation, ["fc1", "fc3"]), x_mlp,
         output=shapes((4, 8), (4, 3))),
    Case("lact-resnet-reused-input", on(TinyResNet, attr.LayerActivation, "relu"), x_img,
         {"attribute_to_layer_input": True}, output=shapes((2, 8, 8, 8))),
    # LayerGradientXActivation
    Case("lgxa-mlp-last", on(ReLUMLP, attr.LayerGradientXActivation, "fc3"), x_mlp,
         {"target": [0, 1, 2, 0]}, output=shapes((4, 3))),
    Case("lgxa-multi-list", on(MultiInputModel, attr.LayerGradientXActivation, ["fa", "act"]),
         x_multi, {"target": 1, "additional_forward_args": (SCALE,)},
         output=shapes((3, 6), (3, 6))),
    Case("lgxa-memory-efficient",
         on(ConvNet, attr.LayerGradientXActivation, "conv2", memory_efficient=True), x_digit,
         {"target": 4}, output=shapes((3, 16, 8, 8))),
    # LayerGradCam and GuidedGradCam
    Case("gradcam-convnet", on(ConvNet, attr.LayerGradCam, "conv2"), x_digit,
         {"target": [1, 2, 3], "relu_attributions": True}, output=shapes((3, 1, 8, 8))),
    Case("gradcam-resnet-channels", on(TinyResNet, attr.LayerGradCam, "layer1"), x_img,
         {"target": 2, "attr_dim_summation": False}, output=shapes((2, 8, 8, 8))),
    Case("guided-gradcam-convnet", on(ConvNet, attr.GuidedGradCam, "conv2"), x_digit,
         {"target": 5}),
    # LayerIntegratedGradients
    Case("lig-mlp-last", on(ReLUMLP, attr.LayerIntegratedGradients, "fc3"), x_mlp,
         {"target": [0, 1, 2, 0], "n_steps": 6}, chunk_arg=IBS, chunk_values=(None, 4, 10),
         output=shapes((4, 3))),
    Case("lig-multi-list-input", on(MultiInputModel, attr.LayerIntegratedGradients, ["fa", "fb"]),
         x_multi, {"target": 2, "additional_forward_args": (SCALE,), "n_steps": 5,
                   "attribute_to_layer_input": True, "return_convergence_delta": True},
         chunk_arg=IBS, chunk_values=(None, 3, 9), output=shapes((3, 4), (3, 3), (3,))),
    Case("lig-tokens", on(TokenModel, attr.LayerIntegratedGradients, "embedding"), x_tokens,
         {"target": 1, "baselines": 0, "n_steps": 8}, chunk_arg=IBS,
         chunk_values=(None, 3, 7), output=shapes((3, 5, 4))),
    Case("lig-reused-relu", on(ReusedReLUNet, attr.LayerIntegratedGradients, "relu"), x_reused,
         {"target": 1, "n_steps": 5}, chunk_arg=IBS, output=shapes((3, 7))),
    # LayerConductance and InternalInfluence
    Case("lcond-convnet", on(ConvNet, attr.LayerConductance, "conv2"), x_digit,
         {"target": [0, 4, 9], "n_steps": 6, "return_convergence_delta": True}, chunk_arg=IBS,
         chunk_values=(None, 3, 7), output=shapes((3, 16, 8, 8), (3,))),
    Case("lcond-mlp-last", on(ReLUMLP, attr.LayerConductance, "fc3"), x_mlp,
         {"target": 1, "n_steps": 5, "method": "riemann_trapezoid", "baselines": 0.1},
         chunk_arg=IBS, chunk_values=(None, 4, 12), output=shapes((4, 3))),
    Case("influence-resnet", on(TinyResNet, attr.InternalInfluence, "layer1"), x_img,
         {"target": 3, "n_steps": 4}, chunk_arg=IBS, chunk_values=(None, 2, 6),
         output=shapes((2, 8, 8, 8))),
    # LayerDeepLift and LayerDeepLiftShap
    Case("ldl-mlp-last", on(ReLUMLP, attr.LayerDeepLift, "fc3"), x_mlp,
         {"target": [0, 1, 2, 0], "baselines": 0.1}, output=shapes((4, 3))),
    Case("ldl-resnet-input", on(TinyResNet, attr.LayerDeepLift, "layer2"), x_img,
         {"target": 1, "attribute_to_layer_input": True, "return_convergence_delta": True},
         output=shapes((2, 8, 8, 8), (2,))),
    Case("ldlshap-mlp", on(ReLUMLP, attr.LayerDeepLiftShap, "relu1"), x_mlp,
         {"baselines": DIST, "target": 2}, output=shapes((4, 8))),
    # LayerGradientShap
    Case("lgshap-mlp", on(ReLUMLP, attr.LayerGradientShap, "fc2"), x_mlp,
         {"baselines": DIST, "target": 1, "n_samples": 4, "stdevs": 0.1}, chunk_arg=IBS,
         chunk_values=(None, 1, 5), output=shapes((4, 8)), batch_invariant=False, random=True),
    # LayerFeatureAblation and LayerFeaturePermutation
    Case("lfa-convnet-mask", on(ConvNet, attr.LayerFeatureAblation, "conv2"), x_digit,
         {"target": 3, "layer_mask": CHANNELS, "layer_baselines": 0.2}, chunk_arg=PPE,
         output=shapes((3, 16, 8, 8))),
    Case("lfa-mlp-last-input", on(ReLUMLP, attr.LayerFeatureAblation, "fc3"), x_mlp,
         {"target": [0, 1, 2, 0], "attribute_to_layer_input": True}, chunk_arg=PPE,
         output=shapes((4, 8))),
    Case("lfp-mlp", on(ReLUMLP, attr.LayerFeaturePermutation, "relu2"), x_mlp,
         {"target": 0}, chunk_arg=PPE, output=shapes((4, 8)), batch_invariant=False,
         random=True),
    # Neuron methods
    Case("ngrad-convnet", on(ConvNet, attr.NeuronGradient, "conv2"), x_digit,
         {"neuron_selector": (3, 4, 4)}),
    Case("ngrad-mlp-callable", on(ReLUMLP, attr.NeuronGradient, "fc3"), x_mlp,
         {"neuron_selector": lambda out: out[:, :2].sum(1)}),
    Case("nig-multi", on(MultiInputModel, attr.NeuronIntegratedGradients, "act"), x_multi,
         {"neuron_selector": (slice(1, 4),), "additional_forward_args": (SCALE,), "n_steps": 5},
         chunk_arg=IBS, chunk_values=(None, 3, 9)),
    Case("ncond-convnet", on(ConvNet, attr.NeuronConductance, "fc1"), x_digit,
         {"neuron_selector": 7, "target": [1, 2, 3], "n_steps": 5}, chunk_arg=IBS,
         chunk_values=(None, 3, 8)),
    Case("ncond-mlp-input", on(ReLUMLP, attr.NeuronConductance, "fc3"), x_mlp,
         {"neuron_selector": 2, "target": 0, "n_steps": 4, "attribute_to_neuron_input": True},
         chunk_arg=IBS),
    Case("ndl-mlp", on(ReLUMLP, attr.NeuronDeepLift, "relu2"), x_mlp,
         {"neuron_selector": 4, "baselines": 0.1}),
    Case("ndl-resnet-input", on(TinyResNet, attr.NeuronDeepLift, "fc"), x_img,
         {"neuron_selector": 3, "attribute_to_neuron_input": True}),
    Case("ndlshap-mlp", on(ReLUMLP, attr.NeuronDeepLiftShap, "fc2"), x_mlp,
         {"neuron_selector": (slice(0, 3),), "baselines": DIST}),
    Case("ngshap-convnet", on(ConvNet, attr.NeuronGradientShap, "conv1"), x_digit,
         {"neuron_selector": (2, 3, 3), "baselines": DIGIT_DIST, "n_samples": 3,
          "stdevs": 0.05}, chunk_arg=IBS, chunk_values=(None, 1, 4), batch_invariant=False,
         random=True),
    Case("nguided-convnet", on(ConvNet, attr.NeuronGuidedBackprop, "relu2"), x_digit,
         {"neuron_selector": (5, 2, 2)}),
    Case("ndeconv-resnet", on(TinyResNet, attr.NeuronDeconvolution, "layer2"), x_img,
         {"neuron_selector": (1, 3, 3)}),
    Case("nfa-multi", on(MultiInputModel, attr.NeuronFeatureAblation, "act"), x_multi,
         {"neuron_selector": 2, "additional_forward_args": (SCALE,), "baselines": (0.1, 0.0)},
         chunk_arg=PPE),
    Case("nfa-mlp-last", on(ReLUMLP, attr.NeuronFeatureAblation, "fc3"), x_mlp,
         {"neuron_selector": 1, "feature_mask": torch.tensor([[0, 0, 1, 1, 2, 2]])},
         chunk_arg=PPE),
    # NoiseTunnel around Layer methods
    Case("nt-lig-tokens",
         lambda: (lambda m: (m, attr.NoiseTunnel(attr.LayerIntegratedGradients(m, m.embedding))))(
             TokenModel()),
         x_tokens, {"target": 2, "nt_samples": 4, "stdevs": 0.1, "n_steps": 6},
         chunk_arg="nt_samples_batch_size", output=shapes((3, 5, 4)), batch_invariant=False,
         random=True),
    Case("nt-gradcam",
         lambda: (lambda m: (m, attr.NoiseTunnel(attr.LayerGradCam(m, m.conv1))))(ConvNet()),
         x_digit, {"target": 6, "nt_samples": 3, "stdevs": 0.1, "nt_type": "smoothgrad_sq"},
         chunk_arg="nt_samples_batch_size", output=shapes((3, 1, 8, 8)),
         batch_invariant=False, random=True),
]  # fmt: skip
