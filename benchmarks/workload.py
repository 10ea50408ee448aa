"""What a workload is, how the libraries' classes are found, and the floors' building blocks.

A workload builds, for one model and one algorithm, three callables: perspicio's call,
Captum's call (the same arguments), and the *floor*: the bare model evaluations the algorithm
needs, done in the most batched plain-PyTorch way, on inputs prepared beforehand. A class that
a library lacks turns its callable into the reason it is skipped.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

Fn = Callable[[], Any]
# a runnable call, or the reason it cannot run
Entry = Fn | str

NOT_IMPLEMENTED = "skipped (not implemented yet)"
NO_CAPTUM = "skipped (captum not installed)"


@dataclass(frozen=True)
class Config:
    """Where and how big: ``quick`` shrinks every workload to check the harness in seconds."""

    device: torch.device
    quick: bool = False

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full


@dataclass
class Bench:
    """The three callables of a built workload (or, for the libraries, why one is missing)."""

    perspicio: Entry
    captum: Entry
    floor: Fn
    rows: str  # the floor's model evaluations, e.g. "fwd+bwd 50 rows"


@dataclass(frozen=True)
class Workload:
    """A named benchmark: ``build`` makes its callables for a configuration."""

    name: str
    method: str  # the algorithm and its arguments, for the table
    floor: str  # the floor's definition, for the README
    build: Callable[[Config], Bench]
    heavy: bool = False  # expensive model: fewer repetitions, peak memory always measured


def load(library: str, module: str, name: str) -> Any | str:
    """``library.module.name``, or why it cannot be had (not installed / not implemented)."""
    try:
        mod = importlib.import_module(f"{library}.{module}")
    except ImportError:
        return NO_CAPTUM if library == "captum" else f"skipped ({library} not importable)"
    found = getattr(mod, name, None)
    if found is None:
        return NOT_IMPLEMENTED if library == "perspicio" else f"skipped ({name} not in {library})"
    return found


def instance(library: str, name: str, *init: Any) -> Any | str:
    """``library.attr.name(*init)``, or why it cannot be had."""
    cls = load(library, "attr", name)
    return cls if isinstance(cls, str) else cls(*init)


def attribute(method: Any | str, inputs: Any, **kwargs: Any) -> Entry:
    """A call of ``method.attribute(inputs, **kwargs)`` (a reason stays a reason)."""
    if isinstance(method, str):
        return method
    return lambda: method.attribute(inputs, **kwargs)


def explainer(library: str, name: str, init: tuple[Any, ...], inputs: Any, **kwargs: Any) -> Entry:
    """A call of ``library.attr.name(*init).attribute(inputs, **kwargs)``, built once."""
    return attribute(instance(library, name, *init), inputs, **kwargs)


def both(name: str, init: tuple[Any, ...], inputs: Any, **kwargs: Any) -> tuple[Entry, Entry]:
    """The same call through perspicio and through Captum."""
    return (
        explainer("perspicio", name, init, inputs, **kwargs),
        explainer("captum", name, init, inputs, **kwargs),
    )


def rows_of(example: Tensor, n: int) -> Tensor:
    """``n`` copies of a one-row ``example`` as one contiguous batch: ``(n, *example[1:])``."""
    return example[:1].expand(n, *example.shape[1:]).contiguous()


def grad_floor(
    front: Callable[[Tensor], Tensor],
    back: Callable[[Tensor], Tensor],
    batch: Tensor,
    target: int,
) -> Fn:
    """One forward over ``batch`` and the backward of the target score to ``front``'s output.

    With ``front`` the identity, this is the gradient with respect to the inputs (Saliency,
    IG's expanded batch); with ``front`` the network up to a layer, the gradient with respect
    to that layer (GradCam, conductance).
    """

    def floor() -> Any:
        with torch.enable_grad():
            x = batch.detach().requires_grad_(True)
            mid = front(x)
            return torch.autograd.grad(back(mid)[:, target].sum(), mid)

    return floor


def forward_floor(model: nn.Module, example: Tensor, rows: int, chunk: int) -> Fn:
    """No-grad forwards of ``rows`` rows shaped like ``example``, ``chunk`` rows at a time.

    The values of perturbed rows do not change the cost of a forward pass, so one prepared
    chunk of copies stands in for all of them.
    """
    chunk = max(1, min(chunk, rows))
    full = rows_of(example, chunk)
    tail = full[: rows % chunk]

    def floor() -> Any:
        with torch.no_grad():
            for _ in range(rows // chunk):
                out = model(full)
            if tail.shape[0]:
                out = model(tail)
        return out

    return floor


_FASTEST: dict[tuple[Any, ...], int] = {}


def fastest_chunk(
    model: nn.Module, example: Tensor, rows: int, candidates: tuple[int, ...], budget_rows: int
) -> int:
    """The rows per no-grad pass at which ``model`` gets through rows fastest (measured once).

    On a CPU a big batch is not the fastest (a ResNet-18 runs ~30% faster per image 8 at a
    time than 64 at a time), so the floor batches at the best of ``candidates`` (capped at
    ``rows``); each is timed over about ``budget_rows`` rows after a warm-up pass.
    """
    sizes = tuple(sorted({min(c, rows) for c in candidates}))
    key = (id(model), tuple(example.shape[1:]), str(example.device), sizes)
    if key not in _FASTEST:
        best: tuple[float, int] | None = None
        with torch.no_grad():
            for size in sizes:
                batch = rows_of(example, size)
                passes = max(1, budget_rows // size)
                model(batch)
                _sync(example.device)
                t0 = time.perf_counter()
                for _ in range(passes):
                    model(batch)
                _sync(example.device)
                per_row = (time.perf_counter() - t0) / (passes * size)
                if best is None or per_row < best[0]:
                    best = (per_row, size)
        assert best is not None
        _FASTEST[key] = best[1]
    return _FASTEST[key]


def perturbation_floor(
    model: nn.Module, example: Tensor, rows: int, candidates: tuple[int, ...], budget_rows: int
) -> tuple[Fn, str]:
    """The no-grad forwards of ``rows`` rows at the fastest pass size, and its description."""
    chunk = fastest_chunk(model, example, rows, candidates, budget_rows)
    return forward_floor(model, example, rows, chunk), f"fwd {rows} rows, {chunk} per pass"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def identity(x: Tensor) -> Tensor:
    return x


_MODELS: dict[tuple[str, str, bool], Any] = {}


def cached(key: str, cfg: Config, make: Callable[[], Any]) -> Any:
    """Build a model (or model pair) once per process, on the configured device."""
    slot = (key, str(cfg.device), cfg.quick)
    if slot not in _MODELS:
        built = make()
        parts = built if isinstance(built, tuple) else (built,)
        for part in parts:
            part.to(cfg.device)
        _MODELS[slot] = built
    return _MODELS[slot]
