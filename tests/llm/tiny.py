"""Tiny random Hugging Face causal LMs and a word-level tokenizer, built in place."""

from __future__ import annotations

import functools
import sys
from typing import Any

import pytest
import torch

WORDS = [
    *("<unk>", "<pad>", "<s>", "the", "a", "cat", "dog", "sat", "on", "mat", "is", "red"),
    *("blue", "key", "value", "what", "where", "when", "?", ".", ",", "and", "or"),
]


def _hide_broken_torchvision() -> None:
    """transformers imports torchvision when present; a build that does not match torch
    fails on import, so make it look absent (tests only)."""
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None  # type: ignore[assignment]


def transformers() -> Any:
    pytest.importorskip("tokenizers")
    _hide_broken_torchvision()
    return pytest.importorskip("transformers")


@functools.cache
def tokenizer() -> Any:
    tr = transformers()
    from tokenizers import Tokenizer, models, pre_tokenizers

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tr.PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<s>"
    )


def model(kind: str, dtype: torch.dtype = torch.float32, seed: int = 0) -> Any:
    """A fresh tiny ``gpt2`` or ``llama`` (hidden size 32, 2 layers), eval mode, eager attention."""
    tr = transformers()
    common = {"vocab_size": len(WORDS), "bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 1}
    torch.manual_seed(seed)
    if kind == "gpt2":
        config = tr.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=128, **common)
        net = tr.GPT2LMHeadModel(config)
    else:
        config = tr.LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2, max_position_embeddings=128, **common,
        )  # fmt: skip
        net = tr.LlamaForCausalLM(config)
    net.config._attn_implementation = "eager"
    return net.to(dtype).eval()


def embedding(net: Any) -> torch.nn.Module:
    return net.get_input_embeddings()
