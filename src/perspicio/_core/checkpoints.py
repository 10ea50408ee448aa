"""Training checkpoints: finding them, reading them safely, and visiting them without residue.

Methods that look at a model at several points of its training (TracIn, influence functions)
take checkpoints as a folder, a list of paths, or any iterable, and a loading function
``load(model, path) -> learning_rate``. :func:`at_checkpoint` gives the model a checkpoint's
weights for a ``with`` block and puts the user's weights back afterwards, whatever happens.
Checkpoint files are read as tensors only (safetensors, or ``torch.load`` with
``weights_only=True``): nothing stored is ever unpickled.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.hooks import check_state, loaded
from perspicio._core.validate import ArgumentError

LoadFunc = Callable[[nn.Module, str], Any]
"""``load(model, path)`` puts a checkpoint's weights into ``model``; returns a learning rate."""

LEARNING_RATE_KEY = "learning_rate"


def _natural_key(path: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path)]


def checkpoint_paths(checkpoints: str | Iterable[Any], name: str = "checkpoints") -> list[Any]:
    """The checkpoints in visiting order: a folder's files or a list of paths, naturally sorted.

    ``"ckpt-10"`` comes after ``"ckpt-9"``. Any other iterable is kept in its own order.
    """
    if isinstance(checkpoints, str | os.PathLike):
        folder = os.fspath(checkpoints)
        if not os.path.isdir(folder):
            raise ArgumentError(f"{name} {folder!r} is not a folder of checkpoint files")
        paths: list[Any] = sorted(glob.glob(os.path.join(folder, "*")), key=_natural_key)
    elif isinstance(checkpoints, list) and checkpoints and isinstance(checkpoints[0], str):
        paths = sorted(checkpoints, key=_natural_key)
    elif isinstance(checkpoints, Iterable):
        paths = list(checkpoints)
    else:
        raise TypeError(
            f"{name} must be a folder, a list of paths or an iterable, got {checkpoints!r}"
        )
    if not paths:
        raise ArgumentError(f"{name} {checkpoints!r} holds no checkpoints")
    return paths


def read_state_dict(path: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint file's tensors: safetensors, or a torch file read with ``weights_only=True``.

    A dict that nests the weights under ``"state_dict"`` or ``"model_state_dict"`` is unwrapped;
    a ``"learning_rate"`` entry is kept (:func:`load_state_dict` takes it out).
    """
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return dict(load_file(str(path), device=str(device)))
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # weights_only refuses arbitrary objects: say what happened
        raise ArgumentError(f"checkpoint {path!r} could not be read as tensors: {e}") from e
    if not isinstance(state, dict):
        raise ArgumentError(f"checkpoint {path!r} holds a {type(state).__name__}, not a state dict")
    for key in ("model_state_dict", "state_dict"):
        if isinstance(state.get(key), dict):
            nested = dict(state[key])
            if LEARNING_RATE_KEY in state:
                nested[LEARNING_RATE_KEY] = state[LEARNING_RATE_KEY]
            return nested
    return state


def split_learning_rate(state: dict[str, Any], model: nn.Module) -> tuple[dict[str, Tensor], float]:
    """The model's weights from ``state`` and its learning rate (1.0 when it has none).

    Keys saved from a ``DataParallel`` wrapper (``"module."`` prefix) are mapped to the bare
    model and back, whichever of the two ``model`` is.
    """
    state = dict(state)
    lr = state.pop(LEARNING_RATE_KEY, 1.0)
    lr = float(lr.item() if isinstance(lr, Tensor) else lr)
    wrapped = isinstance(model, nn.DataParallel)
    if state and all(k.startswith("module.") for k in state) and not wrapped:
        state = {k[len("module.") :]: v for k, v in state.items()}
    elif state and wrapped and not any(k.startswith("module.") for k in state):
        state = {f"module.{k}": v for k, v in state.items()}
    return state, lr


def load_state_dict(model: nn.Module, path: str) -> float:
    """The default loading function: read ``path`` as tensors, load them, return the rate.

    The state must fit the model exactly (no missing or unexpected keys, same shapes).
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    state, lr = split_learning_rate(read_state_dict(path, device), model)
    check_state(model, state, strict=True, name=f"checkpoint {path!r}")
    model.load_state_dict(state)
    return lr


@contextmanager
def restored(model: nn.Module) -> Iterator[None]:
    """Whatever the block does to ``model``'s parameters and buffers is undone on exit.

    Values are copied back into the model's own tensors (objects, flags and ``.grad`` stay).
    """
    own = model.state_dict(keep_vars=True)
    saved = {k: v.detach().clone() for k, v in own.items()}
    try:
        yield
    finally:
        current = model.state_dict(keep_vars=True)
        with torch.no_grad():
            for k, v in saved.items():
                own[k].copy_(v)
        replaced = {k: own[k] for k in saved if current[k] is not own[k]}
        if replaced:  # the block swapped tensor objects: put the user's back
            model.load_state_dict(replaced, strict=False, assign=True)


@contextmanager
def at_checkpoint(model: nn.Module, path: Any, load: LoadFunc | None = None) -> Iterator[float]:
    """``model`` with the weights of checkpoint ``path`` for the block; yields the learning rate.

    With ``load=None`` the file is read by :func:`read_state_dict` and checked against the
    model before anything changes. A user's ``load(model, path)`` may write into the model as
    it likes: the weights it finds are restored on exit.
    """
    if load is None or load is load_state_dict:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        state, lr = split_learning_rate(read_state_dict(path, device), model)
        check_state(model, state, strict=True, name=f"checkpoint {path!r}")
        with loaded(model, state, strict=True):
            yield lr
        return
    with restored(model):
        lr = load(model, path)
        if lr is not None and not isinstance(lr, int | float | Tensor):
            raise TypeError(
                "checkpoints_load_func must return the learning rate (a number) or None, got "
                f"{type(lr).__name__}"
            )
        yield 1.0 if lr is None else float(lr)
