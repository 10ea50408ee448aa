"""Comparing a model metric across attacks and augmentations, batch after batch."""

from __future__ import annotations

import re
import warnings
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from perspicio._core.chunks import grouped
from perspicio._core.validate import ArgumentError
from perspicio.robust.batched import check_perturbations_per_eval, run_group
from perspicio.robust.perturbation import check_count, check_forward_func
from perspicio.summary import Max, Mean, Min, Summarizer

ORIGINAL_KEY = "Original"


@dataclass(frozen=True)
class AttackInfo:
    """An attack registered with :meth:`AttackComparator.add_attack`."""

    attack_fn: Callable[..., Any]
    name: str
    num_attempts: int
    apply_before_preproc: bool
    attack_kwargs: dict[str, Any] = field(default_factory=dict)
    additional_args: list[str] = field(default_factory=list)


def batch_mean(value: Any) -> Any:
    """A tensor metric averaged over its first dimension (tuples element by element)."""
    if isinstance(value, torch.Tensor):
        return value.mean(dim=0)
    if isinstance(value, tuple):
        return tuple(batch_mean(v) for v in value)
    return value


class AttackComparator:
    """A metric of the model on the original inputs and on attacked or augmented copies.

    ``evaluate`` gives the metric for one batch: on the inputs (key ``"Original"``) and, for
    each attack, the mean over its attempts (with the ``"min"`` and ``"max"`` over attempts when
    ``num_attempts > 1``). ``summary`` gives running means over every batch since construction
    or :meth:`reset`: each batch's metric is first averaged over its examples, and every batch
    counts once. An attack is anything called as ``attack(inputs, **kwargs)``: a
    :class:`Perturbation` such as :class:`FGSM`, or a torchvision transform.

    Args:
        forward_func: the model; it is called as ``forward_func(model_input, *extra_args)``,
            the model input (a tuple included) passed as one argument.
        metric: ``metric(model_out, **kwargs) -> value``, the kwargs being those given to
            ``evaluate``. A value is a float, a tensor (dim 0 over the examples) or a (named)
            tuple of them.
        preproc_fn: applied to the inputs before the model (and before or after each attack).

    Example:
        >>> import torch
        >>> from perspicio.robust import AttackComparator, FGSM
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
        >>> def accuracy(out, target):
        ...     return (out.argmax(1) == target).float()
        >>> comparator = AttackComparator(model, accuracy)
        >>> comparator.add_attack(FGSM(model), "FGSM 0.5", attack_kwargs={"epsilon": 0.5},
        ...                       additional_attack_arg_names=["target"])
        >>> x = torch.randn(8, 4)
        >>> results = comparator.evaluate(x, target=model(x).argmax(1))
        >>> results["Original"].mean().item(), sorted(comparator.summary())
        (1.0, ['FGSM 0.5', 'Original'])
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        metric: Callable[..., Any],
        preproc_fn: Callable[..., Any] | None = None,
    ) -> None:
        check_forward_func(forward_func)
        if not callable(metric):
            raise TypeError(f"metric must be callable, got {type(metric).__name__}")
        if preproc_fn is not None and not callable(preproc_fn):
            raise TypeError(f"preproc_fn must be callable or None, got {type(preproc_fn).__name__}")
        self.forward_func = forward_func
        self.metric = metric
        self.preproc_fn = preproc_fn
        self.attacks: dict[str, AttackInfo] = {}
        self.summary_results: dict[str, Summarizer] = {}
        self.out_format: Any = None

    def add_attack(
        self,
        attack: Callable[..., Any],
        name: str | None = None,
        num_attempts: int = 1,
        apply_before_preproc: bool = True,
        attack_kwargs: dict[str, Any] | None = None,
        additional_attack_arg_names: list[str] | None = None,
    ) -> None:
        """Register an attack (or augmentation) for :meth:`evaluate`.

        Args:
            attack: called as ``attack(inputs, **per_batch_args, **attack_kwargs)``.
            name: the key of its results (default: its class name); unique.
            num_attempts: how many times to run it per batch (for random attacks).
            apply_before_preproc: attack the raw inputs (``True``) or the preprocessed ones.
            attack_kwargs: fixed keyword arguments of the attack.
            additional_attack_arg_names: names of ``evaluate`` kwargs that are also passed to
                the attack (such as ``target``).
        """
        if not callable(attack):
            raise TypeError(f"attack must be callable, got {type(attack).__name__}")
        check_count(num_attempts, "num_attempts")
        name = type(attack).__name__ if name is None else name
        if name in self.attacks or name == ORIGINAL_KEY:
            raise ArgumentError(f"name {name!r} is already used: every attack needs its own name")
        self.attacks[name] = AttackInfo(
            attack_fn=attack,
            name=name,
            num_attempts=num_attempts,
            apply_before_preproc=apply_before_preproc,
            attack_kwargs=dict(attack_kwargs or {}),
            additional_args=list(additional_attack_arg_names or []),
        )

    def evaluate(
        self,
        inputs: Any,
        additional_forward_args: Any = None,
        perturbations_per_eval: int = 1,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The metric on one batch, for the original inputs and every attack.

        Args:
            inputs: the batch, in whatever form ``preproc_fn`` and the attacks take.
            additional_forward_args: extra model arguments (per-example tensors are repeated
                when several copies share a forward pass).
            perturbations_per_eval: how many copies (the original and the attacked ones) go
                through the model in one forward pass; results do not depend on it.
            **kwargs: passed to ``metric``, and to the attacks that name them.

        Returns:
            ``{"Original": value, name: {"mean": value[, "min": ..., "max": ...]}, ...}``.
        """
        check_perturbations_per_eval(perturbations_per_eval)
        model_input = self.preproc_fn(inputs) if self.preproc_fn is not None else inputs
        stats = {ORIGINAL_KEY: Summarizer([Mean()])}
        for info in self.attacks.values():
            stats[info.name] = Summarizer(
                [Mean(), Min(), Max()] if info.num_attempts > 1 else [Mean()]
            )
        copies = self._copies(inputs, model_input, kwargs)
        # the attacks run as the caller's grad mode says; only the evaluation is grad-free
        for group in grouped(copies, perturbations_per_eval):
            with torch.no_grad():
                outs = run_group(self.forward_func, [x for _, x in group], additional_forward_args)
                for (key, _), out in zip(group, outs):
                    value = self.metric(out, **kwargs)
                    self._note_format(value)
                    stats[key].update(value)
        return self._record(stats)

    def _copies(
        self, inputs: Any, model_input: Any, kwargs: dict[str, Any]
    ) -> Iterator[tuple[str, Any]]:
        """``(key, model input)`` for the original and every attack attempt, made lazily."""
        yield ORIGINAL_KEY, model_input
        for info in self.attacks.values():
            extra = {}
            for arg in info.additional_args:
                if arg in kwargs:
                    extra[arg] = kwargs[arg]
                else:
                    warnings.warn(
                        f"{arg!r} was not given to evaluate, so the attack {info.name!r} "
                        "runs without it",
                        stacklevel=3,
                    )
            for _ in range(info.num_attempts):
                if info.apply_before_preproc:
                    attacked = info.attack_fn(inputs, **extra, **info.attack_kwargs)
                    yield info.name, self.preproc_fn(attacked) if self.preproc_fn else attacked
                else:
                    yield info.name, info.attack_fn(model_input, **extra, **info.attack_kwargs)

    def _note_format(self, value: Any) -> None:
        if self.out_format is None and isinstance(value, tuple) and hasattr(value, "_fields"):
            self.out_format = namedtuple(type(value).__name__, value._fields)  # type: ignore[misc]

    def _format(self, summary: Any) -> dict[str, Any]:
        """A summary as one dict (a tuple metric gives one tuple per statistic)."""
        if isinstance(summary, dict):
            return summary
        out = {}
        for key in summary[0]:
            values = tuple(s[key] for s in summary)
            out[key] = self.out_format(*values) if self.out_format else values
        return out

    def _record(self, stats: dict[str, Summarizer]) -> dict[str, Any]:
        results: dict[str, Any] = {ORIGINAL_KEY: self._format(stats[ORIGINAL_KEY].summary)["mean"]}
        self._add(ORIGINAL_KEY, results[ORIGINAL_KEY])
        for info in self.attacks.values():
            per_attempt = self._format(stats[info.name].summary)
            results[info.name] = per_attempt
            if info.num_attempts == 1:
                self._add(info.name, per_attempt["mean"])
            else:
                for stat, value in per_attempt.items():
                    self._add(f"{info.name} {stat.title()} Attempt", value)
        return results

    def _add(self, key: str, value: Any) -> None:
        self.summary_results.setdefault(key, Summarizer([Mean()])).update(batch_mean(value))

    def summary(self) -> dict[str, dict[str, Any]]:
        """Running means over every batch evaluated since construction or :meth:`reset`.

        Keys are ``"Original"``, each attack's name, or for attacks with several attempts
        ``"<name> Mean Attempt"``, ``"<name> Min Attempt"`` and ``"<name> Max Attempt"``;
        each maps to ``{"mean": value}``.
        """
        return {key: self._format(s.summary) for key, s in self.summary_results.items()}

    def reset(self) -> None:
        """Forget the batches evaluated so far."""
        self.summary_results = {}

    def plot(
        self, strengths: Mapping[str, float] | None = None, field: int = 0, ax: Any = None
    ) -> Any:
        """Plot the summarised metric against the attack strength (needs matplotlib).

        Each attack is placed at its strength: ``strengths[name]``, or the number that ends
        its name (``"PGD 0.1"`` is PGD at 0.1). Attacks sharing the rest of the name form one
        curve, which starts at the original metric at strength 0. Attacks with several
        attempts are plotted by their mean attempt.

        Args:
            strengths: the strength of each attack, by name.
            field: which value of a tuple metric to plot.
            ax: a matplotlib axes to draw on (a new figure by default).

        Returns:
            The matplotlib axes.
        """
        curves = self._curves(strengths, field)
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(5, 3.5))
        original = self._scalar(self.summary()[ORIGINAL_KEY]["mean"], field)
        for label, points in curves.items():
            xs, ys = zip(*sorted([(0.0, original), *points]))
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_xlabel("perturbation strength")
        ax.set_ylabel("metric")
        ax.legend()
        return ax

    def _curves(
        self, strengths: Mapping[str, float] | None, field: int
    ) -> dict[str, list[tuple[float, float]]]:
        if ORIGINAL_KEY not in self.summary_results:
            raise ArgumentError("nothing to plot: call evaluate first")
        summary = self.summary()
        curves: dict[str, list[tuple[float, float]]] = {}
        for name, info in self.attacks.items():
            key = name if info.num_attempts == 1 else f"{name} Mean Attempt"
            if key not in summary:
                continue
            label, strength = _strength(name, strengths)
            value = self._scalar(summary[key]["mean"], field)
            curves.setdefault(label, []).append((strength, value))
        return curves

    @staticmethod
    def _scalar(value: Any, field: int) -> float:
        if isinstance(value, tuple):
            value = value[field]
        return float(torch.as_tensor(value).float().mean())


def _strength(name: str, strengths: Mapping[str, float] | None) -> tuple[str, float]:
    """The curve label and the strength of attack ``name``."""
    match = re.fullmatch(r"(.*?)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", name)
    if strengths is not None and name in strengths:
        return (match.group(1) if match else name) or name, float(strengths[name])
    if match is None:
        raise ArgumentError(
            f"the strength of attack {name!r} is unknown: end its name with a number "
            "(e.g. 'PGD 0.1') or pass strengths={name: value}"
        )
    return match.group(1) or name, float(match.group(2))
