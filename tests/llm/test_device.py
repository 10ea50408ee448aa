"""On a GPU: the LLM wrappers and AttnLRP run there and give the CPU's numbers."""

from __future__ import annotations

import pytest
import torch

from perspicio.attr import (
    FeatureAblation,
    LayerIntegratedGradients,
    LLMAttribution,
    LLMGradientAttribution,
    TextTemplateInput,
    TextTokenInput,
)
from perspicio.llm import AttnLRP
from tests.llm import tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
PROMPT, TARGET = "the cat sat on the mat and", "the dog is red"


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_same_numbers_on_the_gpu(arch: str) -> None:
    tok = tiny.tokenizer()
    cpu, gpu = tiny.model(arch, torch.float64), tiny.model(arch, torch.float64).cuda()
    template = TextTemplateInput("{} {} sat on the {}", ["the", "cat", "mat"])
    for inp in (TextTokenInput(PROMPT, tok), template):
        a = LLMAttribution(FeatureAblation(cpu), tok).attribute(inp, TARGET)
        b = LLMAttribution(FeatureAblation(gpu), tok).attribute(inp, TARGET)
        assert b.seq_attr.device.type == "cuda"
        # float64 models, but transformers computes Llama's rotary tables in float32
        torch.testing.assert_close(b.token_attr.cpu(), a.token_attr, rtol=1e-6, atol=1e-6)
    inp = TextTokenInput(PROMPT, tok)
    a = LLMGradientAttribution(LayerIntegratedGradients(cpu, tiny.embedding(cpu)), tok)
    b = LLMGradientAttribution(LayerIntegratedGradients(gpu, tiny.embedding(gpu)), tok)
    ra, rb = a.attribute(inp, TARGET, n_steps=8), b.attribute(inp, TARGET, n_steps=8)
    torch.testing.assert_close(rb.token_attr.cpu(), ra.token_attr, rtol=1e-6, atol=1e-6)
    ra, rb = AttnLRP(cpu, tok).attribute(inp, TARGET), AttnLRP(gpu, tok).attribute(inp, TARGET)
    torch.testing.assert_close(rb.step_attr.cpu(), ra.step_attr, rtol=1e-6, atol=1e-6)
    before = torch.cuda.memory_allocated()
    LLMAttribution(FeatureAblation(gpu), tok).attribute(inp, TARGET)
    assert torch.cuda.memory_allocated() <= before + 2**20  # no cache kept alive
