"""TracInCP: closed form on linear regression, brute-force gradients, top-k, batching, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from perspicio._core.validate import ArgumentError
from perspicio.influence import KMostInfluentialResults, TracInCP

pytestmark = pytest.mark.usefixtures("float64")


def save_checkpoints(model: nn.Module, tmp_path: Path, rates: tuple[float, ...]) -> list[str]:
    paths = []
    for i, lr in enumerate(rates):
        state = {k: v + 0.3 * i for k, v in model.state_dict().items()}
        path = tmp_path / f"ckpt-{i}.pt"
        torch.save({**state, "learning_rate": lr}, path)
        paths.append(str(path))
    return paths


def test_closed_form_on_linear_regression(tmp_path: Path) -> None:
    """score = sum_c lr_c * 4 r_x r_z (x . z + 1) for squared error, r = w.x + b - y."""
    torch.manual_seed(0)
    X, y = torch.randn(9, 4), torch.randn(9)
    model = nn.Sequential(nn.Linear(4, 1), nn.Flatten(0))
    rates = (0.5, 2.0)
    paths = save_checkpoints(model, tmp_path, rates)
    tracin = TracInCP(
        model, TensorDataset(X, y), str(tmp_path), loss_fn=nn.MSELoss(reduction="none")
    )
    Xt, yt = torch.randn(3, 4), torch.randn(3)
    expected = torch.zeros(3, 9)
    for path, lr in zip(paths, rates):
        state = torch.load(path, weights_only=True)
        w, b = state["0.weight"][0], state["0.bias"][0]
        r_train, r_test = X @ w + b - y, Xt @ w + b - yt
        expected += lr * 4 * r_test[:, None] * r_train[None] * (Xt @ X.T + 1)
    torch.testing.assert_close(tracin.influence((Xt, yt)), expected)
    torch.testing.assert_close(tracin.self_influence((Xt, yt)), expected.new_tensor(
        [sum(lr * 4 * float((Xt[i] @ torch.load(p, weights_only=True)["0.weight"][0]
             + torch.load(p, weights_only=True)["0.bias"][0] - yt[i]) ** 2) * float(Xt[i] @ Xt[i] + 1)
             for p, lr in zip(paths, rates)) for i in range(3)]
    ))  # fmt: skip


class Mixed(nn.Module):
    """Layer types beyond Linear: Embedding, Conv1d, LayerNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 4)
        self.conv = nn.Conv1d(4, 3, 2)
        self.norm = nn.LayerNorm(3)
        self.out = nn.Linear(3, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.emb(tokens).transpose(1, 2)).mean(2)
        return self.out(torch.tanh(self.norm(h)))


def brute_force(model: nn.Module, loss_fn: Any, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    rows = []
    for i in range(len(X)):
        model.zero_grad()
        loss_fn(model(X[i : i + 1]), y[i : i + 1]).sum().backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        model.zero_grad(set_to_none=True)
    return torch.stack(rows)


def test_any_layer_type_matches_brute_force() -> None:
    torch.manual_seed(0)
    X, y = torch.randint(0, 7, (8, 5)), torch.randint(0, 2, (8,))
    model = Mixed()
    loss = nn.CrossEntropyLoss(reduction="sum")
    tracin = TracInCP(model, TensorDataset(X, y), [model.state_dict()], lambda m, s: 1.0,
                      loss_fn=loss, sample_wise_grads_per_batch=True, batch_size=3)  # fmt: skip
    g = brute_force(model, loss, X, y)
    torch.testing.assert_close(tracin.influence((X[:2], y[:2])), g[:2] @ g.T)
    torch.testing.assert_close(tracin.self_influence(), (g * g).sum(1))


@pytest.fixture
def problem(tmp_path: Path) -> dict[str, Any]:
    torch.manual_seed(1)
    X, y = torch.randn(13, 3), torch.randint(0, 3, (13,))
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 3))
    return dict(X=X, y=y, model=model, paths=save_checkpoints(model, tmp_path, (1.0, 0.5, 0.1)))


def make(p: dict[str, Any], **kwargs: Any) -> TracInCP:
    kwargs.setdefault("loss_fn", nn.CrossEntropyLoss(reduction="none"))
    data = kwargs.pop("data", TensorDataset(p["X"], p["y"]))
    return TracInCP(p["model"], data, p["paths"], **kwargs)


@pytest.mark.parametrize("batch_size", [1, 4, 13])
def test_batching_does_not_change_results(problem: dict[str, Any], batch_size: int) -> None:
    test = (problem["X"][:3], problem["y"][:3])
    ref = make(problem, batch_size=5)
    other = make(problem, batch_size=batch_size)
    torch.testing.assert_close(other.influence(test), ref.influence(test))
    torch.testing.assert_close(other.self_influence(), ref.self_influence())
    loader = DataLoader(TensorDataset(problem["X"], problem["y"]), batch_size=batch_size)
    via_loader = make(problem, data=loader)
    torch.testing.assert_close(
        via_loader.influence(DataLoader(TensorDataset(*test), 2)), ref.influence(test)
    )


@pytest.mark.parametrize("proponents", [True, False])
@pytest.mark.parametrize("k", [0, 1, 5, 13])
def test_top_k_is_the_top_of_the_scores(problem: dict[str, Any], proponents: bool, k: int) -> None:
    tracin = make(problem, batch_size=4)
    test = (problem["X"][:3], problem["y"][:3])
    scores = tracin.influence(test)
    result = tracin.influence(test, k=k, proponents=proponents)
    assert isinstance(result, KMostInfluentialResults)
    assert result.indices.shape == result.influence_scores.shape == (3, k)
    expected = torch.topk(scores, k, dim=1, largest=proponents)
    torch.testing.assert_close(result.influence_scores, expected.values)
    torch.testing.assert_close(torch.gather(scores, 1, result.indices), result.influence_scores)


def test_self_influence_is_the_diagonal(problem: dict[str, Any]) -> None:
    tracin = make(problem, batch_size=4)
    full = tracin.influence((problem["X"], problem["y"]))
    torch.testing.assert_close(tracin.self_influence(), torch.diagonal(full))
    torch.testing.assert_close(
        tracin.self_influence(outer_loop_by_checkpoints=True), torch.diagonal(full)
    )
    q = tracin.compute_intermediate_quantities((problem["X"][:2], problem["y"][:2]))
    assert q.shape == (2, 3 * sum(p.numel() for p in problem["model"].parameters()))


def state_of(model: nn.Module) -> list[Any]:
    return [
        model.training,
        *[(n, p.detach().clone(), p.requires_grad, p.grad) for n, p in model.named_parameters()],
        *[
            len(getattr(m, a))
            for m in model.modules()
            for a in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")
        ],
    ]


def assert_same(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, tuple):
            assert x[0] == y[0] and torch.equal(x[1], y[1]) and x[2] == y[2] and x[3] is y[3]
        else:
            assert x == y


def test_no_residue_after_success_or_error(problem: dict[str, Any]) -> None:
    model = problem["model"]
    model[0].weight.requires_grad_(False)
    before = state_of(model)
    tracin = make(problem, batch_size=4)
    tracin.influence((problem["X"][:2], problem["y"][:2]), k=2)
    tracin.self_influence()
    assert_same(state_of(model), before)

    def failing(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("loss failed")

    with pytest.raises(RuntimeError, match="loss failed"):
        make(problem, loss_fn=failing).self_influence()
    assert_same(state_of(model), before)


def test_bad_input(problem: dict[str, Any], tmp_path: Path) -> None:
    test = (problem["X"][:2], problem["y"][:2])
    with pytest.raises(ArgumentError, match='reduction for `loss_fn` must be "none"'):
        make(problem, loss_fn=nn.CrossEntropyLoss())
    with pytest.raises(ArgumentError, match='must be "sum" or "mean"'):
        make(problem, sample_wise_grads_per_batch=True)
    with pytest.raises(ArgumentError, match="test_loss_fn"):
        make(problem, test_loss_fn=nn.CrossEntropyLoss(reduction="mean"))
    tracin = make(problem)
    with pytest.raises(ArgumentError, match="k=14 is larger than the training data"):
        tracin.influence(test, k=14)
    with pytest.raises(ArgumentError, match="k must be at least 0"):
        tracin.influence(test, k=-1)
    with pytest.raises(TypeError, match="k must be an int"):
        tracin.influence(test, k=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="inputs must be a tuple"):
        tracin.influence(problem["X"][:2])
    with pytest.raises(ArgumentError, match="batch_size must be a positive int"):
        make(problem, batch_size=0)
    wrong = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3))
    path = tmp_path / "wrong.pt"
    torch.save(wrong.state_dict(), path)
    before = state_of(problem["model"])
    bad = TracInCP(problem["model"], TensorDataset(problem["X"], problem["y"]), [str(path)],
                   loss_fn=nn.CrossEntropyLoss(reduction="none"))  # fmt: skip
    with pytest.raises(ArgumentError, match=r"checkpoint .*wrong.pt.* entry '0.weight' has shape"):
        bad.influence(test)
    assert_same(state_of(problem["model"]), before)


def test_show_progress(problem: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    make(problem, batch_size=4).self_influence(show_progress=True)
    assert "TracInCP" in capsys.readouterr().err
