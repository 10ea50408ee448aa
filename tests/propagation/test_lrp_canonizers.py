"""Canonizers: the function is kept, the model is restored exactly, relevance is conserved."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio.lrp import (
    LRP,
    EpsilonGammaBox,
    EpsilonPlus,
    LayerLRP,
    MergeBatchNorm,
    ResNetCanonizer,
    Sum,
    batchnorm_pairs,
)
from perspicio.testing import TinyResNet
from tests.conformance.battery import assert_same_state, snapshot


def _stats(model: nn.Module, zero_shift: bool = False) -> nn.Module:
    """Non-trivial BatchNorm statistics; with ``zero_shift`` each BatchNorm only scales."""
    torch.manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(m.weight, -1.5, 1.5)
            if not zero_shift:
                m.running_mean.uniform_(-0.3, 0.3)
                nn.init.uniform_(m.bias, -0.3, 0.3)
    return model.eval()


class Block(nn.Module):
    """A residual block laid out as torchvision's (in-place ``+=``, optional downsample)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=bias), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Neck(nn.Module):
    """A bottleneck block (three convolutions) with a projection shortcut."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c // 2, 1, bias=False), nn.BatchNorm2d(c // 2)
        self.conv2, self.bn2 = (
            nn.Conv2d(c // 2, c // 2, 3, padding=1, bias=False),
            nn.BatchNorm2d(c // 2),
        )
        self.conv3, self.bn3 = nn.Conv2d(c // 2, c, 1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(torch.add(self.bn3(self.conv3(out)), x))


def resnet(zero_shift: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        Block(4, 4), Block(4, 6, stride=2), Neck(6),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3, bias=False),
    )  # fmt: skip
    return _stats(model, zero_shift)


CANONIZERS = [MergeBatchNorm(), ResNetCanonizer()]


@pytest.mark.parametrize("make", [TinyResNet, resnet], ids=["TinyResNet", "resnet"])
def test_canonizers_keep_the_function_and_restore_the_model(make: type) -> None:
    model, x = make(), torch.rand(2, 3, 8, 8)
    before, y = snapshot(model), model(x)
    with ResNetCanonizer().context(model):
        assert torch.equal(model(x), y)  # the traced code computes the very same values
        assert any(isinstance(m, Sum) for m in model.modules())
    with MergeBatchNorm().context(model):
        torch.testing.assert_close(model(x), y, atol=1e-5, rtol=1e-5)
        bn = model[1] if isinstance(model, nn.Sequential) else model.bn1
        z = torch.randn(2, bn.num_features, 3, 3)
        assert torch.equal(bn(z), z)  # an exact identity
    assert_same_state(before, snapshot(model))
    assert not any(isinstance(m, Sum) for m in model.modules())
    assert all("forward" not in vars(m) for m in model.modules())
    assert torch.equal(model(x), y)


def test_canonizers_restore_the_model_after_an_error() -> None:
    model = resnet()
    before = snapshot(model)
    with (
        pytest.raises(RuntimeError, match="boom"),
        MergeBatchNorm().context(model),
        ResNetCanonizer().context(model),
    ):
        raise RuntimeError("boom")
    assert_same_state(before, snapshot(model))
    assert all("forward" not in vars(m) for m in model.modules())


def test_batchnorm_pairs_are_found_by_tracing() -> None:
    model = TinyResNet()
    pairs = batchnorm_pairs(model)
    expected = [
        (model.conv1, model.bn1),
        (model.layer1.conv1, model.layer1.bn1),
        (model.layer1.conv2, model.layer1.bn2),
        (model.layer2.conv1, model.layer2.bn1),
        (model.layer2.conv2, model.layer2.bn2),
    ]
    assert all(any(a is c and b is d for c, d in pairs) for a, b in expected)
    assert len(pairs) == 5
    assert len(batchnorm_pairs(resnet())) == 9  # stem, 2 + 2 + downsample, 3


class _Unmergeable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)
        self.pre_bn, self.conv2 = nn.BatchNorm2d(2), nn.Conv2d(2, 2, 1)
        self.seq = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = self.bn(h) + h  # the layer output has another use
        h = self.conv2(self.pre_bn(h))  # BatchNorm before the layer
        if h.sum() > 0:  # data-dependent: this forward cannot be traced
            h = h * 2
        return self.seq(h.mean((2, 3)))


def test_only_safe_pairs_are_merged() -> None:
    model = _Unmergeable().eval()
    pairs = batchnorm_pairs(model)
    assert len(pairs) == 1 and pairs[0][0] is model.seq[0]


def test_explicit_pairs_and_bad_pairs() -> None:
    model = resnet()
    x, y = torch.rand(2, 3, 8, 8), model(torch.rand(2, 3, 8, 8))
    with MergeBatchNorm(pairs=[(model[0], model[1])]).context(model):
        assert torch.equal(model[1](x[:, :1].expand(2, 4, 8, 8)), x[:, :1].expand(2, 4, 8, 8))
        assert not torch.equal(model[3].bn1.running_var, torch.ones(4))
    assert y.shape == (2, 3)
    with pytest.raises(TypeError, match=r"pairs must be \(Linear or Conv1d/2d/3d, BatchNorm\)"):
        MergeBatchNorm(pairs=[(model[1], model[0])])
    with pytest.raises(ValueError, match="into Conv2d with 4 output channels"):
        MergeBatchNorm(pairs=[(model[0], model[4].downsample[1])])


def test_training_mode_batchnorm_cannot_be_merged() -> None:
    model = resnet().train()
    before = snapshot(model)
    with pytest.raises(ValueError, match="put the model in eval mode"):
        MergeBatchNorm().context(model).__enter__()
    assert_same_state(before, snapshot(model))


def test_resnet_canonizer_bad_blocks() -> None:
    with pytest.raises(TypeError, match="block_types must hold nn.Module classes"):
        ResNetCanonizer(block_types=[int])

    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.fc(a) + b

    with pytest.raises(ValueError, match="TwoInputs.forward takes more"):
        ResNetCanonizer(block_types=[TwoInputs]).context(TwoInputs()).__enter__()
    with pytest.raises(ValueError, match="cannot trace the forward of _Unmergeable"):
        ResNetCanonizer(block_types=[_Unmergeable]).context(_Unmergeable()).__enter__()


# --- relevance -------------------------------------------------------------------------------


def test_residual_network_conserves_relevance_after_canonization() -> None:
    # bias-free convolutions and BatchNorm layers that only scale: nothing absorbs relevance
    model, x = resnet(zero_shift=True), torch.rand(3, 3, 8, 8)
    out = model(x)[:, 1].detach()
    # (z⁺ rules are left out: they cannot pass on the relevance of a negative summand)
    for composite, tol in [(None, 1e-5), (EpsilonGammaBox(0.0, 1.0), 1e-3)]:
        lrp = LRP(model, composite=composite, canonizers=CANONIZERS)
        attr, delta = lrp.attribute(x, target=1, return_convergence_delta=True)
        torch.testing.assert_close(attr.reshape(3, -1).sum(1), out, atol=0, rtol=tol)
        torch.testing.assert_close(delta, out - attr.reshape(3, -1).sum(1))
    # without the residual canonizer each skip connection copies its relevance
    _, delta = LRP(model, canonizers=[MergeBatchNorm()]).attribute(
        x, target=1, return_convergence_delta=True
    )
    assert (delta.abs() > 0.1 * out.abs()).all()


def test_relevance_lost_is_what_the_biases_absorb() -> None:
    model, x = TinyResNet(), torch.rand(2, 3, 8, 8)
    with MergeBatchNorm().context(model), ResNetCanonizer().context(model):
        layers = [m for m in model.modules() if getattr(m, "bias", None) is not None]
        layers = [m for m in layers if isinstance(m, nn.Conv2d | nn.Linear)]
        assert len(layers) == 6
        outputs: dict[nn.Module, torch.Tensor] = {}
        hooks = [m.register_forward_hook(lambda m, a, y: outputs.__setitem__(m, y)) for m in layers]
        try:
            _, delta = LRP(model).attribute(x, target=2, return_convergence_delta=True)
        finally:
            for h in hooks:
                h.remove()
        rel = LayerLRP(model, layers).attribute(x, target=2)
        absorbed = torch.zeros(2)
        for m, r in zip(layers, rel):
            z, b = outputs[m].detach(), m.bias.detach().reshape(1, -1, *[1] * (r.dim() - 2))
            absorbed += (b * r / (z + 1e-9 * torch.where(z >= 0, 1.0, -1.0))).reshape(2, -1).sum(1)
    torch.testing.assert_close(delta, absorbed, atol=1e-5, rtol=1e-4)


def test_merging_leaves_epsilon_lrp_unchanged_but_not_zplus() -> None:
    model, x = resnet(), torch.rand(2, 3, 8, 8)
    eps = [
        LRP(model, canonizers=c).attribute(x, target=0) for c in ([ResNetCanonizer()], CANONIZERS)
    ]
    torch.testing.assert_close(eps[0], eps[1], atol=1e-5, rtol=1e-4)
    plus = [
        LRP(model, composite=EpsilonPlus(), canonizers=c).attribute(x, target=0)
        for c in ([ResNetCanonizer()], CANONIZERS)
    ]
    assert not torch.allclose(plus[0], plus[1], atol=1e-4)


def test_traced_results_are_reused_until_the_model_changes() -> None:
    model, x = resnet(), torch.rand(2, 3, 8, 8)
    merge, residual = MergeBatchNorm(), ResNetCanonizer()
    with merge.context(model), residual.context(model):
        sums = [m for m in model.modules() if isinstance(m, Sum)]
    with merge.context(model), residual.context(model):
        again = [m for m in model.modules() if isinstance(m, Sum)]
    assert all(a is b for a, b in zip(sums, again)) and len(merge.find(model)) == 9
    model[3].conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)  # a new layer: trace again
    y = model(x)
    with merge.context(model), residual.context(model):
        assert not any(m is sums[0] for m in model.modules())
        torch.testing.assert_close(model(x), y, atol=1e-5, rtol=1e-5)
    pairs = merge.find(model)  # the new conv2 is merged with bn2
    assert len(pairs) == 9 and any(layer is model[3].conv2 for layer, _ in pairs)
