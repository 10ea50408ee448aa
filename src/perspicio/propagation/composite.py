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
from perspicio.propagation.rules import ModuleCall, PropagationRule, override

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

    @contextmanager
    def context(self, model: nn.Module) -> Iterator[Composite]:
        """Install the rules on every matched submodule of ``model`` for the ``with`` block."""
        with ExitStack() as stack:
            for module in model.modules():
                rule = self.rule_for(module)
                if rule is not None:
                    stack.enter_context(_install(module, rule))
            yield self


@contextmanager
def _install(module: nn.Module, rule: PropagationRule) -> Iterator[None]:
    pending: list[tuple[Tensor, Tensor] | None] = []

    def pre_hook(m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not torch.is_grad_enabled() or not args or not isinstance(args[0], Tensor):
            pending.append(None)
            return None
        x = args[0]
        x_local = x.detach().requires_grad_(True)
        pending.append((x, x_local))
        return (x_local.clone(), *args[1:])  # a copy, so in-place modules leave x intact

    def post_hook(m: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
        entry = pending.pop()
        if entry is None or not isinstance(out, Tensor):
            return None
        x, x_local = entry
        call = ModuleCall(m, x.detach(), out.detach(), x_local, out)
        return override(rule, x, call)

    with handles(
        module.register_forward_pre_hook(pre_hook), module.register_forward_hook(post_hook)
    ):
        yield
