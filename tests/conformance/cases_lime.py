"""Conformance cases for LimeBase, Lime and KernelShap."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from perspicio import attr
from perspicio.models import SkLearnLasso, TorchLinearRegression
from perspicio.testing import BasicLinearModel, ConvNet, MultiInputModel, ReLUMLP
from tests.conformance.battery import Case

PPE = "perturbations_per_eval"
SCALE = torch.tensor([0.5, 1.0, 2.0])
GROUPS = torch.tensor([[0, 0, 1, 2, 2, 3]])
CROSS = (torch.tensor([[0, 1, 1, 2]]), torch.tensor([[2, 3, 0]]))
QUADRANTS = (
    (torch.arange(8) // 4).reshape(1, 8) * 2 + (torch.arange(8) // 4).reshape(8, 1)
).reshape(1, 1, 8, 8)


def _on(model_cls: Any, cls: Any, **kw: Any) -> Any:
    def build() -> tuple[nn.Module, Any]:
        model = model_cls()
        return model, cls(model, **kw)

    return build


def _lime_base() -> tuple[nn.Module, Any]:
    model = ReLUMLP()

    def to_input(z: torch.Tensor, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return x * z.reshape(1, -1)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model(x)[:, 0].sum()

    method = attr.LimeBase(
        forward,
        TorchLinearRegression(),
        similarity_func=lambda x, xp, z, **kw: 1.0,
        perturb_func=lambda x, **kw: torch.randint(0, 2, (1, 6), device=x.device).float(),
        perturb_interpretable_space=True,
        from_interp_rep_transform=to_input,
        to_interp_rep_transform=None,
    )
    return model, method


def x_mlp() -> torch.Tensor:
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(20))


def x_lin() -> torch.Tensor:
    return torch.randn(3, 4, generator=torch.Generator().manual_seed(21))


def x_multi() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(22)
    return torch.randn(3, 4, generator=g), torch.randn(3, 3, generator=g)


def x_digit() -> torch.Tensor:
    return torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(23))


CASES = [
    Case(
        "lime-mlp",
        _on(ReLUMLP, attr.Lime),
        x_mlp,
        {"target": [0, 1, 2, 0], "n_samples": 40},
        chunk_arg=PPE,
        batch_invariant=False,
        random=True,
    ),
    Case(
        # a linear surrogate of a linear model is exact whatever the samples: batch invariant
        "lime-linear-exact",
        _on(BasicLinearModel, attr.Lime, interpretable_model=TorchLinearRegression()),
        x_lin,
        {"target": 1, "n_samples": 20, "baselines": 0.5},
        chunk_arg=PPE,
        random=True,
        atol=1e-4,
    ),
    Case(
        "lime-multi-cross",
        _on(MultiInputModel, attr.Lime),
        x_multi,
        {
            "target": 2,
            "feature_mask": CROSS,
            "additional_forward_args": (SCALE,),
            "n_samples": 30,
        },
        chunk_arg=PPE,
        batch_invariant=False,
        random=True,
    ),
    Case(
        "lime-coefficients",
        _on(ReLUMLP, attr.Lime),
        x_mlp,
        {"target": 1, "feature_mask": GROUPS, "n_samples": 30, "return_input_shape": False},
        chunk_arg=PPE,
        output=lambda model, x: (torch.Size([4, 4]),),
        batch_invariant=False,
        random=True,
    ),
    Case(
        "lime-sklearn-surrogate",
        _on(ReLUMLP, attr.Lime, interpretable_model=SkLearnLasso(alpha=0.01)),
        x_mlp,
        {"target": 0, "n_samples": 30},
        chunk_arg=PPE,
        batch_invariant=False,
        random=True,
    ),
    Case(
        "kernelshap-mlp",
        _on(ReLUMLP, attr.KernelShap),
        x_mlp,
        {"target": [2, 1, 0, 1], "n_samples": 40, "baselines": 0.1},
        chunk_arg=PPE,
        batch_invariant=False,
        random=True,
    ),
    Case(
        "kernelshap-digits-quadrants",
        _on(ConvNet, attr.KernelShap),
        x_digit,
        {"target": 3, "feature_mask": QUADRANTS, "n_samples": 12},
        chunk_arg=PPE,
        batch_invariant=False,
        random=True,
    ),
    Case(
        "kernelshap-multi",
        _on(MultiInputModel, attr.KernelShap),
        x_multi,
        {"target": 0, "additional_forward_args": (SCALE,), "n_samples": 30},
        chunk_arg=PPE,
        batch_invariant=False,
        random=True,
    ),
    Case(
        "limebase-batch-scalar",
        _lime_base,
        x_mlp,
        {"n_samples": 25},
        chunk_arg=PPE,
        chunk_values=(None, 1),
        output=lambda model, x: (torch.Size([1, 6]),),
        batch_invariant=False,
        random=True,
    ),
]
