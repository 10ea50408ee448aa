"""Storage of activations and CAVs (safetensors with JSON metadata, never pickle), and pooling.

Files live under ``{save_path}/{model_id}/``: a CAV in ``{concept ids}-{layer}.safetensors``
and a concept's activations at a layer in ``av/{layer}/{concept identifier}.safetensors``.
The metadata records how the activations were taken (pooling, layer input or output), and a
stored file made another way is not reused.

Pooling turns a layer's activation into one vector per example:

- ``"flatten"`` (the default, as Captum): every value of the activation, ``(N, -1)``; the
  activation must have the same shape for every batch.
- ``"mean"``: the mean over the positions (every dim between the batch and the last one, the
  tokens of a ``(N, T, D)`` text activation), ignoring padding where the batch is a dict with
  an ``attention_mask`` of shape ``(N, T)``. Variable-length text needs it. TCAV then takes
  the *sum* of the layer attributions over the same positions: the derivative along moving
  every position by the CAV, which moves the pooled activation by the CAV.
- a callable ``activation -> (N, F)``, applied to the activations and to the attributions
  alike (so it should be linear in its input, e.g. a sum over chosen positions).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from torch import Tensor

from perspicio._core.validate import ArgumentError

Pooling = str | Callable[[Tensor], Tensor]
POOLINGS = ("flatten", "mean")


def check_pooling(pooling: Any) -> None:
    if callable(pooling) or pooling in POOLINGS:
        return
    raise ArgumentError(f"pooling must be 'flatten', 'mean' or a callable, got {pooling!r}")


def pooling_name(pooling: Pooling) -> str:
    if callable(pooling):
        return "callable:" + getattr(pooling, "__qualname__", type(pooling).__name__)
    return pooling


def _position_mask(act: Tensor, mask: Tensor | None) -> Tensor | None:
    """``mask`` as weights over the positions of a ``(N, T, D)`` activation, when it fits."""
    if mask is None or act.dim() != 3 or tuple(mask.shape) != tuple(act.shape[:2]):
        return None
    return mask.to(act.dtype).unsqueeze(-1)  # (N, T, 1)


def pool(act: Tensor, pooling: Pooling, mask: Tensor | None = None, grads: bool = False) -> Tensor:
    """One row per example: activations (``grads=False``) or attributions pooled to match.

    Args:
        act: a layer activation (or attribution) of shape ``(N, ...)``.
        pooling: ``"flatten"``, ``"mean"`` or a callable (see the module docstring).
        mask: the batch's attention mask ``(N, T)``, used by ``"mean"`` on ``(N, T, D)``.
        grads: pool attributions: ``"mean"`` sums over the positions instead of averaging.
    """
    if callable(pooling):
        out = pooling(act)
        if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != act.shape[0]:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ArgumentError(f"pooling must return a (N, F) tensor, got {got}")
        return out
    if pooling == "flatten" or act.dim() <= 2:
        return act.reshape(act.shape[0], -1)
    weights = _position_mask(act, mask)
    flat = act.reshape(act.shape[0], -1, act.shape[-1])  # (N, positions, D)
    if weights is None:
        return flat.sum(1) if grads else flat.mean(1)
    total = (flat * weights).sum(1)
    return total if grads else total / weights.sum(1).clamp_min(1)


def _safetensors() -> Any:
    try:
        import safetensors.torch as st
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "storing CAVs and activations needs safetensors: pip install 'perspicio[store]'"
        ) from e
    return st


def write(path: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Save ``tensors`` with JSON ``meta`` to ``path`` (written whole or not at all)."""
    st = _safetensors()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    st.save_file(data, tmp, metadata={"perspicio": json.dumps(meta)})
    os.replace(tmp, path)


def read(path: str) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """The tensors and metadata saved by :func:`write`, or ``None`` if there is no file."""
    if not os.path.exists(path):
        return None
    from safetensors import safe_open

    _safetensors()
    with safe_open(path, framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("perspicio", "{}"))
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    return tensors, meta


def av_path(save_path: str, model_id: str, identifier: str, layer: str) -> str:
    """Where a concept's activations at ``layer`` are stored."""
    return os.path.join(save_path, model_id, "av", layer, f"{identifier}.safetensors")


def load_activations(path: str, how: dict[str, Any]) -> Tensor | None:
    """Stored activations taken the way ``how`` says, or ``None`` (none, or taken otherwise)."""
    found = read(path)
    if found is None:
        return None
    tensors, meta = found
    if any(meta.get(k) != v for k, v in how.items()) or "activations" not in tensors:
        return None
    return tensors["activations"]
