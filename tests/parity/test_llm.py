"""LLM attribution gives Captum's numbers on tiny random GPT-2 and Llama models.

Captum 0.9's ``use_cached_outputs=True`` path does not pass the KV cache to transformers 5
models (the keyword became ``cache``), so its numbers differ from its own uncached ones; the
oracle here is Captum with ``use_cached_outputs=False`` (token-by-token decoding without a
cache), which our batched, prefix-cached scoring must reproduce.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from perspicio import attr as ours
from tests.llm import tiny

theirs = pytest.importorskip("captum.attr")

PROMPT, TARGET = "the cat sat on the mat", "the dog is red"


def close(a: Any, b: Any) -> None:
    assert a.output_tokens == b.output_tokens and a.input_tokens == b.input_tokens
    torch.testing.assert_close(a.seq_attr, b.seq_attr.to(a.seq_attr), atol=2e-5, rtol=1e-4)
    if b.token_attr is None:
        assert a.token_attr is None
    else:
        torch.testing.assert_close(
            a.token_attr, b.token_attr.to(a.token_attr), atol=2e-5, rtol=1e-4
        )


def inputs(lib: Any, kind: str, tok: Any) -> Any:
    if kind == "tokens":
        return lib.TextTokenInput(PROMPT, tok)
    if kind == "skip":
        return lib.TextTokenInput("the cat sat on the mat", tok, baselines="a", skip_tokens=["the"])
    if kind == "template":
        return lib.TextTemplateInput(
            "{} {} sat on {}", ["the", "cat", "mat"], baselines=["a", "dog", "red"]
        )
    return lib.TextTemplateInput(
        "{who} {what} sat on {where}",
        {"who": "the", "what": "cat", "where": "mat"},
        mask={"who": 1, "what": 1, "where": 0},
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize(
    ("method", "kind", "attr_target"),
    [
        ("FeatureAblation", "tokens", "log_prob"),
        ("FeatureAblation", "skip", "prob"),
        ("FeatureAblation", "template", "log_prob"),
        ("ShapleyValues", "masked", "prob"),
        ("ShapleyValues", "template", "log_prob"),
    ],
)
def test_perturbation_wrappers(arch: str, method: str, kind: str, attr_target: str) -> None:
    tok, model = tiny.tokenizer(), tiny.model(arch)
    got = ours.LLMAttribution(getattr(ours, method)(model), tok, attr_target).attribute(
        inputs(ours, kind, tok), target=TARGET
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = theirs.LLMAttribution(getattr(theirs, method)(model), tok, attr_target).attribute(
            inputs(theirs, kind, tok), target=TARGET, use_cached_outputs=False
        )
    close(got, want)


def test_generated_target() -> None:
    tok, model = tiny.tokenizer(), tiny.model("gpt2", seed=3)
    args = {"max_new_tokens": 3, "do_sample": False, "pad_token_id": 1}
    got = ours.LLMAttribution(ours.FeatureAblation(model), tok).attribute(
        ours.TextTokenInput(PROMPT, tok), gen_args=args
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = theirs.LLMAttribution(theirs.FeatureAblation(model), tok).attribute(
            theirs.TextTokenInput(PROMPT, tok), gen_args=args, use_cached_outputs=False
        )
    close(got, want)


def test_skip_tokens_keyword_of_captum_08() -> None:
    tok, model = tiny.tokenizer(), tiny.model("llama")
    got = ours.LLMAttribution(ours.FeatureAblation(model), tok).attribute(
        ours.TextTokenInput(PROMPT, tok), TARGET, skip_tokens=["the"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = theirs.LLMAttribution(theirs.FeatureAblation(model), tok).attribute(
            theirs.TextTokenInput(PROMPT, tok, skip_tokens=["the"]), TARGET,
            use_cached_outputs=False,
        )  # fmt: skip
    close(got, want)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize(
    ("method", "kw"),
    [("LayerIntegratedGradients", {"n_steps": 8}), ("LayerGradientXActivation", {})],
)
def test_gradient_wrappers(arch: str, method: str, kw: dict[str, Any]) -> None:
    tok, model = tiny.tokenizer(), tiny.model(arch)
    layer = tiny.embedding(model)
    got = ours.LLMGradientAttribution(getattr(ours, method)(model, layer), tok).attribute(
        ours.TextTokenInput(PROMPT, tok, skip_tokens=["the"]), target=TARGET, **kw
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = theirs.LLMGradientAttribution(getattr(theirs, method)(model, layer), tok).attribute(
            theirs.TextTokenInput(PROMPT, tok, skip_tokens=["the"]), target=TARGET, **kw
        )
    close(got, want)
