"""Named LRP composites: which rule each kind of layer gets (Kohlbrenner et al. 2020,
"Towards Best Practice in Explaining Neural Network Decisions with LRP",
https://arxiv.org/abs/1910.09840; Montavon et al. 2019).

The recommended practice is ε for dense layers near the output, z⁺ or γ for convolutions,
and a rule of its own (z^B or flat) for the layer nearest the input. Each composite is a
:class:`~perspicio.propagation.composite.Composite`: pass it to ``LRP(model, composite=...)``
or use ``with composite.context(model):`` directly, where the input gradient of an output
score is then that score's relevance divided by the score (Captum's normalisation).
Element-wise activations and Dropout pass relevance through, average pooling and
:class:`~perspicio.propagation.canonizers.Sum` split it in proportion to their inputs, and
BatchNorm passes it through (merge it into the layer before it with
:class:`~perspicio.propagation.canonizers.MergeBatchNorm`).
"""

from __future__ import annotations

from torch import Tensor, nn

from perspicio.propagation.canonizers import Sum
from perspicio.propagation.composite import Composite
from perspicio.propagation.lrp_rules import (
    EpsilonRule,
    FlatRule,
    GammaRule,
    IdentityRule,
    ZBoxRule,
    ZPlusRule,
)
from perspicio.propagation.rules import PropagationRule

CONVOLUTIONS: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
DENSE: tuple[type[nn.Module], ...] = (nn.Linear,)
PASS_THROUGH: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
AVERAGES: tuple[type[nn.Module], ...] = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    Sum,
)
NORMS: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class LayerMapComposite(Composite):
    """A composite with an optional rule of its own for the first linear or convolution layer
    (the first in ``model.modules()`` order).

    Args:
        rules: ``{module type: rule}``, first match wins.
        first_layer: the rule of the first layer, or ``None``.
    """

    def __init__(
        self, rules: dict[type[nn.Module], PropagationRule], first_layer: PropagationRule | None
    ) -> None:
        super().__init__(rules)
        self.first_layer = first_layer

    def resolve(self, model: nn.Module) -> dict[nn.Module, PropagationRule]:
        found = super().resolve(model)
        if self.first_layer is not None:
            for module in model.modules():
                if isinstance(module, CONVOLUTIONS + DENSE):
                    found[module] = self.first_layer
                    break
        return found


def _map(conv: PropagationRule, epsilon: float, stabilizer: float) -> dict:
    rules: dict[type[nn.Module], PropagationRule] = dict.fromkeys(PASS_THROUGH, IdentityRule())
    rules.update(dict.fromkeys(NORMS, IdentityRule()))
    rules.update(dict.fromkeys(AVERAGES, EpsilonRule(stabilizer)))
    rules.update(dict.fromkeys(CONVOLUTIONS, conv))
    rules.update(dict.fromkeys(DENSE, EpsilonRule(epsilon)))
    return rules


class EpsilonPlus(LayerMapComposite):
    """ε for dense layers, z⁺ for convolutions (Kohlbrenner et al., 2020).

    Args:
        epsilon: ε of the dense layers.
        stabilizer: the small ε of the other rules.

    Example:
        >>> import torch
        >>> from perspicio.lrp import LRP, EpsilonPlus
        >>> from perspicio.testing import ConvNet
        >>> LRP(ConvNet(), composite=EpsilonPlus()).attribute(
        ...     torch.rand(2, 1, 8, 8), target=3).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> None:
        super().__init__(_map(ZPlusRule(stabilizer), epsilon, stabilizer), None)


class EpsilonGammaBox(LayerMapComposite):
    """z^B for the first layer, γ for the other convolutions, ε for dense layers
    (Montavon et al., 2019; Kohlbrenner et al., 2020).

    Args:
        low: lowest value an input can take (number or tensor broadcastable to the input).
        high: highest value an input can take.
        epsilon: ε of the dense layers.
        gamma: γ of the convolutions.
        stabilizer: the small ε of the other rules.
    """

    def __init__(
        self,
        low: float | Tensor,
        high: float | Tensor,
        epsilon: float = 1e-6,
        gamma: float = 0.25,
        stabilizer: float = 1e-6,
    ) -> None:
        rules = _map(GammaRule(gamma), epsilon, stabilizer)
        super().__init__(rules, ZBoxRule(low, high, stabilizer))


class EpsilonPlusFlat(LayerMapComposite):
    """The flat rule for the first layer, z⁺ for the other convolutions, ε for dense layers
    (Kohlbrenner et al., 2020).

    Args:
        epsilon: ε of the dense layers.
        stabilizer: the small ε of the other rules.
    """

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> None:
        super().__init__(_map(ZPlusRule(stabilizer), epsilon, stabilizer), FlatRule(stabilizer))
