"""Concept workloads: training the CAVs of one experimental set (two concepts) at one layer.

The activations are given (as TCAV has them cached): 2 x 100 examples of a convolutional
layer flattened to 8,192 features (32 channels x 16 x 16), two separated Gaussian classes.
perspicio's FastCAV and its linear SVM (``DefaultClassifier``) are timed against Captum's
``DefaultClassifier`` (scikit-learn's SGD classifier), all with the same train/test split
ratio (0.33). The floor is one pass over the data: the two class means.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from benchmarks.workload import NO_CAPTUM, Bench, Config, Entry, Workload, load


def _data(cfg: Config) -> tuple[Tensor, Tensor]:
    n, f = cfg.pick(100, 20), cfg.pick(8192, 256)
    g = torch.Generator().manual_seed(0)
    shift = torch.randn(f, generator=g) * 0.2
    x = torch.cat([torch.randn(n, f, generator=g) + shift, torch.randn(n, f, generator=g)])
    y = torch.tensor([1] * n + [0] * n)
    return x.to(cfg.device), y.to(cfg.device)


def _captum(x: Tensor, y: Tensor) -> Entry:
    cls = load("captum", "concept", "DefaultClassifier")
    if isinstance(cls, str):
        return NO_CAPTUM if cls == NO_CAPTUM else cls
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns about memory on every construction
        clf = cls()
    return lambda: clf.train_and_eval([(x, y)])


def _floor(x: Tensor, y: Tensor) -> Any:
    ones = y == 1

    def floor() -> Any:
        return x[ones].mean(0), x[~ones].mean(0)

    return floor


def _bench(cfg: Config, name: str) -> Bench:
    x, y = _data(cfg)
    cls = load("perspicio", "concept", name)
    ours: Entry = cls if isinstance(cls, str) else (lambda: cls().train_and_eval([(x, y)]))
    return Bench(ours, _captum(x, y), _floor(x, y), f"class means of {len(x)} rows")


def fastcav(cfg: Config) -> Bench:
    return _bench(cfg, "FastCAVClassifier")


def svm(cfg: Config) -> Bench:
    return _bench(cfg, "DefaultClassifier")


_FLOOR = "the two class means of the 200 activation rows (8,192 features)"
WORKLOADS = [
    Workload(
        "concept/cav_fastcav", "FastCAVClassifier, 2x100 rows, 8,192 features", _FLOOR, fastcav
    ),
    Workload(
        "concept/cav_svm", "DefaultClassifier (linear SVM), 2x100 rows, 8,192 features", _FLOOR, svm
    ),
]
