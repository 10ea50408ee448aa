"""Composites: which rule applies to which module, installed as a context manager.

Inside ``with composite.context(model):`` every call of a matched module is routed through
its rule in the backward pass. The hooks are removed on exit, whatever happens, and nothing is
stored on the model: per-call state lives in the composite's stacks and the autograd graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.hooks import handles
from perspicio.propagation.rules import SLOT, ModuleCall, PropagationRule, override

RuleLookup = Callable[[nn.Module], PropagationRule | None]


class Composite:
    """Maps module types to rules.

    Args:
        rules: ``{module type: rule}``; the first type in insertion order that matches
            (``isinstance``) wins.
        lookup: optional function that gives a rule for a specific module (or ``None`` to
            fall back to ``rules``), e.g. for per-module overrides.
    """

    def __init__(
        self,
        rules: dict[type[nn.Module], PropagationRule],
        lookup: RuleLookup | None = None,
    ) -> None:
        self.rules = dict(rules)
        self.lookup = lookup

    def rule_for(self, module: nn.Module) -> PropagationRule | None:
        if self.lookup is not None:
            rule = self.lookup(module)
            if rule is not None:
                return rule
        for kind, rule in self.rules.items():
            if isinstance(module, kind):
                return rule
        return None

    def resolve(self, model: nn.Module) -> dict[nn.Module, PropagationRule]:
        """The rule of every matched submodule of ``model`` (subclasses may look at the whole
        model, e.g. to give its first layer a rule of its own)."""
        found = {}
        for module in model.modules():
            rule = self.rule_for(module)
            if rule is not None:
                found[module] = rule
        return found

    @contextmanager
    def context(self, model: nn.Module) -> Iterator[Composite]:
        """Install the rules on every matched submodule of ``model`` for the ``with`` block."""
        with ExitStack() as stack:
            for module, rule in self.resolve(model).items():
                stack.enter_context(_install(module, rule))
            yield self


def _floating(value: Any) -> bool:
    return isinstance(value, Tensor) and value.is_floating_point()


@contextmanager
def _install(module: nn.Module, rule: PropagationRule) -> Iterator[None]:
    pending: list[tuple[tuple[Tensor, ...], tuple[Tensor, ...], tuple[Any, ...]] | None] = []

    def pre_hook(m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not torch.is_grad_enabled() or not args or not _floating(args[0]):
            pending.append(None)
            return None
        xs = tuple(a for a in args if _floating(a))
        xs_local = tuple(a.detach().requires_grad_(True) for a in xs)
        template = tuple(SLOT if _floating(a) else a for a in args)
        pending.append((xs, xs_local, template))
        it = iter(xs_local)
        # copies, so that in-place modules leave the inputs intact
        return tuple(next(it).clone() if a is SLOT else a for a in template)

    def post_hook(m: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
        entry = pending.pop()
        if entry is None or not isinstance(out, Tensor):
            return None
        xs, xs_local, template = entry
        detached = tuple(x.detach() for x in xs)
        call = ModuleCall(
            m, detached[0], out.detach(), xs_local[0], out, detached, xs_local, template
        )
        return override(rule, xs, call)

    # the rule's hook runs first, so that hooks recording the output (Layer methods) see it
    with handles(
        module.register_forward_pre_hook(pre_hook),
        module.register_forward_hook(post_hook, prepend=True),
    ):
        yield
