from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.robust import AttributionAttack, topk_intersection
from tests.helpers import CountingModel


def test_topk_intersection_by_hand() -> None:
    a = torch.tensor([[5.0, -4.0, 3.0, 0.1, 0.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    b = torch.tensor([[-9.0, 0.0, 0.2, 8.0, 1.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    # row 0: top-2 {0, 1} vs {0, 3}; row 1: {3, 4} vs {0, 1}
    torch.testing.assert_close(topk_intersection(a, b, 2), torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(topk_intersection(a, a, 3), torch.ones(2))
    pair = (a[:, :2], a[:, 2:])  # a tuple is one map per example
    torch.testing.assert_close(topk_intersection(pair, b, 2), torch.tensor([0.5, 0.0]))
    with pytest.raises(ArgumentError, match="k must be between 1 and the 5 features"):
        topk_intersection(a, b, 6)


@pytest.fixture(scope="module")
def smooth() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=gen)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.Softplus(beta=4), nn.Linear(32, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    xs = x[:32]
    return model, xs, model(xs).argmax(1)


def saliency(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    return torch.autograd.grad(model(x).gather(1, t[:, None]).sum(), x)[0].abs()


def test_moves_the_map_more_than_noise_of_the_same_size(smooth: tuple) -> None:
    model, x, t = smooth
    adv = AttributionAttack(model).perturb(x, 0.3, 0.03, 30, t, k=3)
    assert (adv - x).abs().max() <= 0.3 + 1e-6
    assert torch.equal(model(adv).argmax(1), t)  # the class is kept
    moved = topk_intersection(saliency(model, x, t), saliency(model, adv, t), 3).mean()
    gen = torch.Generator().manual_seed(1)
    noise = x + 0.3 * torch.randn(x.shape, generator=gen).sign()
    by_noise = topk_intersection(saliency(model, x, t), saliency(model, noise, t), 3).mean()
    assert moved < by_noise - 0.1


def test_threshold_stops_at_the_first_point_far_enough(smooth: tuple) -> None:
    model, x, t = smooth
    free = AttributionAttack(model).perturb(x, 0.3, 0.03, 30, t, k=3)
    early = AttributionAttack(model).perturb(x, 0.3, 0.03, 30, t, k=3, threshold=0.34)
    base = saliency(model, x, t)
    reached = topk_intersection(base, saliency(model, early, t), 3) <= 0.34
    assert reached.any()
    sizes = (early - x).abs().amax(1)
    assert (sizes[reached] <= (free - x).abs().amax(1)[reached] + 1e-6).all()


def test_a_relu_model_has_no_second_derivative_so_nothing_moves() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(5, 6)
    adv = AttributionAttack(model).perturb(x, 0.2, 0.05, 5, 0, k=2)
    assert torch.equal(adv, x)


def test_bad_arguments() -> None:
    m = CountingModel(nn.Sequential(nn.Linear(4, 3), nn.Tanh()))
    x = torch.randn(2, 4)
    for kwargs, message in [
        ({"radius": -1.0}, "radius"),
        ({"step_num": 0}, "step_num"),
        ({"k": 0}, "k must be at least 1"),
        ({"threshold": -0.5}, "threshold"),
    ]:
        with pytest.raises(ArgumentError, match=message):
            AttributionAttack(m).perturb(x, **{"radius": 0.1, "step_size": 0.01, "step_num": 2,
                                               "target": 0, **kwargs})  # fmt: skip
    assert m.calls == 0
    with pytest.raises(ArgumentError, match="k must be between"):
        AttributionAttack(m).perturb(x, 0.1, 0.01, 2, 0, k=5)
