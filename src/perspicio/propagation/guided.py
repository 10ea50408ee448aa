"""Guided Backpropagation and Deconvolution: ReLU gradient overrides."""

from __future__ import annotations

from typing import Any

from torch import nn

from perspicio._core.attribution import GradientAttribution
from perspicio._core.call import TensorOrTensors, build_call
from perspicio._core.sites import InputSite, target_objective
from perspicio.propagation.composite import Composite
from perspicio.propagation.deep_lift import check_model
from perspicio.propagation.rules import DeconvReLURule, GuidedReLURule, PropagationRule


class _ReLUOverride(GradientAttribution):
    _rule: PropagationRule

    def __init__(self, model: nn.Module) -> None:
        check_model(model, type(self).__name__)
        super().__init__(model)
        self.model = model

    def attribute(
        self, inputs: TensorOrTensors, target: Any = None, additional_forward_args: Any = None
    ) -> TensorOrTensors:
        """Input gradients with every ``nn.ReLU`` module's backward overridden."""
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        with Composite({nn.ReLU: self._rule}).context(self.model):
            grads, _ = InputSite().grads(target_objective(self.model), call)
        return call.restore(grads)


class GuidedBackprop(_ReLUOverride):
    """Guided Backpropagation (Springenberg et al., 2014, https://arxiv.org/abs/1412.6806).

    Gradients in which every ReLU module also blocks negative backward signals.

    Example:
        >>> import torch
        >>> from perspicio.attr import GuidedBackprop
        >>> from perspicio.testing import ReLUMLP
        >>> GuidedBackprop(ReLUMLP()).attribute(torch.randn(2, 6), target=0).shape
        torch.Size([2, 6])
    """

    _rule = GuidedReLURule()


class Deconvolution(_ReLUOverride):
    """Deconvolution (Zeiler & Fergus, 2014, https://arxiv.org/abs/1311.2901).

    Gradients in which every ReLU module applies a ReLU to the backward signal instead of its
    forward mask.

    Example:
        >>> import torch
        >>> from perspicio.attr import Deconvolution
        >>> from perspicio.testing import ReLUMLP
        >>> Deconvolution(ReLUMLP()).attribute(torch.randn(2, 6), target=0).shape
        torch.Size([2, 6])
    """

    _rule = DeconvReLURule()
