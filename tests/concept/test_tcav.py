"""TCAV: scores on a CNN trained in place, the cache, input forms, and bad input."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio import ArgumentError
from perspicio.concept import CAV, TCAV, Concept, DefaultClassifier
from perspicio.concept.stats import significance_test
from perspicio.testing import ConvNet
from tests.concept.conftest import texture_concept
from tests.concept.textures import TextureNet, images

LAYER = "features.3"


def test_planted_texture_is_significant(texture_net, concepts, striped_inputs, tmp_path) -> None:
    tcav = TCAV(texture_net, [LAYER], save_path=str(tmp_path))
    randoms = concepts["randoms"]
    found = significance_test(tcav, striped_inputs, concepts["stripes"], randoms, target=1)
    result = found[LAYER]
    assert result.scores.mean() >= 0.95
    assert result.p_value < 0.01 and result.significant
    unrelated = significance_test(tcav, striped_inputs, concepts["unrelated"], randoms, target=1)
    assert unrelated[LAYER].p_value > 0.05 and not unrelated[LAYER].significant


def _reference_scores(model: nn.Module, layer: nn.Module, x: Tensor, target: int, w: Tensor):
    """Gradient of the target at the layer, dotted with each CAV row, by plain autograd."""
    store: dict[str, Tensor] = {}

    def hook(m: nn.Module, a: Any, out: Tensor) -> Tensor:
        out = out.detach().requires_grad_()
        store["a"] = out
        return out

    h = layer.register_forward_hook(hook)
    try:
        (grad,) = torch.autograd.grad(model(x)[:, target].sum(), store["a"])
    finally:
        h.remove()
    dots = grad.reshape(len(x), -1) @ w.T
    return (dots > 0).float().mean(0), dots.mean(0)


def test_scores_match_reference_and_keys(texture_net, concepts, striped_inputs, tmp_path) -> None:
    stripes, r0, r1 = concepts["stripes"], *concepts["randoms"][:2]
    tcav = TCAV(texture_net, [LAYER, "features.1"], save_path=str(tmp_path))
    sets = [[stripes, r0], [r1, stripes, r0]]
    scores = tcav.interpret(striped_inputs, sets, target=1)
    assert list(scores) == ["0-10", "11-0-10"]
    assert list(scores["0-10"]) == [LAYER, "features.1"]
    for key, concepts_ in zip(scores, sets):
        for layer, per in scores[key].items():
            cav = tcav.cavs[key][layer]
            w, classes = cav.stats["weights"], cav.stats["classes"]
            order = [classes.index(c.id) for c in concepts_]
            sign, mag = _reference_scores(
                texture_net, texture_net.get_submodule(layer), striped_inputs, 1, w[order]
            )
            torch.testing.assert_close(per["sign_count"], sign)
            torch.testing.assert_close(per["magnitude"], mag, rtol=1e-4, atol=1e-6)
    assert scores["11-0-10"][LAYER]["sign_count"].shape == (3,)


class CountingClassifier(DefaultClassifier):
    def __init__(self) -> None:
        super().__init__()
        self.fits = 0

    def train_and_eval(self, dataloader: Any, **kwargs: Any) -> dict[str, Any]:
        self.fits += 1
        return super().train_and_eval(dataloader, **kwargs)


def test_cache_is_reused_across_instances(texture_net, tmp_path) -> None:
    a = texture_concept(0, "stripes", "stripes", 1, n=12)
    b = texture_concept(1, "random", None, 2, n=12)
    x = torch.randn(4, 1, 16, 16)
    first = CountingClassifier()
    scores = TCAV(texture_net, LAYER, classifier=first, save_path=str(tmp_path)).interpret(
        x, [[a, b]], target=1
    )
    files = sorted(
        os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs
    )
    assert files == [
        "default_model_id/0-1-features.3.safetensors",
        "default_model_id/av/features.3/random-1.safetensors",
        "default_model_id/av/features.3/stripes-0.safetensors",
    ]
    # a new instance, concepts without data: everything comes from the files
    again = CountingClassifier()
    a2, b2 = Concept(0, "stripes", None), Concept(1, "random", None)
    tcav = TCAV(texture_net, texture_net.features[3], classifier=again, save_path=str(tmp_path))
    assert tcav.layers == [LAYER]
    reused = tcav.interpret(x, [[a2, b2]], target=1)
    assert again.fits == 0 and first.fits == 1
    torch.testing.assert_close(reused, scores)
    # force_train retrains (and needs the data again)
    with pytest.raises(ArgumentError, match="has no data_iter"):
        tcav.compute_cavs([[a2, b2]], force_train=True)
    tcav2 = TCAV(texture_net, LAYER, classifier=again, save_path=str(tmp_path))
    tcav2.compute_cavs([[a, b]], force_train=True)
    assert again.fits == 1


def test_cache_distinguishes_pooling(texture_net, tmp_path) -> None:
    a = texture_concept(0, "stripes", "stripes", 1, n=12)
    b = texture_concept(1, "random", None, 2, n=12)
    flat = TCAV(texture_net, LAYER, save_path=str(tmp_path)).compute_cavs([[a, b]])
    pooled = TCAV(texture_net, LAYER, save_path=str(tmp_path), pooling=lambda t: t.amax((2, 3)))
    cavs = pooled.compute_cavs([[a, b]])
    assert flat["0-1"][LAYER].stats["weights"].shape == (2, 8 * 16 * 16)
    assert cavs["0-1"][LAYER].stats["weights"].shape == (2, 8)


class KeywordModel(nn.Module):
    """A Hugging Face style text classifier: keyword inputs, an output with ``logits``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(20, 6)
        self.mix = nn.Linear(6, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Any:
        h = torch.tanh(self.mix(self.embed(input_ids)))  # (N, T, 6)
        m = attention_mask[..., None].float()
        out = type("Output", (), {})()
        out.logits = self.head((h * m).sum(1) / m.sum(1))
        return out


def _text_batch(ids: list[list[int]]) -> dict[str, Tensor]:
    t = max(len(s) for s in ids)
    return {
        "input_ids": torch.tensor([s + [0] * (t - len(s)) for s in ids]),
        "attention_mask": torch.tensor([[1] * len(s) + [0] * (t - len(s)) for s in ids]),
    }


def test_dict_batches_of_variable_length_text(tmp_path) -> None:
    model = KeywordModel()
    g = torch.Generator().manual_seed(0)
    low = Concept(0, "low", [_text_batch([[1, 2, 3], [2, 3]]), _text_batch([[1, 1, 2, 3, 2]])])
    high = Concept(1, "high", [_text_batch([[15, 16], [17, 18, 19, 15]])])
    inputs = _text_batch([torch.randint(1, 20, (n,), generator=g).tolist() for n in (3, 5, 2)])
    with pytest.raises(ArgumentError, match="pooling='mean'"):
        TCAV(model, "mix", save_path=str(tmp_path / "flat")).compute_cavs([[low, high]])
    tcav = TCAV(model, model.mix, save_path=str(tmp_path), pooling="mean")
    scores = tcav.interpret(inputs, [[low, high]], target=1)["0-1"]["mix"]
    # reference: the gradient summed over real tokens, dotted with the CAVs
    w = tcav.cavs["0-1"]["mix"].stats["weights"]
    h = {}
    handle = model.mix.register_forward_hook(
        lambda m, a, o: h.setdefault("a", o.detach().requires_grad_())
    )
    try:
        (grad,) = torch.autograd.grad(model(**inputs).logits[:, 1].sum(), h["a"])
    finally:
        handle.remove()
    pooled = (grad * inputs["attention_mask"][..., None]).sum(1)
    torch.testing.assert_close(scores["magnitude"], (pooled @ w.T).mean(0))


def test_model_left_as_it_was(texture_net, tmp_path) -> None:
    a = texture_concept(0, "stripes", "stripes", 1, n=8)
    b = texture_concept(1, "random", None, 2, n=8)
    before = {k: v.clone() for k, v in texture_net.state_dict().items()}
    TCAV(texture_net, LAYER, save_path=str(tmp_path)).interpret(
        torch.randn(3, 1, 16, 16), [[a, b]], target=1
    )
    for m in texture_net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert not texture_net.training
    assert all(p.grad is None for p in texture_net.parameters())
    for k, v in texture_net.state_dict().items():
        assert torch.equal(v, before[k])


def test_bad_input(tmp_path) -> None:
    model = ConvNet()
    path = str(tmp_path)
    a, b = Concept(0, "a", [torch.rand(4, 1, 8, 8)]), Concept(1, "b", [torch.rand(4, 1, 8, 8)])
    with pytest.raises(ArgumentError, match="'nope' is not in the model"):
        TCAV(model, ["conv1", "nope"], save_path=path)
    with pytest.raises(ArgumentError, match="not a submodule"):
        TCAV(model, nn.Linear(2, 2), save_path=path)
    with pytest.raises(TypeError, match="names or modules"):
        TCAV(model, [3], save_path=path)
    with pytest.raises(ArgumentError, match="model_id"):
        TCAV(model, "conv1", model_id="", save_path=path)
    tcav = TCAV(model, "conv1", save_path=path)
    empty = Concept(2, "empty", [])
    with pytest.raises(ArgumentError, match="concept empty-2 has no examples"):
        tcav.interpret(torch.rand(2, 1, 8, 8), [[a, empty]], target=0)
    with pytest.raises(ArgumentError, match="at least two concepts"):
        tcav.interpret(torch.rand(2, 1, 8, 8), [[a]], target=0)
    with pytest.raises(ArgumentError, match="two different concepts have id 0"):
        tcav.interpret(torch.rand(2, 1, 8, 8), [[a, b], [Concept(0, "a2", None), b]])
    with pytest.raises(ArgumentError, match="attribute_to_layer_input"):
        tcav.interpret(torch.rand(2, 1, 8, 8), [[a, b]], attribute_to_layer_input=True)
    with pytest.raises(ArgumentError, match="processes"):
        tcav.compute_cavs([[a, b]], processes=0)
    any_size = TCAV(TextureNet(), "features.1", save_path=path, model_id="any_size")
    mixed = Concept(3, "mixed", [torch.rand(2, 1, 8, 8), torch.rand(2, 1, 6, 6)])
    with pytest.raises(ArgumentError, match="pooling='mean'"):
        any_size.compute_cavs([[a, mixed]])
    small = Concept(4, "small", [torch.rand(3, 1, 6, 6)])
    with pytest.raises(ArgumentError, match="have 512 features for concept a-0 but 288"):
        any_size.compute_cavs([[a, small]])
    with pytest.raises(TypeError, match="inputs"):
        tcav.interpret("not a tensor", [[a, b]])
    # nothing was written for the rejected calls before the concept data were needed
    assert not os.path.exists(CAV.assemble_save_path(path, "default_model_id", [a, b], "conv1"))


@pytest.mark.slow
def test_hugging_face_model_with_padded_batches(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
    )
    model = transformers.BertForSequenceClassification(config).eval()
    low = Concept(0, "low", [_text_batch([[1, 2, 3], [2, 3]]), _text_batch([[1, 2, 3, 4, 5]])])
    high = Concept(1, "high", [_text_batch([[20, 21], [22, 23, 24]])])
    layer = "bert.encoder.layer.0.output"
    tcav = TCAV(model, [layer], save_path=str(tmp_path), pooling="mean")
    inputs = _text_batch([[1, 2], [3, 4, 5, 6]])
    scores = tcav.interpret(inputs, [[low, high]], target=1)["0-1"][layer]
    # two concepts: the CAVs are opposite, so are the scores
    torch.testing.assert_close(scores["magnitude"][0], -scores["magnitude"][1])
    assert float(scores["sign_count"].sum()) == pytest.approx(1.0)


def test_layer_input_equals_previous_layer_output(texture_net, tmp_path) -> None:
    a = texture_concept(0, "stripes", "stripes", 1, n=12)
    b = texture_concept(1, "random", None, 2, n=12)
    x = images(5, "stripes", torch.Generator().manual_seed(3))[0]
    to_input = TCAV(
        texture_net, "features.3", attribute_to_layer_input=True, save_path=str(tmp_path / "in")
    )
    before = TCAV(texture_net, "features.2", save_path=str(tmp_path / "out"))
    got = to_input.interpret(x, [[a, b]], target=1)["0-1"]["features.3"]
    want = before.interpret(x, [[a, b]], target=1)["0-1"]["features.2"]
    torch.testing.assert_close(got, want)
