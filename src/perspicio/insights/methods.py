"""The attribution methods the explorer offers, with their typed, bounded arguments.

Each :class:`MethodSpec` names a class of :mod:`perspicio.attr` and describes the arguments a
user may set from the interface. Classes are looked up lazily: a method whose class cannot be
imported is simply not offered. Defaults follow Captum, except batching knobs
(``perturbations_per_eval``) whose larger defaults only change speed, never results.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ArgKind = Literal["int", "float", "bool", "choice", "ints"]

_INT_LIMIT = 1 << 20  # bound on any integer argument, so no request can ask for 10**12 steps


class ArgumentError(ValueError):
    """A method argument from a request has the wrong name, type or range."""


@dataclass(frozen=True)
class ArgSpec:
    """One user-settable argument of a method.

    Attributes:
        name: The keyword passed to the method.
        kind: ``int``, ``float``, ``bool``, ``choice`` (one of ``choices``) or ``ints`` (a list
            of positive integers, such as a window shape).
        default: The value used when the request leaves it out; ``None`` means automatic.
        minimum: Smallest allowed value (numbers) or entry (``ints``).
        maximum: Largest allowed value (numbers) or entry (``ints``).
        choices: The allowed strings of a ``choice``.
        help: One line shown as the input's tooltip.
        to_constructor: Passed to the class's constructor instead of ``attribute``.
    """

    name: str
    kind: ArgKind
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    to_constructor: bool = False

    def validate(self, value: Any, method: str) -> Any:
        """``value`` converted to this argument's type, or :class:`ArgumentError`."""
        if value is None:
            if self.default is None:
                return None
            raise ArgumentError(f"{method}: argument {self.name!r} may not be null")
        checker = getattr(self, f"_check_{self.kind}")
        return checker(value, method)

    def _fail(self, value: Any, method: str, what: str) -> ArgumentError:
        return ArgumentError(f"{method}: argument {self.name!r} must be {what}, got {value!r}")

    def _range_text(self) -> str:
        lo = "-inf" if self.minimum is None else f"{self.minimum:g}"
        hi = "inf" if self.maximum is None else f"{self.maximum:g}"
        return f"[{lo}, {hi}]"

    def _in_range(self, number: float) -> bool:
        return (self.minimum is None or number >= self.minimum) and (
            self.maximum is None or number <= self.maximum
        )

    def _check_int(self, value: Any, method: str) -> int:
        ok = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not ok or not self._in_range(float(value)):
            raise self._fail(value, method, f"an integer in {self._range_text()}")
        return int(value)

    def _check_float(self, value: Any, method: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(value, method, f"a number in {self._range_text()}")
        number = float(value)
        if not math.isfinite(number) or not self._in_range(number):
            raise self._fail(value, method, f"a number in {self._range_text()}")
        return number

    def _check_bool(self, value: Any, method: str) -> bool:
        if not isinstance(value, bool):
            raise self._fail(value, method, "true or false")
        return value

    def _check_choice(self, value: Any, method: str) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise self._fail(value, method, "one of " + ", ".join(self.choices))
        return value

    def _check_ints(self, value: Any, method: str) -> tuple[int, ...]:
        what = f"a list of 1 to 8 integers in {self._range_text()}"
        if not isinstance(value, list | tuple) or not 1 <= len(value) <= 8:
            raise self._fail(value, method, what)
        out = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or not self._in_range(item):
                raise self._fail(value, method, what)
            out.append(item)
        return tuple(out)

    def describe(self) -> dict[str, Any]:
        """The JSON description sent to the frontend."""
        return {
            "name": self.name,
            "type": self.kind,
            "default": list(self.default) if isinstance(self.default, tuple) else self.default,
            "min": self.minimum,
            "max": self.maximum,
            "choices": list(self.choices),
            "help": self.help,
        }


@dataclass(frozen=True)
class MethodSpec:
    """An attribution method as the explorer offers it.

    Attributes:
        name: The class name in :mod:`perspicio.attr` (also the name shown and requested).
        args: The user-settable arguments.
        kind: How the explorer calls it: ``input`` (``cls(model)``), ``layer`` (``cls(model,
            layer)`` on the last convolution, upsampled to the input), ``guided_layer``
            (``cls(model, layer)`` with an input-shaped result) or ``tunnel`` (NoiseTunnel
            around another method).
        baselines: What ``attribute`` takes as ``baselines``: nothing (``None``), one baseline
            per input (``"one"``: the first baseline transform's) or a distribution
            (``"distribution"``: every baseline transform's, stacked; zeros when none).
        summary: One line shown under the method picker.
        gradient: Whether it needs gradients of the model at its inputs (so it cannot explain
            integer inputs such as token ids directly).
    """

    name: str
    args: tuple[ArgSpec, ...] = ()
    kind: Literal["input", "layer", "guided_layer", "tunnel"] = "input"
    baselines: Literal["one", "distribution"] | None = None
    summary: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    gradient: bool = True

    def resolve(self) -> type | None:
        """The class from :mod:`perspicio.attr`, or ``None`` while it does not exist."""
        return resolve_class(self.name)

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Every argument, validated and with defaults filled in."""
        known = {a.name: a for a in self.args}
        unknown = sorted(set(arguments) - set(known))
        if unknown:
            expected = ", ".join(known) or "none"
            raise ArgumentError(f"{self.name}: unknown argument(s) {unknown}; expected: {expected}")
        return {
            name: spec.validate(arguments[name], self.name) if name in arguments else spec.default
            for name, spec in known.items()
        }

    def describe(self) -> dict[str, Any]:
        """The JSON description sent to the frontend."""
        return {
            "name": self.name,
            "summary": self.summary,
            "args": [a.describe() for a in self.args],
        }


def resolve_class(name: str) -> type | None:
    """``perspicio.attr.<name>`` if it can be imported, else ``None``."""
    try:
        module = importlib.import_module("perspicio.attr")
    except Exception:  # a package mid-edit must not take the explorer down
        return None
    found = getattr(module, name, None)
    return found if isinstance(found, type) else None


def _ppe(default: int = 16) -> ArgSpec:
    return ArgSpec(
        "perturbations_per_eval",
        "int",
        default,
        1,
        4096,
        help="perturbed copies per forward pass (speed only; results do not change)",
    )


def _grouping() -> tuple[ArgSpec, ArgSpec]:
    return (
        ArgSpec(
            "feature_grouping",
            "choice",
            "auto",
            choices=("auto", "pixels", "patches", "superpixels"),
            help="image features: auto (patches above 256 pixels), pixels, square patches or "
            "superpixels; embedded tokens are always one feature each",
        ),
        ArgSpec("patch_size", "int", None, 1, 1024, help="patch side in pixels (empty: auto)"),
    )


_SAMPLES_HELP = "number of samples"
_TUNNEL_BASES = (
    "Saliency",
    "IntegratedGradients",
    "InputXGradient",
    "GuidedBackprop",
    "Deconvolution",
    "DeepLift",
)

REGISTRY: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "IntegratedGradients",
            (
                ArgSpec("n_steps", "int", 50, 1, 1000, help="steps of the path integral"),
                ArgSpec(
                    "method",
                    "choice",
                    "gausslegendre",
                    choices=(
                        "gausslegendre",
                        "riemann_trapezoid",
                        "riemann_left",
                        "riemann_right",
                        "riemann_middle",
                    ),
                    help="quadrature rule",
                ),
                ArgSpec("internal_batch_size", "int", None, 1, _INT_LIMIT, help="steps per pass"),
            ),
            baselines="one",
            summary="path integral of gradients from a baseline",
        ),
        MethodSpec(
            "Saliency",
            (ArgSpec("abs", "bool", True, help="absolute value of the gradient"),),
            summary="gradient of the output",
        ),
        MethodSpec("InputXGradient", summary="input times gradient"),
        MethodSpec("DeepLift", baselines="one", summary="DeepLift rescale rule"),
        MethodSpec(
            "DeepLiftShap",
            baselines="distribution",
            summary="DeepLift averaged over the baselines of every baseline transform",
        ),
        MethodSpec("GuidedBackprop", summary="gradient through ReLUs passing positive signal"),
        MethodSpec("Deconvolution", summary="deconvolution (ReLU on the backward signal)"),
        MethodSpec(
            "GradientShap",
            (
                ArgSpec("n_samples", "int", 5, 1, 1000, help=_SAMPLES_HELP),
                ArgSpec("stdevs", "float", 0.0, 0.0, 1e6, help="noise added to each sample"),
            ),
            baselines="distribution",
            summary="expected gradients over random points between baseline and input",
        ),
        MethodSpec(
            "NoiseTunnel",
            (
                ArgSpec("base", "choice", "Saliency", choices=_TUNNEL_BASES, to_constructor=True),
                ArgSpec(
                    "nt_type",
                    "choice",
                    "smoothgrad",
                    choices=("smoothgrad", "smoothgrad_sq", "vargrad"),
                ),
                ArgSpec("nt_samples", "int", 5, 1, 1000, help="noisy copies"),
                ArgSpec("stdevs", "float", 1.0, 0.0, 1e6, help="standard deviation of the noise"),
                ArgSpec(
                    "nt_samples_batch_size", "int", None, 1, _INT_LIMIT, help="copies per pass"
                ),
            ),
            kind="tunnel",
            summary="average of another method over noisy copies (SmoothGrad, VarGrad)",
        ),
        MethodSpec(
            "FeatureAblation",
            (*_grouping(), _ppe()),
            baselines="one",
            summary="output change when each feature (pixel, patch, token) is replaced by the "
            "baseline",
            gradient=False,
        ),
        MethodSpec(
            "Occlusion",
            (
                ArgSpec(
                    "sliding_window_shapes",
                    "ints",
                    None,
                    1,
                    _INT_LIMIT,
                    help="window shape per example, e.g. 1,2,2 (empty: all channels, an eighth "
                    "of each side)",
                ),
                ArgSpec(
                    "strides",
                    "ints",
                    None,
                    1,
                    _INT_LIMIT,
                    help="window step (empty: half a window)",
                ),
                _ppe(),
            ),
            baselines="one",
            gradient=False,
            summary="output change when a sliding window is replaced by the baseline",
        ),
        MethodSpec(
            "Lime",
            (ArgSpec("n_samples", "int", 50, 1, 100_000, help=_SAMPLES_HELP), *_grouping(), _ppe()),
            baselines="one",
            gradient=False,
            summary="local linear surrogate on random masks",
        ),
        MethodSpec(
            "KernelShap",
            (ArgSpec("n_samples", "int", 25, 2, 100_000, help=_SAMPLES_HELP), *_grouping(), _ppe()),
            baselines="one",
            gradient=False,
            summary="Shapley values estimated by weighted linear regression",
        ),
        MethodSpec(
            "ShapleyValueSampling",
            (
                ArgSpec("n_samples", "int", 25, 1, 10_000, help="random permutations"),
                *_grouping(),
                _ppe(),
            ),
            baselines="one",
            gradient=False,
            summary="Shapley values estimated from random feature orders",
        ),
        MethodSpec(
            "LayerGradCam",
            (ArgSpec("relu_attributions", "bool", False, help="keep only positive evidence"),),
            kind="layer",
            summary="Grad-CAM on the last convolution, upsampled to the input",
        ),
        MethodSpec(
            "GuidedGradCam",
            (),
            kind="guided_layer",
            summary="Grad-CAM on the last convolution times guided backprop",
        ),
        MethodSpec("LRP", summary="layer-wise relevance propagation"),
    )
}

DEFAULT_METHOD = "IntegratedGradients"


def available_methods() -> dict[str, MethodSpec]:
    """The registered methods whose classes can be imported now, in registry order."""
    return {name: spec for name, spec in REGISTRY.items() if spec.resolve() is not None}


def tunnel_bases(available: Mapping[str, MethodSpec]) -> tuple[str, ...]:
    """The methods NoiseTunnel may wrap that are available."""
    return tuple(name for name in _TUNNEL_BASES if name in available)
