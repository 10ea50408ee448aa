from __future__ import annotations

import pytest
import torch

from perspicio.path.integral import METHODS, approximation, path_points


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 5, 50])
def test_weights_sum_to_one_and_points_in_unit_interval(method: str, n: int) -> None:
    alphas, weights = approximation(method, n)
    assert len(alphas) == len(weights) == n
    assert abs(sum(weights) - 1) < 1e-12
    assert all(0 <= a <= 1 for a in alphas)


@pytest.mark.parametrize(
    ("method", "n", "degree"),
    [("gausslegendre", 3, 5), ("riemann_trapezoid", 2, 1), ("riemann_middle", 1, 1)],
)
def test_exact_for_low_degree_polynomials(method: str, n: int, degree: int) -> None:
    alphas, weights = approximation(method, n)
    integral = sum(w * a**degree for a, w in zip(alphas, weights))
    assert abs(integral - 1 / (degree + 1)) < 1e-12


def test_riemann_points() -> None:
    assert approximation("riemann_left", 4)[0] == [0, 0.25, 0.5, 0.75]
    assert approximation("riemann_right", 4)[0] == [0.25, 0.5, 0.75, 1.0]
    assert approximation("riemann_middle", 2)[0] == [0.25, 0.75]
    assert approximation("riemann_trapezoid", 3) == ([0, 0.5, 1], [0.25, 0.5, 0.25])


def test_path_points_are_step_major() -> None:
    start, end = torch.zeros(2, 1), torch.tensor([[1.0], [2.0]])
    (pts,) = path_points((start,), (end,), [0.0, 0.5, 1.0])
    assert pts.flatten().tolist() == [0, 0, 0.5, 1, 1, 2]


@pytest.mark.parametrize(
    ("method", "n", "error", "match"),
    [
        ("euler", 5, ValueError, "method must be one of"),
        ("gausslegendre", 0, ValueError, "n_steps must be at least 1"),
        ("gausslegendre", 2.5, TypeError, "n_steps must be an int"),
        ("riemann_trapezoid", 1, ValueError, "at least 2"),
    ],
)
def test_bad_arguments(method: str, n: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        approximation(method, n)  # type: ignore[arg-type]
