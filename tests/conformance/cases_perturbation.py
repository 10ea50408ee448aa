"""Conformance cases for the perturbation family (ablation, occlusion, permutation, Shapley)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from perspicio import attr
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP, TinyResNet
from tests.conformance.battery import Case


def _on(model_cls: Any, cls: Any, wrap: Any = None) -> Any:
    def build() -> tuple[nn.Module, Any]:
        model = model_cls()
        return model, cls(wrap(model) if wrap else model)

    return build


def x_mlp() -> torch.Tensor:
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(10))


def x_multi() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return torch.randn(3, 4, generator=g), torch.randn(3, 3, generator=g)


def x_img() -> torch.Tensor:
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(12))


def x_digit() -> torch.Tensor:
    return torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(13))


def batch_total(model: nn.Module) -> Any:
    return lambda x: model(x)[:, 0].sum()


SCALE = torch.tensor([0.5, 1.0, 2.0])
GROUPS = torch.tensor([[0, 0, 1, 2, 2, 3]])
CROSS = (torch.tensor([[0, 1, 1, 2]]), torch.tensor([[2, 3, 0]]))
BLOCKS = ((torch.arange(8) // 4).reshape(1, 8) * 2 + (torch.arange(8) // 4).reshape(8, 1)).reshape(
    1, 1, 8, 8
)
PPE = "perturbations_per_eval"


def loader_case() -> Any:
    g = torch.Generator().manual_seed(14)
    data = TensorDataset(torch.randn(7, 6, generator=g), torch.randint(0, 3, (7,), generator=g))
    return DataLoader(data, batch_size=3)


def summed_loss(acc: Any, out: torch.Tensor, batch: Any) -> torch.Tensor:
    loss = nn.functional.cross_entropy(out, batch[1], reduction="sum")
    return loss if acc is None else acc + loss


CASES = [
    Case("ablation-mlp", _on(ReLUMLP, attr.FeatureAblation), x_mlp,
         {"target": [0, 1, 2, 0], "baselines": 0.2}, chunk_arg=PPE),
    Case("ablation-multi-cross-tensor", _on(MultiInputModel, attr.FeatureAblation), x_multi,
         {"target": 1, "feature_mask": CROSS, "baselines": (0.1, torch.zeros(1, 3)),
          "additional_forward_args": (SCALE,)}, chunk_arg=PPE),
    Case("ablation-resnet-blocks", _on(TinyResNet, attr.FeatureAblation), x_img,
         {"target": 2, "feature_mask": BLOCKS}, chunk_arg=PPE),
    Case("ablation-batch-total", _on(ReLUMLP, attr.FeatureAblation, batch_total), x_mlp,
         {"feature_mask": GROUPS}, chunk_arg=PPE, chunk_values=(None, 1),
         output=lambda m, x: (torch.Size([1, 6]),), batch_invariant=False),
    Case("occlusion-convnet", _on(ConvNet, attr.Occlusion), x_digit,
         {"target": 3, "sliding_window_shapes": (1, 3, 3), "strides": (1, 2, 2)}, chunk_arg=PPE),
    Case("occlusion-multi", _on(MultiInputModel, attr.Occlusion), x_multi,
         {"target": 0, "sliding_window_shapes": ((2,), (2,)), "baselines": (0.3, 0.0),
          "additional_forward_args": (SCALE,)}, chunk_arg=PPE),
    Case("permutation-mlp", _on(ReLUMLP, attr.FeaturePermutation), x_mlp,
         {"target": 1}, chunk_arg=PPE, batch_invariant=False, random=True),
    Case("permutation-batch-total", _on(ReLUMLP, attr.FeaturePermutation, batch_total), x_mlp,
         {"feature_mask": GROUPS}, chunk_arg=PPE, chunk_values=(None, 1),
         output=lambda m, x: (torch.Size([1, 6]),), batch_invariant=False, random=True),
    Case("svs-mlp", _on(ReLUMLP, attr.ShapleyValueSampling), x_mlp,
         {"target": [0, 1, 2, 0], "n_samples": 4}, chunk_arg=PPE, random=True),
    Case("svs-multi-cross-tensor", _on(MultiInputModel, attr.ShapleyValueSampling), x_multi,
         {"target": 2, "feature_mask": CROSS, "n_samples": 3,
          "additional_forward_args": (SCALE,)}, chunk_arg=PPE, random=True),
    Case("shapley-exact-mlp", _on(ReLUMLP, attr.ShapleyValues), x_mlp,
         {"target": 1, "feature_mask": GROUPS, "baselines": 0.1}, chunk_arg=PPE),
    Case("shapley-exact-resnet", _on(TinyResNet, attr.ShapleyValues), x_img,
         {"target": 0, "feature_mask": BLOCKS}, chunk_arg=PPE),
    Case("dataloader-ablation", _on(ReLUMLP, lambda m: attr.DataLoaderAttribution(attr.FeatureAblation(m))),
         loader_case, {"input_roles": (0, 2), "reduce": summed_loss, "feature_mask": GROUPS},
         chunk_arg="perturbations_per_pass", output=lambda m, x: (torch.Size([1, 6]),),
         batch_invariant=False),
]  # fmt: skip
