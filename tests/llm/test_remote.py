"""RemoteLLMAttribution with a fake provider (no network) matches local attribution."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import torch

from perspicio import ArgumentError
from perspicio.attr import (
    FeatureAblation,
    LLMAttribution,
    RemoteLLMAttribution,
    RemoteLLMProvider,
    TextTemplateInput,
    VLLMProvider,
)
from tests.llm import tiny


class LocalProvider(RemoteLLMProvider):
    """Answers from a local model, one prompt at a time, as a server would."""

    def __init__(self, model: Any, tok: Any) -> None:
        self.model, self.tok, self.prompts = model, tok, []  # type: ignore[var-annotated]

    def generate(self, prompt: str, **gen_args: Any) -> str:
        ids = self.tok.encode(prompt, return_tensors="pt")
        out = self.model.generate(
            ids, max_new_tokens=gen_args["max_new_tokens"], do_sample=False, pad_token_id=1
        )
        return str(self.tok.decode(out[0, ids.shape[1] :]))

    def get_logprobs(
        self, input_prompt: str, target_str: str, tokenizer: Any = None
    ) -> list[float]:
        self.prompts.append(input_prompt)
        ids = self.tok.encode(input_prompt, return_tensors="pt")
        target = torch.tensor(tokenizer.encode(target_str, add_special_tokens=False))
        with torch.no_grad():
            logits = self.model(torch.cat([ids, target.view(1, -1)], 1)).logits[0]
        picked = logits[ids.shape[1] - 1 : -1].log_softmax(-1)
        return picked.gather(1, target.view(-1, 1)).squeeze(1).tolist()


@pytest.mark.parametrize("attr_target", ["log_prob", "prob"])
def test_matches_local_attribution(attr_target: str) -> None:
    tok, model = tiny.tokenizer(), tiny.model("llama")
    inp = TextTemplateInput(
        "{} {} sat on the {}", ["the", "cat", "mat"], baselines=["a", "dog", "red"]
    )
    provider = LocalProvider(model, tok)
    remote = RemoteLLMAttribution(FeatureAblation(lambda x: x), tok, provider, attr_target)
    got = remote.attribute(inp, target="the dog is")
    want = LLMAttribution(FeatureAblation(model), tok, attr_target).attribute(
        inp, target="the dog is"
    )
    torch.testing.assert_close(got.token_attr, want.token_attr, atol=1e-5, rtol=1e-4)
    assert "a cat sat on the mat" in provider.prompts
    generated = remote.attribute(inp, gen_args={"max_new_tokens": 2})
    assert len(generated.output_tokens) == 2


def test_bad_provider_and_missing_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    tok = tiny.tokenizer()
    with pytest.raises(TypeError, match="RemoteLLMProvider"):
        RemoteLLMAttribution(FeatureAblation(lambda x: x), tok, object())  # type: ignore[arg-type]

    class Short(LocalProvider):
        def get_logprobs(
            self, input_prompt: str, target_str: str, tokenizer: Any = None
        ) -> list[float]:
            return [0.0]

    remote = RemoteLLMAttribution(FeatureAblation(lambda x: x), tok, Short(None, tok))
    with pytest.raises(ArgumentError, match="gave 1 log-probabilities for 2"):
        remote.attribute(TextTemplateInput("{}", ["the"]), target="the dog")
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ImportError, match="openai"):
        VLLMProvider("http://localhost:1/v1")
    with pytest.raises(ArgumentError, match="api_url"):
        VLLMProvider("  ")
