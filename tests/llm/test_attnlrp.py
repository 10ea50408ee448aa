"""AttnLRP: relevance accounting on tiny GPT-2 and Llama, rules, contrasts, no residue."""

from __future__ import annotations

import pytest
import torch

from perspicio import ArgumentError
from perspicio.attr import ContrastiveTarget, TextTokenInput
from perspicio.llm.attnlrp import AttnLRP, attnlrp_rules
from perspicio.testing.llm import TinyCausalLM, WordTokenizer
from tests.llm import tiny
from tests.llm.test_attribution import _same, _state

PROMPT, TARGET = "the cat sat on the mat and", "the dog is"


def _ids(tok: object) -> tuple[torch.Tensor, torch.Tensor]:
    prompt = tok.encode(PROMPT, return_tensors="pt")  # type: ignore[attr-defined]
    target = torch.tensor(tok.encode(TARGET, add_special_tokens=False))  # type: ignore[attr-defined]
    return torch.cat([prompt, target[:-1].view(1, -1)], 1), target


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("softmax", ["attnlrp", "constant"])
def test_relevance_adds_up_to_the_logit(arch: str, softmax: str) -> None:
    tok, model = tiny.tokenizer(), tiny.model(arch, torch.float64)
    ids, target = _ids(tok)
    rel = AttnLRP(model, tok, softmax=softmax).relevance(ids, target)
    with torch.no_grad():
        logits = model(ids).logits[0, -len(target) :]
    torch.testing.assert_close(
        rel.scores, logits[torch.arange(len(target)), target], rtol=1e-6, atol=1e-7
    )
    total = sum(r.sum(1) for r in rel.embeddings.values()) + rel.softmax_absorbed
    torch.testing.assert_close(total, rel.scores, rtol=1e-3, atol=1e-9)
    if softmax == "constant":  # CP-LRP: nothing absorbed, the embeddings hold everything
        assert rel.softmax_absorbed.abs().max() == 0
    else:  # the softmax rule is not conservative; the accounting above must catch it all
        assert rel.softmax_absorbed.abs().max() > 1e-4
    assert torch.equal(
        rel.embeddings[next(iter(rel.embeddings))][:, ids.shape[1] :], torch.zeros(3, 0)
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_rules_keep_the_forward_pass(arch: str) -> None:
    tok, model = tiny.tokenizer(), tiny.model(arch, torch.float64)
    ids, _ = _ids(tok)
    with torch.no_grad():
        plain = model(ids).logits
        with attnlrp_rules(model):
            ruled = model(ids).logits
    torch.testing.assert_close(ruled, plain, rtol=1e-6, atol=1e-6)


def test_uniform_rule_on_a_product_halves_relevance() -> None:
    """For y = sum(a * b) with a, b linear in x, each factor passes on half of y."""
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    with attnlrp_rules(torch.nn.Identity()):
        a, b = x * 2.0, x + 0.0
        y = (a.unsqueeze(0) * b.unsqueeze(0)).sum()
    (g,) = torch.autograd.grad(y, x)
    torch.testing.assert_close((g * x).sum(), y.detach())  # halves add up to y, not 2y


def test_step_matrix_and_contrast() -> None:
    tok, model = tiny.tokenizer(), tiny.model("llama", torch.float64)
    inp = TextTokenInput(PROMPT, tok, skip_tokens=["the"])
    lrp = AttnLRP(model, tok)
    res = lrp.attribute(inp, TARGET)
    n, t = inp.n_itp_features, 3
    assert res.token_attr is not None and res.step_attr is not None
    assert res.step_attr.shape == (t, n + t)
    assert torch.all(res.step_attr[:, n:].triu() == 0) and res.step_attr[1:, n:].abs().sum() > 0
    red, blue = lrp.attribute(inp, "red"), lrp.attribute(inp, "blue")
    both = lrp.attribute(inp, ContrastiveTarget("red", "blue"))
    torch.testing.assert_close(both.seq_attr, red.seq_attr - blue.seq_attr)
    res.plot_step_attr()


def test_plain_module_and_no_residue() -> None:
    tok = WordTokenizer(["<unk>", "the", "cat", "sat", "on", "mat"])
    model = TinyCausalLM(vocab=6)
    res = AttnLRP(model, tok, softmax="constant").attribute(
        TextTokenInput("the cat sat", tok), "on"
    )
    assert res.seq_attr.shape == (3,)
    hf = tiny.model("gpt2")
    before = _state(hf)
    AttnLRP(hf, tiny.tokenizer()).attribute(TextTokenInput(PROMPT, tiny.tokenizer()), TARGET)
    _same(hf, before)


def test_bad_arguments() -> None:
    tok = WordTokenizer(["<unk>", "a", "b"])
    with pytest.raises(ArgumentError, match="softmax"):
        AttnLRP(TinyCausalLM(3), tok, softmax="none")
    with pytest.raises(ArgumentError, match="single tokens"):
        AttnLRP(TinyCausalLM(3), tok).attribute(
            TextTokenInput("a", tok), ContrastiveTarget("a b", "b")
        )
    with pytest.raises(TypeError, match="TextTokenInput"):
        AttnLRP(TinyCausalLM(3), tok).attribute("a", "b")  # type: ignore[arg-type]


def test_fused_attention_is_refused() -> None:
    tok, model = tiny.tokenizer(), tiny.model("llama")
    model.config._attn_implementation = "sdpa"
    before = _state(model)
    with pytest.raises(ArgumentError, match="attn_implementation='eager'"):
        AttnLRP(model, tok).attribute(TextTokenInput(PROMPT, tok), TARGET)
    _same(model, before)
