"""Running the model and turning its output into one objective score per example."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import Call, Tensors
from perspicio._core.target import flat_rows
from perspicio._core.validate import ArgumentError, plain_ints


def _takes_no_args(fn: Callable[..., Any]) -> bool:
    if isinstance(fn, torch.nn.Module):
        return False
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return not params


def run_forward(
    forward_func: Callable[..., Any], inputs: Tensors, args: tuple[Any, ...] = ()
) -> Any:
    """``forward_func(*inputs, *args)``; a function of no parameters is called bare."""
    if _takes_no_args(forward_func):
        return forward_func()
    return forward_func(*inputs, *args)


def forward_call(
    forward_func: Callable[..., Any], call: Call, inputs: Tensors | None = None
) -> Any:
    """Run the model on ``call`` (or on ``inputs`` in place of the call's inputs)."""
    return run_forward(forward_func, call.inputs if inputs is None else inputs, call.args)


def scores(forward_func: Callable[..., Any], call: Call, inputs: Tensors | None = None) -> Tensor:
    """The objective: the target score of each example, shape ``(N,)`` (or a scalar)."""
    return call.target.select(forward_call(forward_func, call, inputs))


NeuronSelector = int | tuple[int | slice, ...] | Callable[[Any], Tensor]


def select_neuron(activation: Tensors, selector: NeuronSelector, is_tuple: bool) -> Tensor:
    """One score per example from a captured layer activation.

    ``selector`` is an int or a tuple of ints and slices indexing the dims after the batch
    (slices select a group of neurons whose values are summed), or a callable on the layer
    output (the tensor, or the tuple when the layer returns a tuple) returning one value per
    example.
    """
    selector = plain_ints(selector)
    if callable(selector):
        out = selector(activation if is_tuple else activation[0])
        n = len(activation[0])
        if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != n:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ArgumentError(
                f"neuron_selector must return one value per example (shape ({n}, ...)), got {got}"
            )
        return flat_rows(out, n).sum(1)
    if len(activation) != 1:
        raise ArgumentError(
            "the layer returns a tuple of tensors: use a callable neuron_selector to pick from it"
        )
    act = activation[0]
    index = (selector,) if isinstance(selector, int) else tuple(selector)
    if len(index) > act.dim() - 1:
        raise ArgumentError(
            f"neuron_selector {selector!r} has {len(index)} indices but the layer output has "
            f"shape {tuple(act.shape)} ({act.dim() - 1} dims after the batch)"
        )
    for d, i in enumerate(index):
        if isinstance(i, int) and not -act.shape[d + 1] <= i < act.shape[d + 1]:
            raise ArgumentError(
                f"neuron_selector {selector!r} is out of range for layer output of shape "
                f"{tuple(act.shape)} (dim {d + 1} has size {act.shape[d + 1]})"
            )
        if not isinstance(i, int | slice):
            raise TypeError(f"neuron_selector entries must be ints or slices, got {i!r}")
    return flat_rows(act[_index(index)], len(act)).sum(1)


def _index(index: tuple[int | slice, ...]) -> tuple[slice | int, ...]:
    """``[:, *index]`` written so that Python 3.10 parses it."""
    full: tuple[slice | int, ...] = (slice(None), *index)
    return full


def check_neuron_selector(selector: Any) -> None:
    """Type check before any model call."""
    selector = plain_ints(selector)
    if callable(selector) or (isinstance(selector, int) and not isinstance(selector, bool)):
        return
    if isinstance(selector, tuple) and all(
        isinstance(i, int | slice) and not isinstance(i, bool) for i in selector
    ):
        return
    raise TypeError(
        f"neuron_selector must be an int, a tuple of ints/slices or a callable, got {selector!r}"
    )


def unpack_batch(
    forward_func: Callable[..., Any], batch: Any, name: str = "inputs"
) -> tuple[Callable[..., Any], Any]:
    """A model and its inputs in positional form, for batches given as dicts.

    A tensor or a tuple/list of tensors is returned as it is. A mapping (a Hugging Face style
    batch: ``input_ids``, ``attention_mask``, ...) becomes the tuple of its tensor values and a
    forward function that calls ``forward_func(**batch)`` with them (non-tensor values are
    passed along unchanged). Either way, a model output that is not a tensor but has a
    ``logits`` attribute (a Hugging Face ``ModelOutput``) is replaced by its logits.
    """
    if isinstance(batch, Mapping):
        keys = [k for k, v in batch.items() if isinstance(v, Tensor)]
        if not keys:
            raise ArgumentError(f"{name} is a mapping without tensor values: {list(batch)}")
        rest = {k: v for k, v in batch.items() if not isinstance(v, Tensor)}

        def keyword_forward(*tensors: Any) -> Any:
            n = len(keys)
            if len(tensors) > n:
                raise ArgumentError(
                    "additional_forward_args cannot be combined with a dict batch: put them "
                    "in the dict"
                )
            return _logits(forward_func(**dict(zip(keys, tensors[:n])), **rest))

        return keyword_forward, tuple(batch[k] for k in keys)
    return (lambda *a: _logits(run_forward(forward_func, a))), batch


def _logits(out: Any) -> Any:
    """A Hugging Face ``ModelOutput``'s logits; anything else unchanged."""
    if not isinstance(out, Tensor) and isinstance(getattr(out, "logits", None), Tensor):
        return out.logits
    return out
