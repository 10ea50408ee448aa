"""Concept discovery: NMF, recovered textures, importance by brute force, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.concept.discovery import ConceptDiscovery, nmf, nmf_codes
from perspicio.testing import ConvNet
from tests.concept.textures import images


def test_nmf_recovers_a_planted_factorisation() -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.rand(200, 3, generator=g)
    w = torch.rand(3, 12, generator=g) * (torch.rand(3, 12, generator=g) > 0.5)
    a = u @ w
    u_hat, w_hat = nmf(a, 3, max_iter=1000)
    assert (u_hat >= 0).all() and (w_hat >= 0).all()
    assert (u_hat @ w_hat - a).norm() / a.norm() < 0.02
    # every planted row is found (up to scale) among the learned ones
    cos = nn.functional.normalize(w, dim=1) @ w_hat.T
    assert cos.max(1).values.min() > 0.98
    codes = nmf_codes(a, w_hat, max_iter=1000)
    assert (codes @ w_hat - a).norm() / a.norm() < 0.02


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float(a @ b / (a.norm() * b.norm()))


def test_recovers_planted_textures(texture_net) -> None:
    g = torch.Generator().manual_seed(2)
    xs, ms = images(24, "stripes", g)
    xd, md = images(24, "dots", g)
    x = torch.cat([xs, xd])
    stripes_mask = torch.cat([ms, torch.zeros_like(md)])[:, 0]
    dots_mask = torch.cat([torch.zeros_like(ms), md])[:, 0]
    craft = ConceptDiscovery(texture_net, texture_net.features[3], n_concepts=4).fit(x)
    maps = craft.concept_maps(x)
    assert maps.shape == (48, 4, 16, 16)
    stripes = max(range(4), key=lambda k: _corr(maps[:, k], stripes_mask))
    dots = max(range(4), key=lambda k: _corr(maps[:, k], dots_mask))
    # each texture has its own concept, present where it was planted and not at the other
    assert _corr(maps[:, stripes], stripes_mask) > 0.5 > 0 > _corr(maps[:, stripes], dots_mask)
    assert _corr(maps[:, dots], dots_mask) > 0.25 > 0 > _corr(maps[:, dots], stripes_mask)
    # the stripes concept matters most for the stripes class
    importance = craft.importance(xs, target=1)
    assert importance.argmax() == stripes


def test_importance_is_gradient_times_coefficient() -> None:
    model = ConvNet()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    craft = ConceptDiscovery(model, model.relu1, n_concepts=3, max_iter=300).fit(x)
    bank = craft.concepts
    # brute force: make the layer output U W + (A - U W), differentiate w.r.t. U
    a = model.relu1(model.conv1(x)).detach()  # (4, 8, 8, 8)
    u = craft.transform(x).permute(0, 2, 3, 1).reshape(4, 64, 3).clone().requires_grad_()
    rest = a.permute(0, 2, 3, 1).reshape(4, 64, 8) - u.detach() @ bank

    def replaced(m, args, out):
        return (u @ bank + rest).reshape(4, 8, 8, -1).permute(0, 3, 1, 2)

    h = model.relu1.register_forward_hook(replaced)
    try:
        (grad,) = torch.autograd.grad(model(x)[:, 2].sum(), u)
    finally:
        h.remove()
    expected = (grad * u.detach()).sum(1).mean(0)
    torch.testing.assert_close(craft.importance(x, target=2), expected, rtol=1e-4, atol=1e-6)


def test_bad_input() -> None:
    model = ConvNet()
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ArgumentError, match="non-negative"):
        ConceptDiscovery(model, model.conv1).fit(x)
    with pytest.raises(ArgumentError, match="not a submodule"):
        ConceptDiscovery(model, nn.ReLU())
    with pytest.raises(ArgumentError, match="n_concepts"):
        ConceptDiscovery(model, model.relu1, n_concepts=0)
    with pytest.raises(ArgumentError, match="call fit first"):
        ConceptDiscovery(model, model.relu1).transform(x)
    for m in model.modules():
        assert not m._forward_hooks
