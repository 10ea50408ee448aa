"""Layer-wise relevance propagation: LRP and LayerLRP (Bach et al., 2015).

One forward pass runs under a composite whose rules (see
:mod:`~perspicio.propagation.lrp_rules`) turn the backward pass into relevance propagation:
the input gradient of a target score is then its relevance divided by the score. Each module
gets, in this order: the rule the user set as ``module.rule`` (as in Captum), the rule of the
``composite`` given to the constructor, or the default rule of its type. Nothing is stored on
the model, a module may be called several times, and canonizers given to the constructor
(:mod:`~perspicio.propagation.canonizers`) are applied for the call and undone after it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.attribution import GradientAttribution, LayerAttribution, sum_rows
from perspicio._core.call import Call, TensorOrTensors, Tensors, as_tensors, build_call
from perspicio._core.forward import scores
from perspicio._core.hooks import capture, grad, leaves
from perspicio._core.validate import ArgumentError
from perspicio.propagation.canonizers import Canonizer, Sum
from perspicio.propagation.composite import Composite
from perspicio.propagation.deep_lift import check_model
from perspicio.propagation.lrp_rules import EpsilonRule, IdentityRule
from perspicio.propagation.rules import PropagationRule

logger = logging.getLogger(__name__)

# Captum's tables (types matched with isinstance), with the 1d/3d variants, transposed
# convolutions, more activations and Dropout kinds added; users may extend them.
SUPPORTED_LAYERS_WITH_RULES: dict[type[nn.Module], type[PropagationRule]] = {
    **dict.fromkeys((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), EpsilonRule),
    **dict.fromkeys((nn.Conv1d, nn.Conv2d, nn.Conv3d), EpsilonRule),
    **dict.fromkeys((nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d), EpsilonRule),
    **dict.fromkeys((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), EpsilonRule),
    **dict.fromkeys(
        (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d), EpsilonRule
    ),
    nn.Linear: EpsilonRule,
    **dict.fromkeys((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), EpsilonRule),
    Sum: EpsilonRule,
}
SUPPORTED_NON_LINEAR_LAYERS: list[type[nn.Module]] = [
    nn.ReLU,
    nn.Dropout,
    nn.Tanh,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Softplus,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
]
# leaves whose plain gradient only moves values around: relevance needs no rule there
REARRANGING: tuple[type[nn.Module], ...] = (nn.Flatten, nn.Unflatten, nn.Identity)
_PASS = IdentityRule()


def check_rule_attributes(model: nn.Module) -> None:
    """Every ``module.rule`` the user set must be a rule (as Captum checks)."""
    for name, module in model.named_modules():
        rule = getattr(module, "rule", None)
        if rule is not None and not isinstance(rule, PropagationRule):
            raise TypeError(
                f"module {name or '<model>'} ({type(module).__name__}) has rule {rule!r}: "
                "rules must be perspicio PropagationRule instances"
            )


def _default_rule(module: nn.Module, name: str) -> PropagationRule | None:
    for kind, rule_cls in SUPPORTED_LAYERS_WITH_RULES.items():
        if isinstance(module, kind):
            return rule_cls()
    if isinstance(module, tuple(SUPPORTED_NON_LINEAR_LAYERS)):
        return _PASS
    if isinstance(module, REARRANGING):
        return None
    raise TypeError(
        f"module {name or '<model>'} ({type(module).__name__}) has no LRP rule and there is no "
        "default rule for its type: set module.rule = EpsilonRule() (or another rule) on it, "
        "or pass a composite that covers it"
    )


def lrp_rules(model: nn.Module, composite: Composite | None = None) -> dict[str, Any]:
    """The rule of each module of ``model`` that has one, by module name.

    A module with a rule (its ``rule`` attribute, else the composite's, else for a leaf the
    default of its type) owns its whole subtree. A leaf with none raises a ``TypeError``
    naming it. Returns ``{name: (module, rule)}``.
    """
    check_rule_attributes(model)
    chosen = composite.resolve(model) if composite is not None else {}
    found: dict[str, Any] = {}

    def visit(module: nn.Module, name: str) -> None:
        rule = getattr(module, "rule", None) or chosen.get(module)
        if rule is None and not module._modules:
            rule = _default_rule(module, name)
        if rule is not None:
            found[name] = (module, rule)
            return
        for child_name, child in module.named_children():
            visit(child, f"{name}.{child_name}" if name else child_name)

    visit(model, "")
    return found


def propagate(
    model: nn.Module,
    call: Call,
    composite: Composite | None,
    canonizers: Sequence[Canonizer],
    layers: Sequence[nn.Module] = (),
    to_input: bool = False,
    verbose: bool = False,
) -> tuple[list[Tensors], Tensor]:
    """Relevance of the target scores at the inputs (or at each of ``layers``), and the scores.

    Rules are resolved (and missing ones reported) before the model is called.
    """
    lrp_rules(model, composite)
    with ExitStack() as stack:
        for canonizer in canonizers:
            stack.enter_context(canonizer.context(model))
        rules = lrp_rules(model, composite)  # canonizers may have added modules
        if verbose:
            for name, (module, rule) in rules.items():
                logger.info("LRP applies %r to %s (%s)", rule, name, type(module).__name__)
        by_module = {m: r for m, r in rules.values()}
        x = leaves(call.inputs)
        stack.enter_context(torch.enable_grad())
        # recorded in the graph (not as leaves), so that relevance reaches every layer
        rec = stack.enter_context(capture(layers, inputs=to_input))
        stack.enter_context(Composite({}, lookup=by_module.get).context(model))
        out = scores(model, call, x)
        if out.dim() != 1 or out.shape[0] != call.batch_size:
            raise ArgumentError(
                f"LRP needs one target score per example, got shape {tuple(out.shape)}; "
                "choose one output per example with target"
            )
        groups = [rec[m] for m in layers] if layers else [x]
        # rules read the (canonized) parameters in the backward pass: stay in the block
        flat = grad(out, tuple(t for g in groups for t in g))
    out = out.detach()
    it = iter(r * out.reshape(-1, *[1] * (r.dim() - 1)).to(r.dtype) for r in flat)
    return [tuple(next(it) for _ in g) for g in groups], out


def _check_options(composite: Any, canonizers: Any) -> list[Canonizer]:
    if composite is not None and not isinstance(composite, Composite):
        raise TypeError(f"composite must be a Composite, got {type(composite).__name__}")
    items = [] if canonizers is None else list(canonizers)
    for c in items:
        if not isinstance(c, Canonizer):
            raise TypeError(f"canonizers must be Canonizer instances, got {type(c).__name__}")
    return items


class LRP(GradientAttribution):
    """Layer-wise relevance propagation (Bach et al., 2015,
    https://doi.org/10.1371/journal.pone.0130140).

    The target score is redistributed layer by layer down to the inputs. By default, as in
    Captum, linear, convolution, pooling and BatchNorm layers use the ε-rule (ε = 1e-9),
    activations and Dropout pass relevance through unchanged, and any other leaf module must
    be given a rule as ``module.rule``. Beyond Captum: any module type may carry a rule (a
    container with a rule is treated as one layer), modules may be reused, Flatten/Identity
    need no rule, 1d/3d layers have defaults, and the keyword arguments below apply a
    composite and canonizers. Functional operations inside ``forward`` are not seen by the
    rules: reshaping is harmless, but a functional addition hands its full relevance to both
    summands (use :class:`~perspicio.propagation.canonizers.ResNetCanonizer` or a
    :class:`~perspicio.propagation.canonizers.Sum` module).

    Args:
        model: the model (an ``nn.Module``).
        composite: a :class:`~perspicio.propagation.composite.Composite` giving rules by
            module type (e.g. :class:`~perspicio.propagation.composites.EpsilonPlus`); a
            ``module.rule`` still wins, and modules it does not cover keep their default.
        canonizers: :class:`~perspicio.propagation.canonizers.Canonizer` objects applied to
            the model for each call (e.g. ``[MergeBatchNorm(), ResNetCanonizer()]``).

    Example:
        >>> import torch
        >>> from perspicio.attr import LRP
        >>> from perspicio.testing import ReLUMLP
        >>> attr, delta = LRP(ReLUMLP()).attribute(
        ...     torch.randn(3, 6), target=1, return_convergence_delta=True)
        >>> attr.shape, delta.shape
        (torch.Size([3, 6]), torch.Size([3]))
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        composite: Composite | None = None,
        canonizers: Sequence[Canonizer] | None = None,
    ) -> None:
        check_model(model, type(self).__name__)
        GradientAttribution.__init__(self, model)
        self.model = model
        self.canonizers = _check_options(composite, canonizers)
        self.composite = composite
        check_rule_attributes(model)

    def attribute(
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        verbose: bool = False,
    ) -> TensorOrTensors | tuple[TensorOrTensors, Tensor]:
        """Relevance of each input feature for the target score; it sums to about the score.

        Args:
            verbose: log (logger ``perspicio.propagation.lrp``, level INFO) which rule each
                module gets, where Captum prints it.
        """
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        (relevance,), out = propagate(
            self.model, call, self.composite, self.canonizers, verbose=verbose
        )
        result = call.restore(relevance)
        if not return_convergence_delta:
            return result
        return result, self.compute_convergence_delta(relevance, out)

    def compute_convergence_delta(  # type: ignore[override]
        self, attributions: TensorOrTensors, output: Tensor
    ) -> Tensor:
        """Relevance lost on the way: ``output − sum(attributions)`` per example (as Captum).

        It is zero for LRP-0 on a bias-free network; biases and ε absorb some relevance.
        """
        total = sum_rows(as_tensors(attributions, "attributions"))
        return output.flatten().to(total.dtype) - total.flatten()

    def has_convergence_delta(self) -> bool:
        return True

    @property
    def multiplies_by_inputs(self) -> bool:
        return True


class LayerLRP(LRP, LayerAttribution):
    """Relevance of a layer's output (or input) units, by LRP (Bach et al., 2015,
    https://doi.org/10.1371/journal.pone.0130140).

    Rules, composites and canonizers work as for :class:`LRP`. ``layer`` may be a list of
    modules (one result per layer, in a list). A reused layer is attributed at its last call.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerLRP
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> LayerLRP(model, model.fc2).attribute(torch.randn(3, 6), target=0).shape
        torch.Size([3, 8])
    """

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | list[nn.Module],
        *,
        composite: Composite | None = None,
        canonizers: Sequence[Canonizer] | None = None,
    ) -> None:
        LRP.__init__(self, model, composite=composite, canonizers=canonizers)
        self._bind_layer(model, layer, None)

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        verbose: bool = False,
    ) -> Any:
        """Relevance of the layer's units for the target score.

        Args:
            attribute_to_layer_input: relevance of the layer's inputs instead of its output.
            verbose: log which rule each module gets (see :meth:`LRP.attribute`).
        """
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        layers = list(self.layer) if isinstance(self.layer, list | tuple) else [self.layer]
        groups, out = propagate(
            self.model,
            call,
            self.composite,
            self.canonizers,
            layers,
            attribute_to_layer_input,
            verbose,
        )
        forms = [g[0] if len(g) == 1 else g for g in groups]
        many = isinstance(self.layer, list | tuple)
        result = forms if many else forms[0]
        if not return_convergence_delta:
            return result
        deltas = [self.compute_convergence_delta(g, out) for g in groups]
        return result, deltas if many else deltas[0]
