"""Canonizers: make a model LRP-ready for the length of a ``with`` block, without changing its
function (Kohlbrenner et al. 2020, https://arxiv.org/abs/1910.09840; Motzkus et al. 2022,
https://arxiv.org/abs/2211.06409).

LRP rules see modules, one at a time. Two common structures hide from them:

- a BatchNorm after a linear or convolution layer is an affine map of its own, which rules
  such as z⁺ or γ should see as part of the layer: :class:`MergeBatchNorm` folds it into the
  layer's weight and bias, and makes the BatchNorm an exact identity;
- a functional residual addition (``out + identity``) passes the full relevance to both
  summands: :class:`ResNetCanonizer` routes the additions of residual blocks through a
  :class:`Sum` module, whose rule splits relevance in proportion to the summands.

Both change the model only through scoped swaps (parameters, buffers and a block's
``forward``) that are undone on exit, whatever happens: the user's tensors are never written
to. Flatten and Dropout need no canonizer (relevance passes them unchanged), nor does average
pooling (the ε-rule splits relevance in proportion to the averaged values).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import torch
from torch import Tensor, fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from perspicio._core.hooks import swapped
from perspicio._core.validate import ArgumentError

MERGEABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class Sum(nn.Module):
    """Adds its inputs; an addition that LRP rules can see (e.g. a residual connection).

    Example:
        >>> import torch
        >>> from perspicio.lrp import Sum
        >>> Sum()(torch.ones(2), torch.ones(2))
        tensor([2., 2.])
    """

    def forward(self, *xs: Tensor) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Canonizer:
    """Base class: :meth:`context` changes a model for a ``with`` block and restores it."""

    @contextmanager
    def context(self, model: nn.Module) -> Iterator[Canonizer]:
        raise NotImplementedError(f"{type(self).__name__} does not implement context")
        yield self


class _OwnCode(fx.Tracer):
    """Traces one module's own ``forward``: calls of its submodules stay calls."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self._root = root

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is not self._root


def own_graph(module: nn.Module) -> fx.Graph | None:
    """The graph of ``module``'s own forward (``None`` when torch.fx cannot trace it)."""
    try:
        return _OwnCode(module).trace(module)
    except Exception:  # fx raises many kinds of errors on untraceable code
        return None


# --- BatchNorm merging ------------------------------------------------------------------


def batchnorm_pairs(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """``(layer, batchnorm)`` pairs of ``model`` where the BatchNorm is applied to the output
    of a linear or convolution layer, and to nothing else.

    Each container's own forward is traced with torch.fx; a pair is kept when the layer's
    output has no other use and both modules are called once. Containers that cannot be
    traced contribute no pairs.
    """
    pairs: list[tuple[nn.Module, nn.Module]] = []
    for parent in model.modules():
        if not parent._modules:
            continue
        graph = own_graph(parent)
        if graph is None:
            continue
        nodes = [n for n in graph.nodes if n.op == "call_module"]
        calls = Counter(n.target for n in nodes)
        for node in nodes:
            bn = parent.get_submodule(str(node.target))
            prev = node.args[0] if len(node.args) == 1 and not node.kwargs else None
            if not isinstance(bn, _BatchNorm) or not isinstance(prev, fx.Node):
                continue
            if prev.op != "call_module" or len(prev.users) != 1:
                continue
            layer = parent.get_submodule(str(prev.target))
            if isinstance(layer, MERGEABLE) and calls[prev.target] == calls[node.target] == 1:
                pairs.append((layer, bn))
    return pairs


def _param(module: nn.Module, name: str) -> Tensor | None:
    p = module._parameters.get(name)
    return None if p is None else p.detach()


def _check_types(layer: Any, bn: Any) -> None:
    if not isinstance(layer, MERGEABLE) or not isinstance(bn, _BatchNorm):
        raise TypeError(
            "MergeBatchNorm pairs must be (Linear or Conv1d/2d/3d, BatchNorm) modules, got "
            f"({type(layer).__name__}, {type(bn).__name__})"
        )
    w = _param(layer, "weight")
    out = -1 if w is None else w.shape[0]
    if bn.num_features != out:
        raise ArgumentError(
            f"cannot merge {bn} into {type(layer).__name__} with {out} output channels"
        )


def _check_state(bn: _BatchNorm) -> None:
    if bn.training or bn.running_mean is None or bn.running_var is None:
        raise ArgumentError(
            f"cannot merge {bn}: it normalises with batch statistics (training mode or no "
            "running statistics); put the model in eval mode to merge BatchNorm layers"
        )


@contextmanager
def merged(layer: nn.Module, bn: _BatchNorm) -> Iterator[None]:
    """``layer`` computes ``bn(layer(x))`` and ``bn`` is an exact identity, for the block."""
    _check_types(layer, bn)
    _check_state(bn)
    assert bn.running_mean is not None and bn.running_var is not None
    w = _param(layer, "weight")
    assert w is not None
    mean, var = bn.running_mean.detach(), bn.running_var.detach()
    scale = torch.rsqrt(var + bn.eps)
    gamma, beta, b = _param(bn, "weight"), _param(bn, "bias"), _param(layer, "bias")
    if gamma is not None:
        scale = scale * gamma
    shift = -mean * scale
    if beta is not None:
        shift = shift + beta
    bias = b if b is not None else torch.zeros_like(shift)
    new_layer = {
        "weight": w * scale.reshape(-1, *[1] * (w.dim() - 1)).to(w.dtype),
        "bias": (bias * scale + shift).to(w.dtype),
    }
    # the BatchNorm passes its input through unchanged (an eps of 0 would do it too, but
    # torch < 2.13 rejects it); its statistics are not updated in training mode
    identity: dict[str, Any] = {"forward": _identity}
    with swapped(layer, new_layer), swapped(bn, identity):
        yield


class MergeBatchNorm(Canonizer):
    """Folds each BatchNorm into the linear or convolution layer before it, for the block.

    The layer gets the weight ``s·W`` and bias ``s·b + β − s·μ`` (with
    ``s = γ / sqrt(σ² + eps)``) and the BatchNorm becomes an exact identity, so the model
    computes the same function (up to float rounding) and LRP rules see one affine layer.
    The BatchNorm layers must be in eval mode.

    Args:
        pairs: ``(layer, batchnorm)`` pairs to merge. By default they are found by tracing
            each container's forward with torch.fx (see :func:`batchnorm_pairs`).

    Example:
        >>> import torch
        >>> from perspicio.lrp import MergeBatchNorm
        >>> from perspicio.testing import TinyResNet
        >>> model, x = TinyResNet(), torch.rand(2, 3, 8, 8)
        >>> with MergeBatchNorm().context(model):
        ...     merged = model(x)
        >>> torch.allclose(merged, model(x), atol=1e-5)
        True
    """

    def __init__(self, pairs: Sequence[tuple[nn.Module, nn.Module]] | None = None) -> None:
        if pairs is not None:
            for layer, bn in pairs:
                _check_types(layer, bn)
        self.pairs = None if pairs is None else list(pairs)
        self._found: WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], list[Any]]] = (
            WeakKeyDictionary()
        )

    def find(self, model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
        """The pairs to merge: the given ones, or those found in ``model`` (traced once while
        its modules stay the same)."""
        if self.pairs is not None:
            return self.pairs
        key, found = fingerprint(model), self._found.get(model)
        if found is None or found[0] != key:
            found = self._found[model] = (key, batchnorm_pairs(model))
        return found[1]

    @contextmanager
    def context(self, model: nn.Module) -> Iterator[MergeBatchNorm]:
        """Merge the pairs of ``model`` for the ``with`` block."""
        pairs = self.find(model)
        for _, bn in pairs:
            _check_state(bn)  # type: ignore[arg-type]
        with ExitStack() as stack:
            for layer, bn in pairs:
                stack.enter_context(merged(layer, bn))  # type: ignore[arg-type]
            yield self


# --- residual additions -----------------------------------------------------------------

_ADDS = {operator.add, torch.add}
_BLOCK_CHILDREN = ("conv1", "bn1", "conv2", "bn2")


def _is_addition(node: fx.Node) -> bool:
    if node.kwargs or len(node.args) != 2 or not all(isinstance(a, fx.Node) for a in node.args):
        return False
    if node.op == "call_function":
        return node.target in _ADDS
    return node.op == "call_method" and node.target == "add"


def fingerprint(module: nn.Module) -> tuple[int, ...]:
    """Identifies ``module``'s tree and code, to know when traced results are out of date."""
    return (id(type(module).forward), *(id(m) for m in module.modules()))


@dataclass
class SumCode:
    """A block's forward, traced and rewritten to add with a :class:`Sum` child.

    Attributes:
        key: the block's :func:`fingerprint` when traced.
        name: the name of the ``Sum`` child while the code runs.
        summer: the ``Sum`` module.
        forward: the rewritten forward, or ``None`` when the block adds nothing.
    """

    key: tuple[int, ...]
    name: str
    summer: Sum
    forward: Callable[..., Any] | None


def sum_code(block: nn.Module) -> SumCode:
    """Trace ``block`` and route each addition of two tensors through a ``Sum`` child."""
    graph = own_graph(block)
    if graph is None:
        raise ArgumentError(
            f"ResNetCanonizer cannot trace the forward of {type(block).__name__} with "
            "torch.fx; insert a perspicio.lrp.Sum module for its residual addition instead"
        )
    if sum(n.op == "placeholder" for n in graph.nodes) != 1:
        raise ArgumentError(
            f"ResNetCanonizer handles blocks whose forward takes one input; "
            f"{type(block).__name__}.forward takes more"
        )
    key, summer = fingerprint(block), Sum()
    additions = [n for n in graph.nodes if _is_addition(n)]
    if not additions:
        return SumCode(key, "", summer, None)
    name = "lrp_sum"
    while name in block._modules or hasattr(block, name):
        name += "_"
    for node in additions:
        with graph.inserting_after(node):
            node.replace_all_uses_with(graph.call_module(name, node.args))
        graph.erase_node(node)
    block._modules[name] = summer  # the generated code refers to it
    try:
        code = fx.GraphModule(block, graph, class_name=type(block).__name__)
    finally:
        del block._modules[name]
    return SumCode(key, name, summer, code.forward)


@contextmanager
def summed(block: nn.Module, code: SumCode) -> Iterator[None]:
    """``block`` runs ``code`` with its ``Sum`` child, for the ``with`` block."""
    if code.forward is None:
        yield
        return
    had_forward = "forward" in vars(block)
    old_forward: Any = vars(block).get("forward")
    block._modules[code.name] = code.summer
    try:
        block.forward = code.forward  # type: ignore[method-assign]
        yield
    finally:
        if had_forward:
            block.forward = old_forward
        else:
            vars(block).pop("forward", None)
        del block._modules[code.name]


class ResNetCanonizer(Canonizer):
    """Routes the residual additions of ResNet blocks through a :class:`Sum` module.

    A functional ``out + identity`` hands the full relevance to both summands; through
    :class:`Sum` the ε-rule splits it in proportion to them, so relevance is conserved. Each
    block's forward is traced with torch.fx and, for the ``with`` block, the traced code runs
    in its place with every addition of two tensors computed by a ``Sum`` child: the block
    computes exactly the same values. Combine with :class:`MergeBatchNorm` for torchvision
    ResNets.

    Args:
        block_types: the block classes to canonize. By default every module with children
            named ``conv1``, ``bn1``, ``conv2`` and ``bn2`` (torchvision's ``BasicBlock`` and
            ``Bottleneck``).

    Example:
        >>> import torch
        >>> from perspicio.lrp import ResNetCanonizer, Sum
        >>> from perspicio.testing import TinyResNet
        >>> model = TinyResNet()
        >>> with ResNetCanonizer().context(model):
        ...     sum(isinstance(m, Sum) for m in model.modules())
        2
    """

    def __init__(self, block_types: Sequence[type[nn.Module]] | None = None) -> None:
        if block_types is not None:
            for t in block_types:
                if not (isinstance(t, type) and issubclass(t, nn.Module)):
                    raise TypeError(f"block_types must hold nn.Module classes, got {t!r}")
        self.block_types = None if block_types is None else tuple(block_types)
        self._codes: WeakKeyDictionary[nn.Module, SumCode] = WeakKeyDictionary()

    def is_block(self, module: nn.Module) -> bool:
        if self.block_types is not None:
            return isinstance(module, self.block_types)
        return all(isinstance(module._modules.get(c), nn.Module) for c in _BLOCK_CHILDREN)

    def code(self, block: nn.Module) -> SumCode:
        """The rewritten code of ``block``, traced once while its modules stay the same."""
        code = self._codes.get(block)
        name_taken = code is not None and code.name and hasattr(block, code.name)
        if code is None or code.key != fingerprint(block) or name_taken:
            code = self._codes[block] = sum_code(block)
        return code

    @contextmanager
    def context(self, model: nn.Module) -> Iterator[ResNetCanonizer]:
        """Canonize every block of ``model`` for the ``with`` block."""
        codes = [(m, self.code(m)) for m in model.modules() if self.is_block(m)]
        with ExitStack() as stack:
            for block, code in codes:
                stack.enter_context(summed(block, code))
            yield self


def _identity(x: Tensor) -> Tensor:
    return x
