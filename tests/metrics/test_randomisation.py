"""Model-parameter randomisation: which layers change, similarities, the user's model intact."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest
import torch
from torch import nn

from perspicio.attr import LayerActivation, NoiseTunnel, Saliency
from perspicio.metrics import model_parameter_randomisation
from perspicio.metrics.randomisation import average_ranks, spearman
from perspicio.testing import ReLUMLP, TinyResNet
from tests.conformance.battery import assert_same_state, snapshot

X = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))


def test_docstring_examples() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.metrics.randomisation")).failed == 0


def changed_layers(model: nn.Module, copy: nn.Module) -> set[str]:
    before = dict(model.named_modules())
    return {
        name
        for name, m in copy.named_modules()
        if any(
            not torch.equal(p, q)
            for p, q in zip(m.parameters(False), before[name].parameters(False))
        )
    }


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("cascading", [{"fc3"}, {"fc3", "fc2"}, {"fc3", "fc2", "fc1"}]),
        ("independent", [{"fc3"}, {"fc2"}, {"fc1"}]),
    ],
)
def test_which_layers_are_randomised(mode: str, expected: list[set[str]]) -> None:
    model = ReLUMLP()
    seen: list[set[str]] = []

    def explain(m: nn.Module, inputs: torch.Tensor, **kw: Any) -> torch.Tensor:
        if m is not model:
            seen.append(changed_layers(model, m))
        return Saliency(m).attribute(inputs, **kw)

    torch.manual_seed(0)
    sims = model_parameter_randomisation(model, explain, X, mode=mode, target=1)
    assert list(sims) == ["fc3", "fc2", "fc1"]
    assert seen == expected
    assert all(s.shape == (3,) for s in sims.values())


EXPLAINERS = {
    "class": lambda model: Saliency,
    "object": lambda model: Saliency(model),
    "method": lambda model: Saliency(model).attribute,
    "function": lambda model: lambda m, x, **kw: Saliency(m).attribute(x, **kw),
    "wrapped": lambda model: NoiseTunnel(Saliency(model)).attribute,
}


@pytest.mark.parametrize("kind", list(EXPLAINERS))
def test_every_explainer_form_sees_the_randomised_copy_and_the_model_is_untouched(
    kind: str,
) -> None:
    model = TinyResNet()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    before = snapshot(model)
    kw: dict[str, Any] = {"target": 2}
    if kind == "wrapped":
        kw.update(nt_samples=2, stdevs=0.1)
    torch.manual_seed(0)
    sims = model_parameter_randomisation(
        model, EXPLAINERS[kind](model), x, layers=["fc", "layer2.conv2"], **kw
    )
    assert_same_state(before, snapshot(model))
    assert list(sims) == ["fc", "layer2.conv2"]
    assert all((s < 0.999).all() for s in sims.values())  # the explanation did change


def test_layer_methods_are_copied_with_their_layer() -> None:
    model = ReLUMLP()
    method = LayerActivation(model, model.fc2)
    sims = model_parameter_randomisation(
        model, method, X, layers=[model.fc1], similarity_func="pearson"
    )
    assert (sims["fc1"] < 0.999).all()  # a copy of fc2 fed by the randomised copy of fc1


def test_an_explanation_that_ignores_the_model_is_perfectly_similar() -> None:
    sims = model_parameter_randomisation(ReLUMLP(), lambda m, x: x * 2, X)
    for value in sims.values():
        torch.testing.assert_close(value, torch.ones(3))


def test_same_seed_same_result() -> None:
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(model_parameter_randomisation(ReLUMLP(), Saliency, X, target=0))
    for a, b in zip(runs[0].values(), runs[1].values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_average_ranks_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    x = torch.tensor([[3.0, 1.0, 3.0, 2.0, 1.0, 3.0], [0.0, 0.0, 0.0, 0.0, 5.0, -1.0]])
    for row, ranks in zip(x, average_ranks(x)):
        expected = torch.tensor(stats.rankdata(row.numpy()), dtype=torch.float64) - 1
        torch.testing.assert_close(ranks, expected)
    y = torch.randn(2, 6, generator=torch.Generator().manual_seed(2))
    for i in range(2):
        expected = stats.spearmanr(x[i].numpy(), y[i].numpy()).statistic
        assert abs(float(spearman(x, y)[i]) - expected) < 1e-5


def test_similarity_options() -> None:
    torch.manual_seed(0)
    cos = model_parameter_randomisation(
        ReLUMLP(), Saliency, X, layers=["fc3"], similarity_func="cosine", target=0
    )
    torch.manual_seed(0)
    custom = model_parameter_randomisation(
        ReLUMLP(),
        Saliency,
        X,
        layers=["fc3"],
        target=0,
        similarity_func=lambda a, b: torch.nn.functional.cosine_similarity(a, b, dim=1),
    )
    torch.testing.assert_close(cos["fc3"], custom["fc3"])


BAD = [
    ({"mode": "random"}, ValueError, "mode must be 'cascading' or 'independent'"),
    ({"similarity_func": "ssim"}, ValueError, "similarity_func must be one of"),
    ({"similarity_func": 3}, TypeError, "similarity_func must be a name or a callable"),
    ({"layers": ["fc9"]}, ValueError, r"layers\[0\] = 'fc9' is not a module name of the model"),
    ({"layers": [nn.Linear(2, 2)]}, ValueError, r"layers\[0\] \(Linear\) is not part of the model"),
]


@pytest.mark.parametrize(("override", "error", "message"), BAD)
def test_bad_input(override: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        model_parameter_randomisation(ReLUMLP(), Saliency, X, **override)


def test_bad_explainers_and_models() -> None:
    with pytest.raises(ValueError, match="must be built on the model itself"):
        model_parameter_randomisation(ReLUMLP(), Saliency(ReLUMLP()), X)
    with pytest.raises(TypeError, match="explanation_func must be an Attribution class"):
        model_parameter_randomisation(ReLUMLP(), "saliency", X)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        model_parameter_randomisation(lambda x: x, Saliency, X)
    with pytest.raises(ValueError, match="the model has no parameters to randomise"):
        model_parameter_randomisation(nn.ReLU(), Saliency, X)
