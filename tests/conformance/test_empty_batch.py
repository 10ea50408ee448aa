"""An empty batch (N=0) gives correctly shaped empty attributions, or a clear ArgumentError."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError
from tests.conformance.battery import Case, flatten
from tests.conformance.test_battery import CASES

# Cases that refuse an empty batch, with the reason.
REFUSED = {
    "permutation-mlp": "needs at least 2 examples; got a batch of 0",
    "permutation-batch-total": "needs at least 2 examples; got a batch of 0",
    "lfp-mlp": "needs at least 2 examples; got a batch of 0",
}


def _empty(value: Any, n: int) -> Any:
    """A per-example value cut to no examples; anything else unchanged."""
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value[:0]
    if isinstance(value, list) and len(value) == n:
        return []
    if isinstance(value, tuple):
        return tuple(_empty(v, n) for v in value)
    return value


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_empty_batch(case: Case) -> None:
    model, method = case.build()
    inputs = case.inputs()
    if not all(isinstance(x, Tensor) for x in flatten(inputs)) or not flatten(inputs):
        pytest.skip("the inputs are not a batch of tensors (a DataLoader)")
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    n = xs[0].shape[0]
    empty = tuple(x[:0] for x in xs)
    kwargs = {k: _empty(v, n) for k, v in case.kwargs.items()}
    torch.manual_seed(1234)
    call = lambda: method.attribute(empty if isinstance(inputs, tuple) else empty[0], **kwargs)  # noqa: E731
    if case.name in REFUSED:
        with pytest.raises(ArgumentError, match=REFUSED[case.name]):
            call()
        return
    out = call()
    if case.output == "inputs":
        got = flatten(out)
        assert [t.shape for t in got] == [x.shape for x in empty]
    elif callable(case.output):  # the shapes for the full batch, with no examples
        full = case.output(model, inputs)
        expected = [s if s[0] != n else torch.Size((0, *s[1:])) for s in full]
        assert [t.shape for t in flatten(out)] == expected
    else:
        assert all(t.shape[0] == 0 for t in flatten(out))
