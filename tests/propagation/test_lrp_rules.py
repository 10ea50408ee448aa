"""LRP rules against a slow matrix-form reference, on Linear and Conv2d layers.

The reference builds every contribution ``z_jk`` of input ``j`` to output ``k`` explicitly
(``unfold`` turns a convolution into a matrix product) and redistributes
``R_j = Σ_k z_jk / (Σ_j z_jk + b_k + ε·sign) · R_k``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perspicio._core.hooks import swapped
from perspicio.lrp import (
    Alpha1_Beta0_Rule,
    EpsilonRule,
    FlatRule,
    GammaRule,
    IdentityRule,
    PropagationRule,
    Sum,
    WSquareRule,
    ZBoxRule,
    ZPlusRule,
)
from perspicio.propagation.composite import Composite
from perspicio.propagation.lrp_rules import stabilize

LOW, HIGH = -1.5, 2.0


def redistribute(z: Tensor, bias: Tensor, relevance: Tensor, eps: float) -> Tensor:
    """``z``: (N, J, K, L) contributions; ``bias``: (K,); ``relevance``: (N, K, L)."""
    total = z.sum(1) + bias[None, :, None]
    sign = torch.where(total >= 0, 1.0, -1.0).to(total.dtype)
    s = relevance / (total + eps * sign)
    return (z * s[:, None]).sum(2)  # (N, J, L)


# Each case: contributions from (inputs x, low, high, ones, weight w) as (N, J, K, L) tensors, the
# bias used in the denominator, and the stabiliser. x: (N, J, L); w: (K, J).
def contrib(x: Tensor, w: Tensor) -> Tensor:
    return x[:, :, None, :] * w.T[None, :, :, None]


def _eps(x, lo, hi, one, w, b):
    return contrib(x, w), b, 0.01


def _gamma(x, lo, hi, one, w, b):
    return contrib(x, w + 0.3 * w.clamp(min=0)), b, 1e-9


def _gamma_nobias(x, lo, hi, one, w, b):
    return contrib(x, w + 0.3 * w.clamp(min=0)), torch.zeros_like(b), 1e-9


def _ab(x, lo, hi, one, w, b):
    return contrib(x, w.clamp(min=0)), b, 1e-9


def _zplus(x, lo, hi, one, w, b):
    return contrib(x, w).clamp(min=0), torch.zeros_like(b), 1e-6


def _zbox(x, lo, hi, one, w, b):
    z = contrib(x, w) - contrib(lo, w.clamp(min=0)) - contrib(hi, w.clamp(max=0))
    return z, torch.zeros_like(b), 1e-6


def _flat(x, lo, hi, one, w, b):
    return contrib(one, torch.ones_like(w)), torch.zeros_like(b), 1e-6


def _wsquare(x, lo, hi, one, w, b):
    return contrib(one, w * w), torch.zeros_like(b), 1e-6


RULES: list[tuple[str, Callable[[], PropagationRule], Callable[..., tuple]]] = [
    ("epsilon", lambda: EpsilonRule(0.01), _eps),
    ("gamma", lambda: GammaRule(0.3), _gamma),
    ("gamma-nobias", lambda: GammaRule(0.3, set_bias_to_zero=True), _gamma_nobias),
    ("alpha1beta0", Alpha1_Beta0_Rule, _ab),
    ("zplus", ZPlusRule, _zplus),
    ("zbox", lambda: ZBoxRule(LOW, HIGH), _zbox),
    ("flat", FlatRule, _flat),
    ("wsquare", WSquareRule, _wsquare),
]


def apply_rule(rule: PropagationRule, layer: nn.Module, x: Tensor, relevance: Tensor) -> Tensor:
    """The relevance of ``x`` under ``rule`` (the rule's backward, through a composite)."""
    x = x.clone().requires_grad_(True)
    with Composite({type(layer): rule}).context(layer):
        y = layer(x)
    (r,) = torch.autograd.grad(y, x, relevance)
    return r


@pytest.mark.parametrize(("name", "make", "reference"), RULES, ids=[r[0] for r in RULES])
def test_rule_on_linear(
    name: str, make: Callable[[], PropagationRule], reference: Callable
) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(5, 4).double()
    x = torch.empty(3, 5, dtype=torch.float64).uniform_(LOW, HIGH)
    relevance = torch.randn(3, 4, dtype=torch.float64)
    w, b = layer.weight.detach(), layer.bias.detach()
    lo, hi = torch.full_like(x, LOW), torch.full_like(x, HIGH)
    z, bias, eps = reference(*(t[..., None] for t in (x, lo, hi, torch.ones_like(x))), w, b)
    expected = redistribute(z, bias, relevance[..., None], eps)[..., 0]
    torch.testing.assert_close(apply_rule(make(), layer, x, relevance), expected)


@pytest.mark.parametrize(("name", "make", "reference"), RULES, ids=[r[0] for r in RULES])
@pytest.mark.parametrize("stride_padding", [(1, 1), (2, 0)])
def test_rule_on_conv(
    name: str,
    make: Callable[[], PropagationRule],
    reference: Callable,
    stride_padding: tuple[int, int],
) -> None:
    stride, padding = stride_padding
    torch.manual_seed(1)
    layer = nn.Conv2d(2, 3, 3, stride=stride, padding=padding).double()
    x = torch.empty(2, 2, 6, 6, dtype=torch.float64).uniform_(LOW, HIGH)
    y = layer(x).detach()
    relevance = torch.randn_like(y)
    unfold = {"kernel_size": 3, "stride": stride, "padding": padding}
    bounds = (torch.full_like(x, LOW), torch.full_like(x, HIGH), torch.ones_like(x))
    patches = [F.unfold(t, **unfold) for t in (x, *bounds)]  # padding contributes zeros
    w, b = layer.weight.detach().reshape(3, -1), layer.bias.detach()
    z, bias, eps = reference(*patches, w, b)
    r_patches = redistribute(z, bias, relevance.reshape(2, 3, -1), eps)
    expected = F.fold(r_patches, output_size=(6, 6), **unfold)
    torch.testing.assert_close(apply_rule(make(), layer, x, relevance), expected)


def test_epsilon_on_sum_splits_in_proportion() -> None:
    a, b = torch.tensor([[1.0, -2.0, 3.0]]), torch.tensor([[3.0, 1.0, 0.0]])
    relevance = torch.tensor([[4.0, 2.0, 1.0]])
    la, lb = a.clone().requires_grad_(), b.clone().requires_grad_()
    module = Sum()
    with Composite({Sum: EpsilonRule(0.0)}).context(module):
        out = module(la, lb)
    ra, rb = torch.autograd.grad(out, (la, lb), relevance)
    torch.testing.assert_close(ra, a / (a + b) * relevance)
    torch.testing.assert_close(rb, b / (a + b) * relevance)


def test_identity_rule_passes_relevance() -> None:
    relevance = torch.randn(2, 4)
    torch.testing.assert_close(
        apply_rule(IdentityRule(), nn.Tanh(), torch.randn(2, 4), relevance), relevance
    )
    with pytest.raises(ValueError, match="IdentityRule needs a module with one input of its"):
        apply_rule(IdentityRule(), nn.Linear(4, 3), torch.randn(2, 4), torch.randn(2, 3))


def test_epsilon_rule_on_maxpool_and_avgpool() -> None:
    x = torch.rand(1, 1, 4, 4) + 0.1
    relevance = torch.rand(1, 1, 2, 2)
    r = apply_rule(EpsilonRule(0.0), nn.MaxPool2d(2), x, relevance)
    assert torch.count_nonzero(r) == 4  # winner takes all
    torch.testing.assert_close(r.sum(), relevance.sum())
    r = apply_rule(EpsilonRule(0.0), nn.AvgPool2d(2), x, relevance)
    patch = x[0, 0, :2, :2]
    torch.testing.assert_close(r[0, 0, :2, :2], patch / patch.sum() * relevance[0, 0, 0, 0])


def test_captum_style_custom_rule_edits_copies_only() -> None:
    class Doubled(PropagationRule):
        def _manipulate_weights(self, module, inputs, outputs):
            module.weight.data = module.weight.data * 2

    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    weight, w0 = layer.weight, layer.weight.detach().clone()
    x, relevance = torch.randn(2, 4), torch.randn(2, 3)
    got = apply_rule(Doubled(), layer, x, relevance)
    z = x[:, :, None] * (2 * w0).T[None]
    expected = redistribute(z[..., None], layer.bias.detach(), relevance[..., None], 1e-9)
    torch.testing.assert_close(got, expected[..., 0])
    assert layer.weight is weight and torch.equal(layer.weight, w0)


def test_stabilize_sign_of_zero_is_positive() -> None:
    z = torch.tensor([0.0, -2.0, 3.0])
    torch.testing.assert_close(stabilize(z, 0.5), torch.tensor([0.5, -2.5, 3.5]))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: EpsilonRule(-1.0), ValueError, "epsilon must be at least 0"),
        (lambda: EpsilonRule("big"), TypeError, "epsilon must be a number, got str"),
        (lambda: GammaRule(-0.5), ValueError, "gamma must be at least 0, got -0.5"),
        (lambda: ZPlusRule(stabilizer=-1), ValueError, "stabilizer must be at least 0"),
        (lambda: ZBoxRule(1.0, 0.0), ValueError, "low must not exceed high"),
        (lambda: ZBoxRule("a", 1.0), TypeError, "low must be a number or a tensor, got str"),
        (
            lambda: ZBoxRule(torch.zeros(2), torch.ones(3)),
            ValueError,
            "low and high must broadcast together",
        ),
    ],
)
def test_bad_rule_arguments(make: Callable[[], object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def test_zbox_bounds_must_fit_the_input() -> None:
    rule = ZBoxRule(torch.zeros(5), torch.ones(5))
    with pytest.raises(ValueError, match=r"ZBoxRule bound of shape \(5,\) does not broadcast"):
        apply_rule(rule, nn.Linear(3, 2), torch.rand(2, 3), torch.rand(2, 2))


def test_rule_repr() -> None:
    assert repr(GammaRule(0.5)) == "GammaRule(gamma=0.5, set_bias_to_zero=False)"
    assert repr(EpsilonRule(0.1)) == "EpsilonRule(STABILITY_FACTOR=0.1)"


# --- the scoped swap and modified forward of rules.py ---------------------------------------


def test_swapped_restores_the_same_objects_even_after_an_error() -> None:
    bn = nn.BatchNorm1d(3)
    weight, mean, eps = bn.weight, bn.running_mean, bn.eps
    with (
        pytest.raises(RuntimeError, match="boom"),
        swapped(
            bn, {"weight": torch.zeros(3), "running_mean": torch.ones(3), "eps": 0.5, "bias": None}
        ),
    ):
        assert bn.eps == 0.5 and bn.bias is None and not bn.weight.requires_grad
        raise RuntimeError("boom")
    assert bn.weight is weight and bn.running_mean is mean and bn.eps == eps
    assert isinstance(bn.bias, nn.Parameter)


def test_modified_forward_leaves_batchnorm_statistics_alone() -> None:
    torch.manual_seed(0)
    x = torch.randn(6, 3)
    bn, plain = nn.BatchNorm1d(3).train(), nn.BatchNorm1d(3).train()
    r = apply_rule(GammaRule(0.5), bn, x, torch.randn(6, 3))
    plain(x)  # the one update the real forward pass makes
    assert torch.isfinite(r).all()
    assert bn.num_batches_tracked == plain.num_batches_tracked == 1
    torch.testing.assert_close(bn.running_mean, plain.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, plain.running_var, rtol=0, atol=0)


class _Gated(nn.Linear):
    def forward(self, x: Tensor, gate: Tensor | None = None, power: int = 1) -> Tensor:
        out = super().forward(x)
        return out if gate is None else out * gate**power


def test_non_tensor_positional_arguments_are_passed_along() -> None:
    torch.manual_seed(0)
    layer, x, relevance = _Gated(4, 3), torch.randn(2, 4), torch.randn(2, 3)
    leaf = x.clone().requires_grad_()
    with Composite({_Gated: GammaRule(0.3)}).context(layer):
        y = layer(leaf, None, 2)
    (got,) = torch.autograd.grad(y, leaf, relevance)
    plain = nn.Linear(4, 3)
    plain.load_state_dict(layer.state_dict())
    torch.testing.assert_close(got, apply_rule(GammaRule(0.3), plain, x, relevance))


def test_a_rule_giving_the_wrong_number_of_gradients_is_a_clear_error() -> None:
    class TwoGradients(PropagationRule):
        def backward(self, call: object, grad_out: Tensor) -> tuple[Tensor, Tensor]:
            return grad_out, grad_out

    with pytest.raises(ValueError, match="TwoGradients.backward returned 2 gradients for Linear"):
        apply_rule(TwoGradients(), nn.Linear(3, 3), torch.randn(2, 3), torch.ones(2, 3))


def test_a_rule_with_no_terms_is_a_clear_error() -> None:
    class NoTerms(PropagationRule):
        def terms(self, call: object) -> list[object]:
            return []

    with pytest.raises(ValueError, match="NoTerms.terms returned no terms for Linear"):
        apply_rule(NoTerms(), nn.Linear(3, 3), torch.randn(2, 3), torch.ones(2, 3))
