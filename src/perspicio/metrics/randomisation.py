"""Model-parameter randomisation test (Adebayo et al., 2018, https://arxiv.org/abs/1810.03292).

A sanity check: an explanation that depends on what the model learned must change when the
learned parameters are replaced by random ones. The parameters of a deep copy of the model
are re-initialised layer by layer, from the output back (cascading: cumulatively;
independent: one layer at a time), and each randomised explanation is compared with the
original one. High similarity means the explanation fails the check. The user's model is
never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.attribution import Attribution
from perspicio._core.call import TensorOrTensors, as_tensors
from perspicio._core.target import flat_rows
from perspicio._core.validate import ArgumentError
from perspicio.metrics.faithfulness import pearson

Similarity = Callable[[Tensor, Tensor], Tensor]


def average_ranks(values: Tensor) -> Tensor:
    """Ranks ``0..D-1`` of each row of ``(N, D)``; tied values share their average rank."""
    n, d = values.shape
    sorted_values, order = torch.sort(values, dim=1, stable=True)
    new_group = torch.ones_like(sorted_values, dtype=torch.long)
    new_group[:, 1:] = (sorted_values[:, 1:] != sorted_values[:, :-1]).long()
    group = new_group.cumsum(1) - 1  # (N, D): tie group of each sorted position
    pos = torch.arange(d, device=values.device, dtype=torch.float64).expand(n, d)
    first = torch.full((n, d), float(d), dtype=torch.float64, device=values.device)
    last = torch.full((n, d), -1.0, dtype=torch.float64, device=values.device)
    first = first.scatter_reduce(1, group, pos, "amin")
    last = last.scatter_reduce(1, group, pos, "amax")
    mid = (torch.gather(first, 1, group) + torch.gather(last, 1, group)) / 2
    return torch.empty_like(mid).scatter_(1, order, mid)


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of the rows of ``a`` and ``b`` (ties get average ranks)."""
    return pearson(average_ranks(a), average_ranks(b)).to(a.dtype)


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


SIMILARITIES: dict[str, Similarity] = {
    "spearman": spearman,
    "spearman_abs": lambda a, b: spearman(a.abs(), b.abs()),
    "pearson": lambda a, b: pearson(a, b),
    "cosine": _cosine,
}


def _explainer(
    explanation_func: Any, model: nn.Module
) -> Callable[[nn.Module | None], Callable[..., Any]]:
    """``explain(copy)``: the explanation function bound to ``copy`` (``None``: the original)."""
    method = getattr(explanation_func, "__self__", None)
    if isinstance(method, Attribution):
        explanation_func = method
    if isinstance(explanation_func, Attribution):
        instance = explanation_func
        if instance.forward_func is not model:
            raise ArgumentError(
                "an attribution object (or its attribute method) must be built on the model "
                "itself to be copied with it; pass a function (model, inputs, **kwargs) instead"
            )

        def bind_instance(m: nn.Module | None) -> Callable[..., Any]:
            if m is None:
                return instance.attribute
            clone = copy.deepcopy(instance, {id(model): m, **_memo(model, m)})
            return clone.attribute

        return bind_instance
    if isinstance(explanation_func, type) and issubclass(explanation_func, Attribution):
        cls = explanation_func
        return lambda m: cls(model if m is None else m).attribute
    if not callable(explanation_func):
        raise TypeError(
            f"explanation_func must be an Attribution class or object, its attribute method, "
            f"or a function (model, inputs, **kwargs), got {type(explanation_func).__name__}"
        )
    fn = explanation_func
    return lambda m: lambda inputs, **kw: fn(model if m is None else m, inputs, **kw)


def _memo(model: nn.Module, clone: nn.Module) -> dict[int, Any]:
    """Deep-copy memo mapping each submodule and parameter of ``model`` to ``clone``'s."""
    memo: dict[int, Any] = {}
    for (_, a), (_, b) in zip(model.named_modules(), clone.named_modules()):
        memo[id(a)] = b
    for (_, a), (_, b) in zip(model.named_parameters(), clone.named_parameters()):
        memo[id(a)] = b
    return memo


def _layer_names(model: nn.Module, layers: Sequence[str | nn.Module] | None) -> list[str]:
    names = {id(m): name for name, m in model.named_modules()}
    if layers is None:
        found = [n for n, m in model.named_modules() if any(True for _ in m.parameters(False))]
        if not found:
            raise ArgumentError("the model has no parameters to randomise")
        return found[::-1]
    out = []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Module):
            if id(layer) not in names:
                raise ArgumentError(
                    f"layers[{i}] ({type(layer).__name__}) is not part of the model"
                )
            out.append(names[id(layer)])
        elif isinstance(layer, str) and layer in dict(model.named_modules()):
            out.append(layer)
        else:
            raise ArgumentError(f"layers[{i}] = {layer!r} is not a module name of the model")
    return out


def randomise_module(module: nn.Module) -> None:
    """Re-initialise ``module``'s own parameters (its ``reset_parameters`` when it has one)."""
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
        return
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            std = float(p.std()) if p.numel() > 1 else 0.0
            p.normal_(0.0, std if std > 0 else 0.01)


def _flat(explanation: Any) -> Tensor:
    parts = as_tensors(explanation, "the explanation")
    n = parts[0].shape[0]
    return torch.cat([flat_rows(p.detach(), n) for p in parts], 1)


def model_parameter_randomisation(
    model: nn.Module,
    explanation_func: Any,
    inputs: TensorOrTensors,
    layers: Sequence[str | nn.Module] | None = None,
    mode: str = "cascading",
    similarity_func: str | Similarity = "spearman",
    **kwargs: Any,
) -> dict[str, Tensor]:
    """Similarity of the explanations of randomised models to the original (Adebayo et al.).

    Args:
        model: the model; only deep copies of it are randomised.
        explanation_func: an Attribution class (``Saliency``), an Attribution object built on
            ``model`` or its ``attribute`` method (copied together with the model), or a
            function ``(model, inputs, **kwargs) -> attributions``.
        layers: module names or modules, in the order to randomise them; default every
            module with parameters of its own, from the output back to the input.
        mode: ``'cascading'`` (randomise cumulatively) or ``'independent'`` (one at a time).
        similarity_func: ``'spearman'`` (default), ``'spearman_abs'``, ``'pearson'``,
            ``'cosine'``, or a function ``(a, b) -> (N,)`` of flattened ``(N, D)`` explanations.
        **kwargs: passed to the explanation (``target``, ``baselines``, ...).

    Returns:
        ``{layer name: (N,) similarity}`` in the order of randomisation. Parameters are drawn
        from the global torch generator: seed it for repeatable results.

    Example:
        >>> import torch
        >>> from perspicio.attr import Saliency
        >>> from perspicio.metrics import model_parameter_randomisation
        >>> from perspicio.testing import ReLUMLP
        >>> sims = model_parameter_randomisation(ReLUMLP(), Saliency, torch.randn(2, 6), target=0)
        >>> list(sims)
        ['fc3', 'fc2', 'fc1']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if mode not in ("cascading", "independent"):
        raise ArgumentError(f"mode must be 'cascading' or 'independent', got {mode!r}")
    if isinstance(similarity_func, str):
        if similarity_func not in SIMILARITIES:
            raise ArgumentError(
                f"similarity_func must be one of {sorted(SIMILARITIES)} or a callable, "
                f"got {similarity_func!r}"
            )
        similarity_func = SIMILARITIES[similarity_func]
    elif not callable(similarity_func):
        raise TypeError(f"similarity_func must be a name or a callable, got {similarity_func!r}")
    names = _layer_names(model, layers)
    explain = _explainer(explanation_func, model)
    original = _flat(explain(None)(inputs, **kwargs))
    results: dict[str, Tensor] = {}
    clone = copy.deepcopy(model)
    for name in names:
        if mode == "independent":
            clone = copy.deepcopy(model)
        randomise_module(clone.get_submodule(name))
        randomised = _flat(explain(clone)(inputs, **kwargs))
        results[name] = similarity_func(original, randomised)
    return results
