"""LayerIntegratedGradients, NeuronIntegratedGradients, and NoiseTunnel around them."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn

from perspicio.attr import (
    IntegratedGradients,
    LayerGradCam,
    LayerIntegratedGradients,
    NeuronIntegratedGradients,
    NoiseTunnel,
    configure_interpretable_embedding_layer,
    remove_interpretable_embedding_layer,
)
from perspicio.testing import MultiInputModel, ReLUMLP, ReusedReLUNet, TinyResNet
from tests.helpers import CountingModel

# DataParallel needs the model on its first GPU when there is one
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def test_doctests() -> None:
    module = importlib.import_module("perspicio.path.integrated_gradients")
    assert doctest.testmod(module).failed == 0


class TokenModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 3)

    def after_embedding(self, e: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(e).mean(1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.after_embedding(self.embedding(ids))


class TwoCalls(nn.Module):
    """One ReLU called on two branches: ``fc(relu(fa(x)) + relu(fb(x)))``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fa, self.fb = nn.Linear(4, 5), nn.Linear(4, 5)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.fa(x)) + self.relu(self.fb(x)))


def test_linear_head_closed_form() -> None:
    model, x, b = ReLUMLP(), torch.randn(4, 6), torch.randn(1, 6)
    got = LayerIntegratedGradients(model, model.relu2).attribute(x, b, target=2, n_steps=3)
    h = lambda v: torch.relu(model.fc2(torch.relu(model.fc1(v))))  # noqa: E731
    torch.testing.assert_close(got, model.fc3.weight[2] * (h(x) - h(b)))
    local = LayerIntegratedGradients(model, model.relu2, multiply_by_inputs=False)
    torch.testing.assert_close(local.attribute(x, b, 2), model.fc3.weight[2].expand(4, -1))


def test_first_layer_input_is_integrated_gradients() -> None:
    model, x = TinyResNet(), torch.rand(2, 3, 8, 8)
    got = LayerIntegratedGradients(model, model.conv1).attribute(
        x, target=1, n_steps=8, attribute_to_layer_input=True
    )
    torch.testing.assert_close(got, IntegratedGradients(model).attribute(x, target=1, n_steps=8))


def test_completeness_on_parallel_layers() -> None:
    model, x = MultiInputModel(), (torch.randn(3, 4), torch.randn(3, 3))
    scale = torch.tensor([0.5, 1.0, 2.0])
    (fa, fb), delta = LayerIntegratedGradients(model, [model.fa, model.fb]).attribute(
        x, target=0, additional_forward_args=(scale,), return_convergence_delta=True
    )
    assert fa.shape == (3, 6) and fb.shape == (3, 6)
    with torch.no_grad():
        gap = model(*x, scale)[:, 0] - model(torch.zeros(3, 4), torch.zeros(3, 3), scale)[:, 0]
    torch.testing.assert_close(fa.sum(1) + fb.sum(1), gap, atol=1e-4, rtol=1e-4)
    assert delta.abs().max() < 1e-4


def test_token_ids_match_integrated_gradients_on_embeddings() -> None:
    model = TokenModel()
    ids = torch.randint(1, 10, (3, 5))
    got, delta = LayerIntegratedGradients(model, model.embedding).attribute(
        ids, baselines=0, target=[0, 1, 2], return_convergence_delta=True
    )
    emb = configure_interpretable_embedding_layer(model, "embedding")
    try:
        vectors = emb.indices_to_embeddings(ids)
        reference = emb.indices_to_embeddings(torch.zeros_like(ids))
        expected = IntegratedGradients(model).attribute(vectors, reference, target=[0, 1, 2])
    finally:
        remove_interpretable_embedding_layer(model, emb)
    torch.testing.assert_close(got, expected)
    assert delta.abs().max() < 1e-4
    assert isinstance(model.embedding, nn.Embedding)


def test_token_baselines_keep_the_ids_dtype() -> None:
    model = TokenModel()
    ids = torch.randint(1, 10, (2, 5))
    pad = torch.full((1, 5), 3)
    a = LayerIntegratedGradients(model, model.embedding).attribute(ids, pad, target=0, n_steps=4)
    b = LayerIntegratedGradients(model, model.embedding).attribute(ids, 3, target=0, n_steps=4)
    torch.testing.assert_close(a, b)


def test_reused_layer_is_attributed_at_its_last_call() -> None:
    model, x = TwoCalls(), torch.randn(3, 4)
    got, delta = LayerIntegratedGradients(model, model.relu).attribute(
        x, target=1, n_steps=4, return_convergence_delta=True
    )
    h2 = lambda v: torch.relu(model.fb(v))  # noqa: E731  (the second call)
    torch.testing.assert_close(got, model.fc.weight[1] * (h2(x) - h2(torch.zeros_like(x))))
    # the first call ran unchanged, so the attributions miss its share of f(x) - f(0)
    first_share = model.fc.weight[1] @ (torch.relu(model.fa(x)) - torch.relu(model.fa(0 * x))).T
    torch.testing.assert_close(delta, -first_share, atol=1e-5, rtol=1e-4)


def test_neuron_integrated_gradients_completeness() -> None:
    model, x = ReLUMLP(), torch.randn(3, 6)
    got = NeuronIntegratedGradients(model, model.fc2).attribute(x, 4, n_steps=200)
    neuron = lambda v: model.fc2(torch.relu(model.fc1(v)))[:, 4]  # noqa: E731
    torch.testing.assert_close(got.sum(1), neuron(x) - neuron(0 * x), atol=1e-3, rtol=1e-3)


def test_bad_input_before_any_model_call() -> None:
    model = CountingModel(ReLUMLP())
    lig = LayerIntegratedGradients(model, model.model.fc2)
    with pytest.raises(ValueError, match="does not match the input's shape"):
        lig.attribute(torch.randn(2, 6), torch.zeros(3, 6))
    with pytest.raises(ValueError, match="method must be one of"):
        lig.attribute(torch.randn(2, 6), method="trapezoid")
    with pytest.raises(TypeError, match="neuron_selector must be"):
        NeuronIntegratedGradients(model, model.model.fc2).attribute(torch.randn(2, 6), None)  # type: ignore[arg-type]
    assert model.calls == 0


def test_layer_not_in_the_model() -> None:
    model = ReLUMLP()
    with pytest.raises(ValueError, match=r"layer\[1\] Linear is not a submodule"):
        LayerIntegratedGradients(model, [model.fc1, nn.Linear(2, 2)])


def test_dataparallel_model() -> None:
    model, x = ReLUMLP().to(DEV), torch.randn(3, 6, device=DEV)
    plain = LayerIntegratedGradients(model, model.fc2).attribute(x, target=1, n_steps=5)
    wrapped = LayerIntegratedGradients(nn.DataParallel(model), model.fc2)
    torch.testing.assert_close(wrapped.attribute(x, target=1, n_steps=5), plain)


# NoiseTunnel around Layer methods


def test_noise_tunnel_on_token_ids_puts_the_noise_on_the_embedding() -> None:
    model, ids = TokenModel(), torch.randint(1, 10, (2, 5))
    lig = LayerIntegratedGradients(model, model.embedding)
    torch.manual_seed(3)
    got, delta = NoiseTunnel(lig).attribute(
        ids, nt_samples=3, stdevs=0.2, baselines=0, target=1, n_steps=10,
        return_convergence_delta=True,
    )  # fmt: skip
    torch.manual_seed(3)
    noise = torch.randn(2, 3, 5, 4) * 0.2  # NoiseTunnel draws the layer noise first
    e, e0 = model.embedding(ids), model.embedding(torch.zeros_like(ids))
    ig = IntegratedGradients(model.after_embedding)
    expected = torch.stack(
        [ig.attribute(e + noise[:, j], e0, target=1, n_steps=10) for j in range(3)]
    ).mean(0)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert delta.shape == (6,) and delta.abs().max() < 1e-4


def test_noise_tunnel_on_token_ids_without_noise_is_the_method() -> None:
    model, ids = TokenModel(), torch.randint(1, 10, (2, 5))
    lig = LayerIntegratedGradients(model, model.embedding)
    got = NoiseTunnel(lig).attribute(ids, nt_samples=2, stdevs=0.0, target=1, n_steps=5)
    torch.testing.assert_close(got, lig.attribute(ids, target=1, n_steps=5))


def test_noise_tunnel_on_integer_inputs_needs_a_layer_method() -> None:
    model, ids = TokenModel(), torch.randint(1, 10, (2, 5))
    with pytest.raises(TypeError, match="cannot add noise to integer inputs"):
        NoiseTunnel(LayerGradCam(model, model.embedding)).attribute(ids, stdevs=0.1, target=0)
    two = LayerIntegratedGradients(model, [model.embedding, model.out])
    with pytest.raises(ValueError, match="give the method a single layer"):
        NoiseTunnel(two).attribute(ids, stdevs=0.1, target=0)


def test_noise_tunnel_on_float_inputs_around_a_layer_method() -> None:
    model, x = ReLUMLP(), torch.randn(3, 6)
    lig = LayerIntegratedGradients(model, model.relu2)
    torch.manual_seed(1)
    got = NoiseTunnel(lig).attribute(x, nt_samples=4, stdevs=0.1, target=0, n_steps=4)
    torch.manual_seed(1)
    noise = torch.randn(3, 4, 6) * 0.1
    h = lambda v: torch.relu(model.fc2(torch.relu(model.fc1(v))))  # noqa: E731
    h0 = h(torch.zeros(1, 6))
    expected = torch.stack([model.fc3.weight[0] * (h(x + noise[:, j]) - h0) for j in range(4)])
    expected = expected.mean(0)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_noise_tunnel_reused_relu_net() -> None:
    model, x = ReusedReLUNet(), torch.randn(2, 5)
    out = NoiseTunnel(LayerIntegratedGradients(model, [model.fc1, model.relu])).attribute(
        x, nt_samples=2, stdevs=0.1, target=0, n_steps=3, nt_type="vargrad"
    )
    assert isinstance(out, list) and [t.shape for t in out] == [(2, 7), (2, 7)]
