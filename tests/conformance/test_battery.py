"""Runs every case of every ``cases_*.py`` module through the conformance checks."""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from tests.conformance import battery
from tests.conformance.battery import Case, flatten, run


def _all_cases() -> list[Case]:
    cases: list[Case] = []
    pkg = importlib.import_module("tests.conformance")
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("cases_"):
            cases.extend(importlib.import_module(f"tests.conformance.{info.name}").CASES)
    return cases


CASES = _all_cases()
ids = [c.name for c in CASES]


def _close(a: Any, b: Any, atol: float) -> None:
    fa, fb = flatten(a), flatten(b)
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_output_form_and_shape(case: Case) -> None:
    model, method = case.build()
    inputs = case.inputs()
    out = run(case, (model, method))
    if case.output == "inputs":
        if isinstance(inputs, tuple):
            assert isinstance(out, tuple) and len(out) == len(inputs)
            for o, x in zip(out, inputs):
                assert o.shape == x.shape
        else:
            assert isinstance(out, Tensor) and out.shape == inputs.shape
    elif callable(case.output):
        expected = case.output(model, inputs)
        got = tuple(t.shape for t in flatten(out))
        assert got == tuple(expected)
    for t in flatten(out):
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("case", [c for c in CASES if c.batch_invariant], ids=lambda c: c.name)
def test_batch_invariance(case: Case) -> None:
    model, method = case.build()
    inputs = case.inputs()
    full = run(case, (model, method))
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    n = xs[0].shape[0]
    parts = []
    for i in range(n):
        torch.manual_seed(1234)
        kw = {k: battery.slice_example(v, i, n) for k, v in case.kwargs.items()}
        one = tuple(x[i : i + 1] for x in xs)
        parts.append(method.attribute(one if isinstance(inputs, tuple) else one[0], **kw))
    stacked = [torch.cat(ts) for ts in zip(*(flatten(p) for p in parts))]
    _close(flatten(full), stacked, case.atol)


@pytest.mark.parametrize("case", [c for c in CASES if c.chunk_arg], ids=lambda c: c.name)
def test_chunk_invariance(case: Case) -> None:
    assert case.chunk_arg is not None
    results = [run(case, **{case.chunk_arg: v}) for v in case.chunk_values]
    for r in results[1:]:
        _close(results[0], r, case.atol)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_no_residue_after_success(case: Case) -> None:
    model, method = case.build()
    inputs = case.inputs()
    before_inputs = [x.clone() for x in flatten(inputs)]
    flags = [x.requires_grad for x in flatten(inputs)]
    before = battery.snapshot(model)
    torch.manual_seed(0)
    method.attribute(inputs, **case.kwargs)
    battery.assert_same_state(before, battery.snapshot(model))
    for x, x0, rg in zip(flatten(inputs), before_inputs, flags):
        assert torch.equal(x, x0) and x.requires_grad == rg, "inputs were modified"


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_no_residue_after_exception(case: Case) -> None:
    model, method = case.build()
    leaf = battery.last_leaf(model)
    before = battery.snapshot(model)

    def explode(*_: Any) -> None:
        raise _Boom("forced failure inside the model")

    handle = leaf.register_forward_hook(explode)
    try:
        with pytest.raises(_Boom):
            run(case, (model, method))
    finally:
        handle.remove()
    battery.assert_same_state(before, battery.snapshot(model))


@pytest.mark.parametrize("case", [c for c in CASES if c.random], ids=lambda c: c.name)
def test_same_seed_same_result(case: Case) -> None:
    _close(run(case), run(case), 0.0)


def _to(value: Any, device: str) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple | list):
        return type(value)(_to(v, device) for v in value)
    return value


DEVICE = os.environ.get("PERSPICIO_TEST_DEVICE", "cuda")  # "cpu" checks the check itself
ON_CPU = {"lgxa-memory-efficient"}  # offloads to the CPU and answers there, as Captum's does


@pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_runs_on_the_inputs_device(case: Case) -> None:
    """With the model and the inputs on a GPU, the results are there too, and a deterministic
    method gives the CPU's numbers (to float rounding)."""
    model, method = case.build()
    on_cpu = run(case, (model, method))
    model.to(DEVICE)
    torch.manual_seed(1234)
    kwargs = {k: _to(v, DEVICE) for k, v in case.kwargs.items()}
    inputs = case.inputs()
    if isinstance(inputs, DataLoader):  # the user's loader decides where batches live
        inputs = [_to(batch, DEVICE) for batch in inputs]
    out = method.attribute(_to(inputs, DEVICE), **kwargs)
    where = "cpu" if case.name in ON_CPU else DEVICE
    for t in flatten(out):
        assert t.device.type == where and bool(torch.isfinite(t).all())
    if not case.random:
        _close(_to(out, "cpu"), on_cpu, max(case.atol, 1e-4))
