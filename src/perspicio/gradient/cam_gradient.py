"""Gradient-weighted CAMs: Grad-CAM++, HiResCAM, XGrad-CAM and LayerCAM.

Each is :class:`~perspicio.gradient.cam.GradientCam` (one backward pass from the target score
to the layer) with its own channel weights; ``g`` is the target's gradient with respect to the
layer's values ``A``, sums ``Σ_ij`` run over the positions after the channel dim. On a layer
followed by global average pooling and a linear head (``y_c = Σ_k W_ck mean_ij A_kij``) the
gradient is ``W_ck / P`` at each of the ``P`` positions, and Grad-CAM, HiResCAM and XGrad-CAM
all give ``Σ_k W_ck A_k / P``: the original CAM of Zhou et al. (2016) up to the factor ``1/P``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from perspicio.gradient.cam import GradientCam, safe_div, spatial_sum


class LayerGradCamPlusPlus(GradientCam):
    """Grad-CAM++ (Chattopadhyay et al., 2018, https://arxiv.org/abs/1710.11063).

    Channel weights ``w_k = Σ_ij α_kij ReLU(g_kij)`` with
    ``α_kij = g² / (2 g² + Σ_ab A_kab · g³)`` (the paper's closed form for an exponential of
    the score, whose higher derivatives are powers of the first; the positive factor
    ``exp(y_c)`` is dropped), and ``α = 0`` where its denominator is 0.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerGradCamPlusPlus
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> cam = LayerGradCamPlusPlus(model, model.relu2).attribute(torch.rand(2, 1, 8, 8), 3)
        >>> cam.shape
        torch.Size([2, 1, 8, 8])
    """

    @staticmethod
    def weights(grads: Tensor, values: Tensor) -> Tensor:
        g2 = grads * grads
        alpha = safe_div(g2, 2 * g2 + spatial_sum(values) * g2 * grads)
        return spatial_sum(alpha * F.relu(grads))


class LayerHiResCam(GradientCam):
    """HiResCAM (Draelos & Carin, 2020, https://arxiv.org/abs/2011.08891).

    The gradient multiplies the values position by position, ``map = Σ_k g_k ⊙ A_k``, so the
    map shows exactly the locations the score depends on through the layer: with a flatten and
    a linear head after the layer it sums to the score minus the head's bias.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerHiResCam
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> LayerHiResCam(model, model.pool).attribute(torch.rand(2, 1, 8, 8), 3).shape
        torch.Size([2, 1, 4, 4])
    """

    @staticmethod
    def weights(grads: Tensor, values: Tensor) -> Tensor:
        return grads


class LayerXGradCam(GradientCam):
    """XGrad-CAM (Fu et al., 2020, https://arxiv.org/abs/2008.02312).

    Channel weights are the gradient averaged with the channel's own (normalised) values as
    weights: ``w_k = Σ_ij g_kij A_kij / Σ_ab A_kab`` (0 for a channel whose values sum to 0).
    Meant for non-negative values (after a ReLU), as in the paper.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerXGradCam
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> LayerXGradCam(model, model.relu2).attribute(torch.rand(2, 1, 8, 8), 3).shape
        torch.Size([2, 1, 8, 8])
    """

    @staticmethod
    def weights(grads: Tensor, values: Tensor) -> Tensor:
        return safe_div(spatial_sum(grads * values), spatial_sum(values))


class LayerCam(GradientCam):
    """LayerCAM (Jiang et al., 2021, https://doi.org/10.1109/TIP.2021.3089943).

    Each position keeps its own weight, the positive part of the gradient:
    ``map = Σ_k ReLU(g_k) ⊙ A_k``. Works on shallow layers too, where one weight per channel
    blurs the map.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerCam
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> LayerCam(model, model.relu1).attribute(torch.rand(2, 1, 8, 8), 3).shape
        torch.Size([2, 1, 8, 8])
    """

    @staticmethod
    def weights(grads: Tensor, values: Tensor) -> Tensor:
        return F.relu(grads)
