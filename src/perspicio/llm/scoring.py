"""Scoring continuations: per-token log-probabilities of a target after many prompts.

:class:`LanguageModel` adapts a Hugging Face causal LM (``model(input_ids=...).logits``,
KV caches) or any ``forward(input_ids) -> logits`` module. :func:`target_log_probs` scores
a target after a stack of equally long prompts in one forward pass (teacher forcing: the
same numbers as decoding the target token by token, up to rounding). With a
:class:`PrefixCache` of the unperturbed prompt, the tokens before the first position where
any prompt of the stack differs are not recomputed: their keys and values are reused.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


class LanguageModel:
    """A causal LM behind one interface: logits for ids, with an optional reused prefix."""

    def __init__(self, model: Any) -> None:
        self.model = model
        try:
            params = inspect.signature(model.forward).parameters
        except (TypeError, ValueError, AttributeError):
            params = {}  # type: ignore[assignment]
        self.cache_kw = next((k for k in ("cache", "past_key_values") if k in params), None)
        self.hf = "input_ids" in params and self.cache_kw is not None

    @property
    def device(self) -> torch.device:
        if hasattr(self.model, "device") and isinstance(self.model.device, torch.device):
            return self.model.device
        if isinstance(self.model, nn.Module):
            for p in self.model.parameters():
                return p.device
        return torch.device("cpu")

    def logits(self, ids: Tensor, prefix: PrefixCache | None = None, start: int = 0) -> Tensor:
        """Logits ``(k, L - start, V)`` of ``ids`` ``(k, L)``; ``prefix`` holds positions < start."""
        if not self.hf:
            return logits_of(self.model(ids))
        k, length = ids.shape
        kwargs: dict[str, Any] = {
            "attention_mask": torch.ones(k, length, dtype=torch.long, device=ids.device),
            "use_cache": False,
        }
        if prefix is not None and start > 0:
            kwargs[self.cache_kw] = prefix.expanded(start, k)  # type: ignore[index]
            kwargs["position_ids"] = torch.arange(start, length, device=ids.device).expand(k, -1)
            kwargs["use_cache"] = True
        else:
            start = 0
        return logits_of(self.model(input_ids=ids[:, start:], **kwargs))

    def prefix_cache(self, ids: Tensor) -> PrefixCache | None:
        """The keys and values of a prompt ``(1, L)``, or None for a model without a cache."""
        if not self.hf:
            return None
        with torch.no_grad():
            out = self.model(input_ids=ids, use_cache=True)
        cache = None
        if hasattr(out, "keys"):
            key = "cache" if "cache" in out else "past_key_values"
            cache = out.get(key)
        layers = _layer_tensors(cache)
        return None if layers is None else PrefixCache(layers, type(cache))


def logits_of(out: Any) -> Tensor:
    logits = out.logits if hasattr(out, "logits") else out
    if not isinstance(logits, Tensor):
        raise TypeError(f"the model must return logits (a tensor or .logits), got {type(out)}")
    return logits[:, 0] if logits.dim() == 4 else logits


def _layer_tensors(cache: Any) -> list[tuple[Tensor, Tensor]] | None:
    """Per layer ``(keys, values)`` ``(1, heads, L, d)`` of a Hugging Face cache."""
    if cache is None:
        return None
    if hasattr(cache, "layers"):
        layers = [(layer.keys, layer.values) for layer in cache.layers]
    elif hasattr(cache, "key_cache"):
        layers = list(zip(cache.key_cache, cache.value_cache))
    elif isinstance(cache, tuple | list):
        layers = [(k, v) for k, v in cache]
    else:
        return None
    ok = all(isinstance(k, Tensor) and k.dim() == 4 for k, _ in layers)
    return layers if ok and layers else None


@dataclass
class PrefixCache:
    """The unperturbed prompt's keys and values, cut to a prefix and repeated on demand."""

    layers: list[tuple[Tensor, Tensor]]
    kind: type

    def expanded(self, length: int, k: int) -> Any:
        cache = self.kind()
        for i, (keys, values) in enumerate(self.layers):
            cache.update(
                keys[:, :, :length].expand(k, -1, -1, -1),
                values[:, :, :length].expand(k, -1, -1, -1),
                i,
            )
        return cache


def shared_prefix(ids: Tensor, original: Tensor) -> int:
    """How many leading positions every row of ``ids`` ``(k, L)`` shares with ``original``."""
    n = min(ids.shape[1], original.shape[1])
    differs = (ids[:, :n] != original[:, :n].to(ids.device)).any(0).nonzero()
    return int(differs[0]) if len(differs) else n


def target_log_probs(
    lm: LanguageModel,
    prompts: Tensor,
    target: Tensor,
    prefix: PrefixCache | None = None,
    original: Tensor | None = None,
    context: Tensor | None = None,
) -> Tensor:
    """``log p(target_t | prompt, target_<t)`` for each prompt row: ``(k, T)``.

    ``prompts`` ``(k, L)`` share a length; with ``prefix`` (the cache of ``original``
    ``(1, L)``) the shared leading tokens are not recomputed. ``context`` ``(k, T - 1)``
    replaces ``target[:-1]`` as the tokens fed after the prompt (perturbed earlier outputs).
    """
    k, length = prompts.shape
    target = target.to(prompts.device)
    fed = target[:-1].expand(k, -1) if context is None else context.to(prompts.device)
    ids = torch.cat([prompts, fed], dim=1)
    start = 0
    if prefix is not None and original is not None:
        start = min(shared_prefix(prompts, original), length - 1)
    logits = lm.logits(ids, prefix, start)  # (k, L + T - 1 - start, V)
    first = length - 1 - start
    picked = logits[:, first : first + len(target)]
    picked = picked.to(torch.promote_types(picked.dtype, torch.float32)).log_softmax(-1)
    return picked.gather(-1, target.view(1, -1, 1).expand(k, -1, 1)).squeeze(-1)
