"""LLM workload: LLMAttribution(FeatureAblation) on a tiny Llama, 64-token prompt, 8-token target."""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Any

import torch

from benchmarks.workload import NO_CAPTUM, Bench, Config, Workload, cached, load

WORDS = ["<unk>", "<pad>", "<s>"] + [f"w{i}" for i in range(61)]


def _transformers() -> Any:
    """transformers, with a torchvision build that does not match torch made to look absent."""
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except Exception:
            for name in [n for n in sys.modules if n.startswith("torchvision")]:
                del sys.modules[name]
            sys.modules["torchvision"] = None  # type: ignore[assignment]
    return importlib.import_module("transformers")


@functools.cache
def _tokenizer() -> Any:
    tr = _transformers()
    from tokenizers import Tokenizer, models, pre_tokenizers

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tr.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>")


def _build() -> Any:
    tr = _transformers()
    torch.manual_seed(0)
    config = tr.LlamaConfig(
        vocab_size=len(WORDS), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
        bos_token_id=2, eos_token_id=2, pad_token_id=1,
    )  # fmt: skip
    model = tr.LlamaForCausalLM(config).eval()
    model.config._attn_implementation = "eager"
    return model


def feature_ablation(cfg: Config) -> Bench:
    prompt_len, target_len = cfg.pick(64, 8), cfg.pick(8, 2)
    model, tok = cached("llm-llama", cfg, _build), _tokenizer()
    g = torch.Generator().manual_seed(0)
    words = [
        WORDS[int(i)] for i in torch.randint(3, len(WORDS), (prompt_len + target_len,), generator=g)
    ]
    prompt, target = " ".join(words[:prompt_len]), " ".join(words[prompt_len:])

    def call(library: str) -> Any:
        llm_cls = load(library, "attr", "LLMAttribution")
        if isinstance(llm_cls, str):
            return llm_cls
        lib = importlib.import_module(f"{library}.attr")
        llm = llm_cls(lib.FeatureAblation(model), tok)
        inp = lib.TextTokenInput(prompt, tok)
        return lambda: llm.attribute(inp, target=target)

    ids = tok.encode(prompt + " " + target, return_tensors="pt").to(cfg.device)
    # every ablated prompt (and the unperturbed one) followed by the target, in one batch
    batch = ids.expand(prompt_len + 1, -1).clone()
    batch[torch.arange(1, prompt_len + 1), torch.arange(prompt_len)] = 0

    def floor() -> Any:
        with torch.no_grad():
            return model(input_ids=batch, use_cache=False).logits

    captum = call("captum")
    return Bench(
        call("perspicio"), captum if captum != "skipped (LLMAttribution not in captum)" else NO_CAPTUM,
        floor, f"fwd {prompt_len + 1} sequences of {prompt_len + target_len} tokens",
    )  # fmt: skip


WORKLOADS = [
    Workload(
        "llm/feature_ablation",
        "LLMAttribution(FeatureAblation), tiny Llama, 64-token prompt, 8-token target",
        "one forward pass over the 65 prompts (unperturbed and each token ablated) followed by "
        "the target, in one batch, without a KV cache",
        feature_ablation,
    ),
]
