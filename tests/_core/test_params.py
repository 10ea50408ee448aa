"""Parameter sites, checkpoint loading and the loss objective."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio._core.call import build_call
from perspicio._core.hooks import loaded
from perspicio._core.params import ParameterSite, flatten
from perspicio._core.sites import InputSite, loss_objective


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 4)).double()


def _reference(
    model: nn.Module, site: ParameterSite, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    rows = []
    for i in range(len(x)):
        loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        params = [dict(model.named_parameters())[n] for n in site.names]
        gs = torch.autograd.grad(loss, params)
        rows.append(torch.cat([g.reshape(-1) for g in gs]))
    return torch.stack(rows)


@pytest.mark.parametrize("layers", [None, ["3"], "modules"])
def test_per_example_grads_equal_one_backward_per_example(layers) -> None:
    model = _model()
    if layers == "modules":
        layers = [model[0]]
    x = torch.randn(7, 2, 8, dtype=torch.float64)
    y = torch.randint(0, 4, (7,))
    site = ParameterSite.of(model, layers)
    mean_loss = nn.CrossEntropyLoss()
    got = flatten(site.per_example_grads(mean_loss, (x,), y, chunk_size=3))
    torch.testing.assert_close(got, _reference(model, site, x, y))
    assert all(p.grad is None for p in model.parameters())


def test_per_example_grads_fall_back_where_vmap_cannot_run() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow: vmap refuses it
                return self.lin(x)
            return self.lin(-x)

    model = Branchy().double()
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (5,))
    site = ParameterSite.of(model)
    got = flatten(site.per_example_grads(nn.CrossEntropyLoss(), (x,), y))
    rows = []
    for i in range(5):
        loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        gs = torch.autograd.grad(loss, list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in gs]))
    torch.testing.assert_close(got, torch.stack(rows))


def test_parameter_site_rejects_foreign_layers() -> None:
    model = _model()
    with pytest.raises(ArgumentError, match=r"layers\[0\] 'nope'"):
        ParameterSite.of(model, ["nope"])
    with pytest.raises(ArgumentError, match="not a submodule"):
        ParameterSite.of(model, [nn.Linear(2, 2)])


def test_loaded_restores_weights_even_after_an_error() -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    other = {k: torch.zeros_like(v) for k, v in before.items()}
    with pytest.raises(RuntimeError, match="boom"), loaded(model, other):
        assert all((p == 0).all() for p in model.parameters())
        raise RuntimeError("boom")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(a is b for a, b in zip(params, model.parameters()))


def test_loaded_rejects_a_checkpoint_of_another_model() -> None:
    model = _model()
    with (
        pytest.raises(ArgumentError, match="missing keys"),
        loaded(model, {"0.weight": torch.zeros(3, 2, 3)}),
    ):
        pass
    bad = {k: v.clone() for k, v in model.state_dict().items()}
    bad["3.weight"] = torch.zeros(1, 1)
    with pytest.raises(ArgumentError, match=r"'3.weight' has shape \(1, 1\)"), loaded(model, bad):
        pass


def test_loss_objective_gives_the_gradient_of_the_loss() -> None:
    model = _model()
    x = torch.randn(4, 2, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    call = build_call(x, target=y)
    loss = nn.CrossEntropyLoss(reduction="none")
    (g,), out = InputSite().grads(loss_objective(model, loss, y), call)
    xr = x.clone().requires_grad_()
    (ref,) = torch.autograd.grad(loss(model(xr), y).sum(), xr)
    torch.testing.assert_close(g, ref)
    torch.testing.assert_close(out, loss(model(x), y))
    # default: -log of the target probability
    probs = nn.Sequential(model, nn.Softmax(-1))
    (g2,), _ = InputSite().grads(loss_objective(probs), call)
    (ref2,) = torch.autograd.grad(-torch.log(probs(xr)[torch.arange(4), y]).sum(), xr)
    torch.testing.assert_close(g2, ref2)


class Reused(nn.Module):
    """A Linear applied twice and one seeing a sequence: no outer-product shortcut."""

    def __init__(self, seq: bool) -> None:
        super().__init__()
        self.seq = seq
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.seq:
            return self.b(torch.tanh(self.a(x.unsqueeze(1).expand(-1, 4, -1)))).mean(1)
        return self.b(torch.tanh(self.a(torch.tanh(self.a(x)))))


@pytest.mark.parametrize(
    "make, layers",
    [
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)), None),
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2, bias=False)), ["2"]),
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).eval(), None),
        (lambda: Reused(seq=False), None),
        (lambda: Reused(seq=True), None),
        (lambda: nn.Sequential(nn.Conv1d(1, 2, 2), nn.Flatten(), nn.Linear(4, 2)), None),
    ],
    ids=["mlp", "last-layer", "batchnorm-eval", "reused", "sequence", "conv"],
)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_per_example_sq_norms_equal_the_gradients_norms(make, layers, reduction: str) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = make()
    conv = isinstance(model, nn.Sequential) and isinstance(model[0], nn.Conv1d)
    x = torch.randn(6, 1, 3) if conv else torch.randn(6, 3)
    y = torch.randint(0, 2, (6,))
    site = ParameterSite.of(model, layers)
    loss = nn.CrossEntropyLoss(reduction=reduction)
    grads = site.per_example_grads(loss, (x,), y)
    expected = flatten(grads).pow(2).sum(1)
    torch.testing.assert_close(
        site.per_example_sq_norms(loss, (x,), y, reduction=reduction), expected
    )


def test_examples_that_interact_get_no_shortcut() -> None:
    """Batch norm in training mode mixes the examples of a batch: no outer-product shortcut."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    assert ParameterSite.of(model, [model[0], model[2]]).linear_layers() is None
    assert ParameterSite.of(model.eval(), [model[0], model[2]]).linear_layers() is not None
