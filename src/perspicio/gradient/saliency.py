"""Saliency: the gradient of the output with respect to the inputs."""

from __future__ import annotations

from typing import Any

from perspicio._core.attribution import GradientAttribution
from perspicio._core.call import TensorOrTensors, build_call
from perspicio._core.sites import InputSite, target_objective


class Saliency(GradientAttribution):
    """Input gradients (Simonyan et al., 2013, https://arxiv.org/abs/1312.6034).

    Example:
        >>> import torch
        >>> from perspicio.attr import Saliency
        >>> from perspicio.testing import ReLUMLP
        >>> attr = Saliency(ReLUMLP()).attribute(torch.randn(2, 6), target=1)
        >>> attr.shape
        torch.Size([2, 6])
    """

    def attribute(
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        abs: bool = True,
        additional_forward_args: Any = None,
    ) -> TensorOrTensors:
        """Gradients of the target output w.r.t. each input.

        Args:
            abs: return the absolute value of the gradients (the default, as in the paper).
        """
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        grads, _ = InputSite().grads(target_objective(self.forward_func), call)
        return call.restore(g.abs() if abs else g for g in grads)
