"""LLMAttribution and LLMGradientAttribution against brute force, and their contracts."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.attr import (
    ContrastiveTarget,
    FeatureAblation,
    KernelShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    Lime,
    LLMAttribution,
    LLMGradientAttribution,
    ShapleyValueSampling,
    TextTemplateInput,
    TextTokenInput,
)
from perspicio.testing.llm import TinyCausalLM, WordTokenizer
from tests.llm import tiny

PROMPT, TARGET = "the cat sat on the mat and", "the dog is red"


class LogitsOnly(nn.Module):
    """A Hugging Face model seen as ``forward(input_ids) -> logits`` (no cache reuse)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, use_cache=False).logits


def brute_log_probs(model: Any, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Token-by-token teacher forcing, one forward per target token (no batching, no cache)."""
    out = []
    for t in range(len(target)):
        full = torch.cat([ids, target[:t].view(1, -1)], dim=1)
        with torch.no_grad():
            logits = LogitsOnly(model)(full) if hasattr(model, "config") else model(full)
        out.append(logits[0, -1].log_softmax(-1)[target[t]])
    return torch.stack(out)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("per_eval", [None, 1, 3])
def test_feature_ablation_is_brute_force(arch: str, per_eval: Any) -> None:
    tok, model = tiny.tokenizer(), tiny.model(arch)
    inp = TextTokenInput(PROMPT, tok, baselines="a")
    kw = {} if per_eval is None else {"perturbations_per_eval": per_eval}
    res = LLMAttribution(FeatureAblation(model), tok).attribute(inp, TARGET, **kw)
    target = torch.tensor(tok.encode(TARGET, add_special_tokens=False))
    base = brute_log_probs(model, inp.inp_tensor, target)
    rows = []
    for j in range(inp.n_itp_features):
        ids = inp.inp_tensor.clone()
        ids[0, j] = tok.convert_tokens_to_ids(["a"])[0]
        rows.append(base - brute_log_probs(model, ids, target))
    want = torch.stack(rows, 1)  # (T, F)
    torch.testing.assert_close(res.token_attr, want, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(res.seq_attr, want.sum(0), atol=5e-5, rtol=1e-4)
    torch.testing.assert_close(res.output_probs, base.exp(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_prefix_cache_changes_nothing(arch: str) -> None:
    tok, model = tiny.tokenizer(), tiny.model(arch)
    inp = TextTokenInput(PROMPT, tok)
    cached = LLMAttribution(FeatureAblation(model), tok).attribute(inp, TARGET)
    plain = LLMAttribution(FeatureAblation(LogitsOnly(model)), tok).attribute(inp, TARGET)
    torch.testing.assert_close(cached.token_attr, plain.token_attr, atol=2e-6, rtol=1e-5)


def test_plain_module_and_templates() -> None:
    tok = WordTokenizer(["<unk>", "the", "cat", "dog", "sat", "on", "mat"])
    model = TinyCausalLM(vocab=7).eval()
    inp = TextTemplateInput("{} {} sat on the {}", ["the", "cat", "mat"], baselines=["", "dog", ""])
    res = LLMAttribution(FeatureAblation(model), tok, attr_target="prob").attribute(inp, "the cat")
    target = torch.tensor(tok.encode("the cat"))
    p = brute_log_probs(model, tok.encode(inp.to_model_input(), "pt"), target).sum().exp()
    for j, prompt in enumerate(
        ["cat sat on the mat", "the dog sat on the mat", "the cat sat on the"]
    ):
        q = brute_log_probs(model, tok.encode(prompt, "pt"), target).sum().exp()
        torch.testing.assert_close(res.seq_attr[j], p - q, atol=1e-6, rtol=1e-4)


def test_contrastive_target_is_a_difference() -> None:
    tok, model = tiny.tokenizer(), tiny.model("llama")
    inp = TextTokenInput(PROMPT, tok)
    llm = LLMAttribution(FeatureAblation(model), tok)
    both = llm.attribute(inp, ContrastiveTarget("red", "blue dog"))
    a, b = llm.attribute(inp, "red"), llm.attribute(inp, "blue dog")
    assert both.token_attr is None and both.output_tokens == ["red"]
    torch.testing.assert_close(both.seq_attr, a.seq_attr - b.seq_attr, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", [Lime, KernelShap, ShapleyValueSampling])
def test_sampling_methods_run(method: Any) -> None:
    tok, model = tiny.tokenizer(), tiny.model("gpt2")
    inp = TextTokenInput(PROMPT, tok)
    seen: list[Any] = []
    res = LLMAttribution(method(model), tok).attribute(
        inp, TARGET, num_trials=2, n_samples=4, _inspect_forward=lambda *a: seen.append(a)
    )
    assert res.seq_attr.shape == (inp.n_itp_features,) and seen
    assert (res.token_attr is None) == (method is not ShapleyValueSampling)
    assert seen[0][1] == TARGET and len(seen[0][2]) == 5


def test_gradient_step_matrix() -> None:
    tok, model = tiny.tokenizer(), tiny.model("gpt2")
    inp = TextTokenInput(PROMPT, tok)
    res = LLMGradientAttribution(LayerGradientXActivation(model, tiny.embedding(model)), tok)
    out = res.attribute(inp, TARGET)
    n, t = inp.n_itp_features, 4
    assert out.step_attr is not None and out.step_attr.shape == (t, n + t)
    torch.testing.assert_close(out.step_attr[:, :n], out.token_attr)
    assert torch.all(out.step_attr[:, n:].triu() == 0)  # no token explains itself or later ones
    assert out.step_attr[1:, n:].abs().sum() > 0


def _state(model: nn.Module) -> Any:
    return (
        model.training,
        model.config.use_cache,
        model.config._attn_implementation,
        {k: v.clone() for k, v in model.state_dict().items()},
        [(m._forward_hooks, m._forward_pre_hooks, m._backward_hooks) for m in model.modules()],
    )


def _same(model: nn.Module, before: Any) -> None:
    after = _state(model)
    assert after[:3] == before[:3]
    for k, v in before[3].items():
        assert torch.equal(after[3][k], v), k
    assert all(not any(h) for hooks in after[4] for h in hooks)
    assert all(p.grad is None for p in model.parameters())


def test_model_left_untouched() -> None:
    tok, model = tiny.tokenizer(), tiny.model("llama")
    before = _state(model)
    LLMAttribution(FeatureAblation(model), tok).attribute(TextTokenInput(PROMPT, tok), TARGET)
    llm = LLMGradientAttribution(LayerIntegratedGradients(model, tiny.embedding(model)), tok)
    llm.attribute(TextTokenInput(PROMPT, tok), TARGET, n_steps=2)
    _same(model, before)


BAD = [
    (lambda tok: TextTokenInput(PROMPT, tok), {"target": ""}, ArgumentError, "tokenises to no"),
    (lambda tok: TextTokenInput(PROMPT, tok), {"target": "x", "gen_args": {}}, ArgumentError, "gen_args"),
    (lambda tok: TextTokenInput(PROMPT, tok), {"target": 3}, TypeError, "target must be"),
    (lambda tok: TextTokenInput(PROMPT, tok), {"target": "red", "num_trials": 0}, ArgumentError, "num_trials"),
    (lambda tok: "the cat", {"target": "red"}, TypeError, "inp must be"),
    (lambda tok: TextTemplateInput("{}", ["a"]), {"target": "red", "skip_tokens": ["a"]}, ArgumentError, "skip_tokens"),
    (lambda tok: TextTokenInput(PROMPT, tok), {"target": ContrastiveTarget("red", "")}, ArgumentError, "foil"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "kw", "err", "msg"), BAD)
def test_bad_arguments(make: Any, kw: dict[str, Any], err: type, msg: str) -> None:
    tok, model = tiny.tokenizer(), tiny.model("gpt2")
    before = _state(model)
    with pytest.raises(err, match=msg):
        LLMAttribution(FeatureAblation(model), tok).attribute(make(tok), **kw)
    _same(model, before)


def test_bad_constructor_arguments() -> None:
    tok, model = tiny.tokenizer(), tiny.model("gpt2")
    with pytest.raises(TypeError, match="wraps one of"):
        LLMAttribution(LayerIntegratedGradients(model, tiny.embedding(model)), tok)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="attr_target"):
        LLMAttribution(FeatureAblation(model), tok, attr_target="logit")
    with pytest.raises(ArgumentError, match="no generate"):
        LLMAttribution(FeatureAblation(TinyCausalLM(30)), tok).attribute(TextTokenInput("a", tok))


def test_chat_template_prompt() -> None:
    """A prompt rendered by the tokenizer's chat template is an ordinary token input."""
    pytest.importorskip("jinja2")
    tok, model = tiny.tokenizer(), tiny.model("llama")
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }} , {{ m['content'] }} . {% endfor %}"
        "{% if add_generation_prompt %}assistant ,{% endif %}"
    )
    try:
        messages = [{"role": "what", "content": "the cat sat on the mat"}]
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inp = TextTokenInput(prompt, tok, skip_tokens=[",", "."])
        res = LLMAttribution(FeatureAblation(model), tok).attribute(inp, TARGET)
    finally:
        tok.chat_template = None
    assert inp.values == ["what", "the", "cat", "sat", "on", "the", "mat", "<unk>"]
    assert res.token_attr is not None and res.token_attr.shape == (4, 8)


def test_template_prompts_of_other_lengths_share_the_prefix() -> None:
    """Perturbed templates tokenise to other lengths; the cached prefix must still be right."""
    tok, model = tiny.tokenizer(), tiny.model("llama")
    inp = TextTemplateInput("the cat {} on the {} and {}", ["sat", "red mat", "the"], ["", "", "a"])
    cached = LLMAttribution(FeatureAblation(model), tok).attribute(inp, TARGET)
    plain = LLMAttribution(FeatureAblation(LogitsOnly(model)), tok).attribute(inp, TARGET)
    torch.testing.assert_close(cached.token_attr, plain.token_attr, atol=2e-6, rtol=1e-5)


def test_float64_models_keep_their_precision() -> None:
    tok, model = tiny.tokenizer(), tiny.model("gpt2", torch.float64)
    res = LLMAttribution(FeatureAblation(model), tok).attribute(TextTokenInput(PROMPT, tok), TARGET)
    grad = LLMGradientAttribution(LayerGradientXActivation(model, tiny.embedding(model)), tok)
    assert res.token_attr is not None and res.token_attr.dtype == torch.float64
    assert grad.attribute(TextTokenInput(PROMPT, tok), TARGET).seq_attr.dtype == torch.float64


def test_inspect_forward_sees_every_prompt_once() -> None:
    tok, model = tiny.tokenizer(), tiny.model("gpt2")
    inp = TextTokenInput("the cat sat", tok)
    seen: list[Any] = []
    res = LLMAttribution(FeatureAblation(model), tok, attr_target="prob").attribute(
        inp, "red", _inspect_forward=lambda *a: seen.append(a)
    )
    prompts = sorted(p for p, _, _ in seen)
    assert prompts == sorted(["the cat sat", "<unk> cat sat", "the <unk> sat", "the cat <unk>"])
    unperturbed = next(probs for p, _, probs in seen if p == "the cat sat")
    assert res.output_probs is not None
    torch.testing.assert_close(torch.tensor(unperturbed[1:]), res.output_probs)


def test_generation_leaves_the_model_untouched() -> None:
    tok, model = tiny.tokenizer(), tiny.model("gpt2", seed=3)
    before, gen_config = _state(model), model.generation_config.to_dict()
    res = LLMAttribution(FeatureAblation(model), tok).attribute(
        TextTokenInput(PROMPT, tok), gen_args={"max_new_tokens": 2, "do_sample": False}
    )
    assert len(res.output_tokens) == 2
    _same(model, before)
    assert model.generation_config.to_dict() == gen_config


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_per_step_matrix_is_brute_force(arch: str) -> None:
    tok, model = tiny.tokenizer(), tiny.model(arch)
    inp = TextTokenInput(PROMPT, tok, baselines="a")
    llm = LLMAttribution(FeatureAblation(model), tok)
    res = llm.attribute(inp, TARGET, step_attr=True, perturbations_per_eval=3)
    plain = llm.attribute(inp, TARGET)
    n, target = inp.n_itp_features, torch.tensor(tok.encode(TARGET, add_special_tokens=False))
    assert res.step_attr is not None and res.step_attr.shape == (4, n + 4)
    torch.testing.assert_close(res.token_attr, plain.token_attr, atol=2e-6, rtol=1e-5)
    full = torch.cat([inp.inp_tensor, target[:-1].view(1, -1)], dim=1)
    with torch.no_grad():
        base = LogitsOnly(model)(full)[0, n - 1 :].log_softmax(-1)[torch.arange(4), target]
        for j in range(3):  # ablate target token j where it is context
            ids = full.clone()
            ids[0, n + j] = tok.convert_tokens_to_ids(["a"])[0]
            out = LogitsOnly(model)(ids)[0, n - 1 :].log_softmax(-1)[torch.arange(4), target]
            want = torch.where(torch.arange(4) > j, base - out, torch.zeros(4))
            torch.testing.assert_close(res.step_attr[:, n + j], want, atol=2e-5, rtol=1e-4)
    assert torch.all(res.step_attr[:, n + 3] == 0)
    res.plot_step_attr()


def test_per_step_matrix_needs_tokens_and_a_per_token_method() -> None:
    tok, model = tiny.tokenizer(), tiny.model("gpt2")
    with pytest.raises(ArgumentError, match="step_attr=True needs a TextTokenInput"):
        LLMAttribution(Lime(model), tok).attribute(
            TextTokenInput(PROMPT, tok), TARGET, step_attr=True
        )
    with pytest.raises(ArgumentError, match="not a contrast"):
        LLMAttribution(FeatureAblation(model), tok).attribute(
            TextTokenInput(PROMPT, tok), ContrastiveTarget("a", "b"), step_attr=True
        )


def test_layer_gradient_shap_runs() -> None:
    from perspicio.attr import LayerGradientShap

    tok, model = tiny.tokenizer(), tiny.model("gpt2")
    inp = TextTokenInput(PROMPT, tok)
    llm = LLMGradientAttribution(LayerGradientShap(model, tiny.embedding(model)), tok)
    torch.manual_seed(0)
    res = llm.attribute(inp, TARGET, baselines=torch.zeros(2, inp.n_itp_features, dtype=torch.long))
    assert res.token_attr is not None and res.token_attr.shape == (4, inp.n_itp_features)
    assert torch.isfinite(res.token_attr).all() and res.token_attr.abs().sum() > 0
