from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.robust import FGSM, MinParamPerturbation
from tests.helpers import CountingModel


@pytest.fixture(scope="module")
def linear_digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A softmax-linear model on 8x8 images, labels its own predictions. FGSM moves the logits
    linearly in epsilon, so the epsilons keeping the prediction form an interval and the
    bisection's assumption holds."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Softmax(dim=1)).eval()
    x = torch.rand(6, 1, 8, 8)
    return model, x, model(x).argmax(1)


def search(model: nn.Module, mode: str, **kwargs: object) -> MinParamPerturbation:
    return MinParamPerturbation(model, FGSM(model), "epsilon", 0.0, 1.0, 0.002, mode=mode,
                                **kwargs)  # fmt: skip


def test_binary_search_lands_within_one_percent_of_linear_search(linear_digits: tuple) -> None:
    model, x, y = linear_digits
    for i in range(len(x)):
        xi, yi = x[i : i + 1], y[i : i + 1]
        kwargs = {"attack_kwargs": {"target": yi}}
        adv_l, lin = search(model, "linear").evaluate(xi, target=yi, **kwargs)
        adv_b, bin_ = search(model, "binary").evaluate(xi, target=yi, **kwargs)
        assert lin is not None and bin_ is not None and lin > 0
        assert abs(bin_ - lin) <= 0.01 * lin
        assert model(adv_b).argmax(1) != yi and model(adv_l).argmax(1) != yi


def test_linear_search_is_the_first_failing_grid_value() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0]])

    def shift(v: torch.Tensor, delta: float) -> torch.Tensor:
        return v + torch.tensor([0.0, delta])

    grid, value = [], 0.0
    while value < 3.0:
        grid.append(value)
        value += 0.25
    # brute force: the batch is wrong as soon as one example is (x[0] at delta > 1)
    expected = next(d for d in grid if (model(shift(x, d)).argmax(1) != 0).any())
    for mode in ("linear", "binary"):
        adv, found = MinParamPerturbation(model, shift, "delta", 0.0, 3.0, 0.25, mode).evaluate(
            x, target=torch.tensor([0, 0])
        )
        assert found == expected == 1.25
        torch.testing.assert_close(adv, shift(x, 1.25))


@pytest.mark.parametrize("per_eval", [1, 3, 8])
@pytest.mark.parametrize("mode", ["linear", "binary"])
def test_results_do_not_depend_on_perturbations_per_eval(per_eval: int, mode: str) -> None:
    torch.manual_seed(0)
    model = CountingModel(nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)))
    x = torch.randn(1, 4)
    y = model(x).argmax(1)

    calls: dict[float, int] = {}

    def noise(v: torch.Tensor, std: float, scale: torch.Tensor) -> torch.Tensor:
        # the j-th attempt at a value draws the j-th noise for it: grouping attempts cannot
        # change which noise an attempt gets (one global stream would be consumed differently)
        calls[std] = calls.get(std, 0) + 1
        gen = torch.Generator().manual_seed(round(std * 1000) * 10 + calls[std])
        return v + std * scale * torch.randn(v.shape, generator=gen)

    found = []
    for ppe in (1, per_eval):
        calls.clear()
        s = MinParamPerturbation(model, noise, "std", 0.0, 5.0, 0.05, mode, num_attempts=3)
        found.append(s.evaluate(x, target=y, perturbations_per_eval=ppe,
                                attack_kwargs={"scale": torch.ones(4)}))  # fmt: skip
    assert found[0][1] is not None and found[0][1] == found[1][1]
    torch.testing.assert_close(found[0][0], found[1][0])


def test_no_failure_gives_none_and_custom_correct_fn() -> None:
    model = nn.Linear(3, 2)
    s = MinParamPerturbation(model, lambda v, k: v, "k", 0, 5, 1)
    assert s.evaluate(torch.ones(2, 3), target=model(torch.ones(2, 3)).argmax(1)) == (None, None)

    def far(out: torch.Tensor, ref: torch.Tensor) -> bool:
        return bool((out - ref).abs().max() < 0.5)

    ref = model(torch.zeros(1, 3)).detach()
    s = MinParamPerturbation(model, lambda v, k: v + k, "k", 0, 5, 1, correct_fn=far)
    _, k = s.evaluate(torch.zeros(1, 3), correct_fn_kwargs={"ref": ref})
    assert k == next(i for i in range(5) if not far(model(torch.full((1, 3), float(i))), ref))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arg_max": 0.05}, "arg_max"),
        ({"arg_step": 0.0}, "arg_step must be above 0"),
        ({"mode": "ternary"}, "mode must be one of"),
        ({"num_attempts": 0}, "num_attempts"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"arg_name": "k", "arg_min": 0.0, "arg_max": 1.0, "arg_step": 0.1, **kwargs}
    with pytest.raises(ArgumentError, match=message):
        MinParamPerturbation(nn.Linear(2, 2), lambda v, k: v, **args)


def test_target_is_required_by_the_default_correct_fn() -> None:
    s = MinParamPerturbation(nn.Linear(2, 2), lambda v, k: v, "k", 0, 1, 0.1)
    with pytest.raises(ArgumentError, match="target"):
        s.evaluate(torch.zeros(1, 2))
    with pytest.raises(ArgumentError, match="perturbations_per_eval"):
        s.evaluate(torch.zeros(1, 2), target=0, perturbations_per_eval=0)
