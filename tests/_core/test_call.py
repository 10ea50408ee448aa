from __future__ import annotations

import pytest
import torch

from perspicio._core.call import (
    as_tensors,
    build_call,
    format_args,
    normalize_baselines,
    normalize_distribution,
)


def test_as_tensors_forms() -> None:
    x = torch.zeros(2, 3)
    assert as_tensors(x) == (x,)
    assert as_tensors((x, x))[1] is x
    assert as_tensors([x]) == (x,)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ([1, 2], TypeError, r"inputs\[0\] must be a torch.Tensor, got int"),
        ("abc", TypeError, "inputs must be a torch.Tensor, got str"),
        ((), ValueError, "at least one tensor"),
    ],
)
def test_as_tensors_rejects(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        as_tensors(value)


def test_batch_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"same batch size.*\[2, 3\]"):
        build_call((torch.zeros(2, 1), torch.zeros(3, 1)))


def test_zero_dim_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="batch dimension"):
        build_call(torch.tensor(1.0))


def test_integer_inputs_rejected_for_gradients() -> None:
    with pytest.raises(TypeError, match=r"inputs\[0\] has dtype torch.int64"):
        build_call(torch.zeros(2, 3, dtype=torch.long), require_float=True)


def test_format_args() -> None:
    t = torch.zeros(1)
    assert format_args(None) == ()
    assert format_args(t) == (t,)
    assert format_args((t, 3)) == (t, 3)
    assert format_args([1, 2]) == ([1, 2],)


@pytest.mark.parametrize(
    "baseline",
    [None, 0.5, 2, torch.zeros(4, 3), torch.zeros(1, 3), torch.zeros(3), torch.tensor(1.0)],
)
def test_baseline_forms_broadcast(baseline: object) -> None:
    x = torch.randn(4, 3)
    (b,) = normalize_baselines(baseline, (x,))  # type: ignore[arg-type]
    assert b.expand_as(x).shape == x.shape
    assert b.dtype == x.dtype


def test_baseline_values() -> None:
    x = torch.randn(4, 3)
    (b,) = normalize_baselines(0.5, (x,))
    assert torch.equal(b.expand_as(x), torch.full_like(x, 0.5))


@pytest.mark.parametrize(
    ("baselines", "error", "match"),
    [
        (torch.zeros(2, 3), ValueError, r"baselines\[0\] has shape \(2, 3\)"),
        (torch.zeros(4, 5), ValueError, r"baselines\[0\] has shape \(4, 5\)"),
        ((0.0, 0.0), ValueError, "one baseline per input: got 2 for 1"),
        ("zero", TypeError, r"baselines\[0\] must be a number or a tensor, got str"),
    ],
)
def test_bad_baselines(baselines: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        normalize_baselines(baselines, (torch.zeros(4, 3),))  # type: ignore[arg-type]


def test_repeat_tiles_and_interleaves_every_per_example_value() -> None:
    x = torch.arange(3.0).reshape(3, 1)
    extra = torch.tensor([10.0, 20.0, 30.0])
    call = build_call(x, target=[0, 1, 2], additional_forward_args=(extra, 7))
    tiled = call.repeat(2)
    assert tiled.inputs[0].flatten().tolist() == [0, 1, 2, 0, 1, 2]
    assert tiled.args[0].tolist() == [10, 20, 30, 10, 20, 30]
    assert tiled.args[1] == 7
    assert tiled.target.per_example is not None
    assert tiled.target.per_example.flatten().tolist() == [0, 1, 2, 0, 1, 2]
    inter = call.repeat(2, interleave=True)
    assert inter.inputs[0].flatten().tolist() == [0, 0, 1, 1, 2, 2]
    assert inter.args[0].tolist() == [10, 10, 20, 20, 30, 30]
    assert inter.target.per_example is not None
    assert inter.target.per_example.flatten().tolist() == [0, 0, 1, 1, 2, 2]


def test_rows_slices_per_example_values() -> None:
    call = build_call(
        torch.arange(4.0).reshape(4, 1),
        target=[3, 2, 1, 0],
        additional_forward_args=torch.arange(4),
    )
    sub = call.rows(slice(1, 3))
    assert sub.inputs[0].flatten().tolist() == [1, 2]
    assert sub.args[0].tolist() == [1, 2]
    assert sub.target.per_example is not None
    assert sub.target.per_example.flatten().tolist() == [2, 1]


def test_restore_keeps_the_users_form() -> None:
    x = torch.zeros(2, 2)
    assert isinstance(build_call(x).restore([x]), torch.Tensor)
    assert isinstance(build_call((x,)).restore([x]), tuple)


def test_distribution_forms() -> None:
    x = torch.zeros(2, 3)
    assert normalize_distribution(torch.ones(5, 3), (x,))[0].shape == (5, 3)
    assert normalize_distribution(torch.ones(3), (x,))[0].shape == (1, 3)
    assert normalize_distribution(0.0, (x,))[0].shape == (1, 3)
    assert normalize_distribution(lambda: torch.ones(4, 3), (x,))[0].shape == (4, 3)
    assert normalize_distribution(lambda inp: inp * 2, (x,))[0].shape == (2, 3)


@pytest.mark.parametrize(
    ("dist", "match"),
    [
        (torch.ones(5, 4), r"baselines\[0\] has shape \(5, 4\)"),
        ((torch.ones(5, 3), torch.ones(4, 2)), "same number of baselines"),
        (None, "baselines are required"),
    ],
)
def test_bad_distribution(dist: object, match: str) -> None:
    inputs = (
        (torch.zeros(2, 3), torch.zeros(2, 2)) if isinstance(dist, tuple) else (torch.zeros(2, 3),)
    )
    with pytest.raises(ValueError, match=match):
        normalize_distribution(dist, inputs)
