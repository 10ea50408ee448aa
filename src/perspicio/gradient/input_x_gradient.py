"""Input × Gradient."""

from __future__ import annotations

from typing import Any

from perspicio._core.attribution import GradientAttribution
from perspicio._core.call import TensorOrTensors, build_call
from perspicio._core.sites import InputSite, target_objective


class InputXGradient(GradientAttribution):
    """Gradient times input (Shrikumar et al., 2016, https://arxiv.org/abs/1605.01713).

    Example:
        >>> import torch
        >>> from perspicio.attr import InputXGradient
        >>> from perspicio.testing import ReLUMLP
        >>> InputXGradient(ReLUMLP()).attribute(torch.randn(2, 6), target=0).shape
        torch.Size([2, 6])
    """

    _multiply_by_inputs = True

    def attribute(
        self, inputs: TensorOrTensors, target: Any = None, additional_forward_args: Any = None
    ) -> TensorOrTensors:
        """Gradients of the target output multiplied elementwise by the inputs."""
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        grads, _ = InputSite().grads(target_objective(self.forward_func), call)
        return call.restore(g * x for g, x in zip(grads, call.inputs))
