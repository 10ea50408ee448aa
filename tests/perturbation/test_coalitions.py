"""The sampling side shared by Lime and KernelShap (perturbation/coalitions.py)."""

from __future__ import annotations

from itertools import combinations

import pytest
import torch
from torch import Tensor

from perspicio._core.call import build_call
from perspicio._core.masks import FeatureGroups
from perspicio.perturbation import coalitions as co
from perspicio.perturbation.lime_functions import (
    construct_feature_mask,
    default_from_interp_rep_transform,
)


def _problem(
    x: Tensor | tuple[Tensor, ...],
    mask: object = None,
    base: object = None,
    n: int = 5,
    rows: int = 1,
) -> co.Problem:
    call = build_call(x, None, None, base, use_baselines=True)
    masks, width = construct_feature_mask(mask, call.inputs)  # type: ignore[arg-type]
    return co.Problem(call, masks, FeatureGroups.build(masks, call.inputs), width, n, rows)


@pytest.mark.parametrize("n", [50, 3000])
def test_uniform_subsets_have_the_sizes_and_are_uniform(n: int) -> None:
    torch.manual_seed(0)
    sizes = torch.randint(0, 6, (n,))
    z = co.uniform_subsets(sizes, 5)
    assert z.dtype == torch.bool and torch.equal(z.sum(1), sizes)
    torch.manual_seed(1)
    pairs = co.uniform_subsets(torch.full((20000,), 2), 5)
    codes = (pairs.long() * torch.tensor([1, 2, 4, 8, 16])).sum(1)
    counts = torch.bincount(codes, minlength=32)
    expected = [sum(1 << j for j in s) for s in combinations(range(5), 2)]
    assert counts.sum() == counts[expected].sum()  # only pairs
    freq = counts[expected].double() / 20000
    assert float((freq - 0.1).abs().max()) < 0.01


def test_bernoulli_coalitions() -> None:
    p = _problem(torch.zeros(3, 11), n=400, rows=3)  # 11 features: not a multiple of 8
    torch.manual_seed(0)
    z = co.bernoulli(p)
    assert z.shape == (1, 400, 11) and z.dtype == torch.bool  # shared by the 3 surrogates
    assert abs(float(z.double().mean()) - 0.5) < 0.02
    assert float(z.double().mean((0, 1)).min()) > 0.4


@pytest.mark.parametrize("base", [None, (0.25, 2), "tensor"])
@pytest.mark.parametrize("rows", [1, 2])
def test_coalition_inputs_equal_the_default_transform(base: object, rows: int) -> None:
    x = (torch.randn(2, 3), torch.randint(0, 9, (2, 2, 2)))  # a float and an integer input
    mask = (torch.tensor([[0, 1, 1]]), torch.tensor([[[2, 0], [3, 3]]]))
    b = (
        (torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[[7, 7], [8, 8]]]))
        if base == "tensor"
        else base
    )
    p = _problem(x, mask, b, n=6, rows=rows)
    torch.manual_seed(0)
    z = co.bernoulli(p)
    got = co.Coalitions(p, z).inputs(1, 4)
    assert got[1].dtype == x[1].dtype
    for j, s in enumerate(range(1, 4)):
        for r in range(2):
            zr = z[0, s].long().unsqueeze(0)
            bases = tuple(t if t.shape[0] == 1 else t[r : r + 1] for t in p.baselines)
            expected = default_from_interp_rep_transform(
                zr, tuple(t[r : r + 1] for t in x), feature_mask=p.masks, baselines=bases
            )
            for g, e in zip(got, expected):
                torch.testing.assert_close(g.reshape(3, 2, *g.shape[1:])[j, r : r + 1], e)


def test_coalition_inputs_with_per_example_masks() -> None:
    x = torch.arange(8.0).reshape(2, 4) + 1
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    p = _problem(x, mask, n=2, rows=2)
    z = torch.tensor([[[True, False], [False, True]], [[True, False], [False, True]]])
    got = co.Coalitions(p, z).inputs(0, 2)[0]
    assert got.tolist() == [[1, 2, 0, 0], [5, 0, 0, 0], [0, 0, 3, 4], [0, 6, 7, 8]]


def test_plan_stacks_samples_and_folds_outputs() -> None:
    p = _problem(torch.ones(2, 3), n=4, rows=2)
    z = torch.ones(2, 4, 3, dtype=torch.bool)
    plan = co.SamplePlan(co.Coalitions(p, z), rows=2)
    assert plan.total == 4 and plan.perturb(1, 3)[0].shape == (4, 3)
    plan.fold(0, 2, torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.zeros(2))
    plan.fold(2, 4, torch.tensor([[5.0, 6.0], [7.0, 8.0]]), torch.zeros(2))
    assert plan.y is not None and plan.y.tolist() == [[1, 3, 5, 7], [2, 4, 6, 8]]
    with pytest.raises(ValueError, match="one value per example"):
        plan.fold(0, 1, torch.zeros(1, 3), torch.zeros(3))


def test_attributions_layout() -> None:
    x = torch.zeros(2, 4)
    mask = torch.tensor([[1, 1, 3, 5], [5, 3, 3, 1]])  # ids 1, 3, 5 -> 0, 2, 4
    p = _problem(x, mask, rows=1)
    coef = torch.tensor([[10.0, 30.0, 50.0]])
    one = co.attributions(p, coef, p.groups.ids, True)
    assert one.tolist() == [[10, 10, 30, 50]]  # one surrogate: the first example's layout
    assert co.attributions(p, coef, p.groups.ids, False).tolist() == [[10, 0, 30, 0, 50]]


def test_group_sums_and_example_slice() -> None:
    x = (torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),)
    p = _problem(x, torch.tensor([[0, 1, 0]]))
    torch.testing.assert_close(
        co.group_sums(x, p.groups, 2), torch.tensor([[4.0, 2.0], [10.0, 5.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(
        co.group_sums(x, p.groups, 1), torch.tensor([[14.0, 7.0]], dtype=torch.float64)
    )
    assert co.example_slice(torch.ones(3, 2), 1, 3).shape == (1, 2)
    assert co.example_slice(torch.ones(1, 2), 0, 3).shape == (1, 2)
    assert co.example_slice(2.0, 0, 3) == 2.0


def test_count_surrogates() -> None:
    x = torch.randn(3, 2)
    per_example = build_call(x, None, None)
    assert co.count_surrogates(lambda t: t.sum(1), per_example, False) == 3
    assert co.count_surrogates(lambda t: t.sum(), per_example, False) == 1
    assert co.count_surrogates(lambda t: t, build_call(x[:1], None, None), False) == 1
    with pytest.raises(ValueError, match="one value per example"):
        co.count_surrogates(lambda t: t[:2].sum(1), per_example, False)
