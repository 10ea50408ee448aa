from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio._core.hooks import capture, check_layer, grad, leaves, replace
from perspicio.testing import ReLUMLP, ReusedReLUNet


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_capture_output_and_input() -> None:
    model = ReLUMLP()
    x = torch.randn(3, 6)
    with capture([model.fc1]) as out, capture([model.fc2], inputs=True) as inp:
        model(x)
    torch.testing.assert_close(out[model.fc1][0], model.fc1(x))
    torch.testing.assert_close(inp[model.fc2][0], torch.relu(model.fc1(x)))
    assert hook_count(model) == 0


def test_capture_last_call_wins_for_reused_modules() -> None:
    model = ReusedReLUNet()
    x = torch.randn(2, 5)
    with capture([model.relu]) as rec:
        model(x)
    expected = torch.relu(model.fc2(torch.relu(model.fc1(x))))
    torch.testing.assert_close(rec[model.relu][0], expected)
    assert rec.calls[model.relu] == 2


def test_capture_is_not_changed_by_inplace_ops_downstream() -> None:
    model = ReusedReLUNet()
    x = torch.randn(4, 5)
    with capture([model.fc1]) as rec:
        model(x)
    torch.testing.assert_close(rec[model.fc1][0], model.fc1(x))


def test_leaf_capture_gives_layer_gradients() -> None:
    model = ReLUMLP()
    x = torch.randn(3, 6)
    with capture([model.fc2], leaf=True) as rec:
        out = model(x)[:, 0]
    (g,) = grad(out, rec[model.fc2])
    h = model.fc2(torch.relu(model.fc1(x)))
    expected = (h > 0).float() * model.fc3.weight[0]
    torch.testing.assert_close(g, expected)


def test_replace_output_and_input() -> None:
    model = ReLUMLP()
    x = torch.randn(3, 6)
    z = torch.zeros(3, 8)
    with replace(model.fc2, (z,)):
        out = model(x)
    torch.testing.assert_close(out, model.fc3(torch.zeros(3, 8)).expand(3, -1))
    with replace(model.fc3, (z,), inputs=True):
        out = model(x)
    torch.testing.assert_close(out, model.fc3(z))
    assert hook_count(model) == 0


def test_hooks_removed_after_exception() -> None:
    model = ReLUMLP()
    with pytest.raises(RuntimeError), capture([model.fc1, model.fc2]):
        model(torch.randn(2, 6))
        raise RuntimeError("boom")
    assert hook_count(model) == 0


def test_layer_not_called_gives_clear_error() -> None:
    model = ReLUMLP()
    with capture([nn.Linear(2, 2)]) as rec:
        model(torch.randn(1, 6))
    with pytest.raises(ValueError, match="was not called during the forward pass"):
        rec[model.fc1]


def test_check_layer() -> None:
    model = ReLUMLP()
    check_layer(model, model.fc1)
    with pytest.raises(ValueError, match="is not a submodule of the model"):
        check_layer(model, nn.Linear(2, 2))
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        check_layer(model, "fc1")  # type: ignore[arg-type]


def test_leaves_do_not_touch_user_tensors() -> None:
    x = torch.randn(2, 2)
    (leaf,) = leaves((x,))
    assert leaf.requires_grad and not x.requires_grad


class _Pair(nn.Module):
    """Returns ``(h, p)`` with ``h = p * x``: ``p`` is used inside the layer as well."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.sigmoid(x)
        return p * x, p


@pytest.mark.parametrize("p_used_outside", [False, True])
def test_leaf_capture_of_a_tuple_gives_each_element_its_total_gradient(
    p_used_outside: bool,
) -> None:
    layer = _Pair()
    x = torch.randn(3, 4)  # plain inputs, no parameters: the layer's graph comes from the hook
    with capture([layer], leaf=True) as rec:
        h, p = layer(x)
        out = (h * 2).sum() + ((p**2).sum() if p_used_outside else 0)
    gh, gp = grad(out, rec[layer])
    # closed form: d out / d h = 2; d out / d p = 2 x (through h) [+ 2 p (directly)]
    want_p = 2 * x + (2 * torch.sigmoid(x) if p_used_outside else 0)
    torch.testing.assert_close(gh, torch.full_like(x, 2.0))
    torch.testing.assert_close(gp, want_p)
    assert not layer._forward_hooks and not layer._forward_pre_hooks


def test_swapped_shadows_a_method_and_leaves_no_instance_attribute() -> None:
    from perspicio._core.hooks import swapped

    bn = torch.nn.BatchNorm1d(3).eval()
    x = torch.randn(4, 3)
    with swapped(bn, {"forward": lambda t: t}):
        assert torch.equal(bn(x), x)
    assert "forward" not in vars(bn)
    torch.testing.assert_close(bn(x), x / (1 + bn.eps) ** 0.5)
