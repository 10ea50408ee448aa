"""Feature types of the explorer: how each model input is prepared, and how it is shown.

A model takes one input tensor per feature (an image, a token sequence, a vector of tabular
values...). A feature knows how to turn the raw data of a :class:`~perspicio.insights.Batch`
into the model's input (``input_transforms``), how to build a baseline from that input
(``baseline_transforms``), and how to draw one example with its attribution (``visualize``).
Subclass :class:`BaseFeature` for an input kind the explorer does not know; the frontend shows
an unknown ``visualization_type()`` as the JSON that ``visualize`` returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perspicio._core.validate import ArgumentError
from perspicio.insights.render import image_views, to_numpy

Transform = Callable[[Any], Any]
Transforms = Transform | Sequence[Transform] | None


@dataclass
class FeatureOutput:
    """What the frontend draws for one feature of one example.

    Attributes:
        name: The feature's name.
        base: JSON-able view of the input itself (the original image, the tokens, ...).
        modified: JSON-able view of the attribution (heat maps, per-token scores, bars).
        type: The feature's ``visualization_type()``; selects the frontend view.
        contribution: Share of the example's total absolute attribution on this feature.
    """

    name: str
    base: Any
    modified: Any
    type: str
    contribution: float


def transform_list(transforms: Transforms) -> list[Transform]:
    """``None``, one callable or a sequence of callables, as a list."""
    if transforms is None:
        return []
    if callable(transforms):
        return [transforms]
    out = list(transforms)
    for item in out:
        if not callable(item):
            raise TypeError(f"a transform must be callable, got {item!r}")
    return out


class BaseFeature(ABC):
    """One input of the model, with its transforms and its view in the explorer.

    Args:
        name: The label shown for this feature (``"Photo"``, ``"Review"``...).
        baseline_transforms: Callables that each build a baseline from the model input
            (after ``input_transforms``); the first one is used. ``None`` lets each
            method use its own default baseline (zeros for most).
        input_transforms: Callables applied in order to the batch's raw tensor to obtain
            what the model takes.
        visualization_transform: A callable applied to the raw data of one example before
            it is shown (for images: undo a normalisation; for text: ids to tokens).
    """

    def __init__(
        self,
        name: str,
        baseline_transforms: Transforms,
        input_transforms: Transforms,
        visualization_transform: Transform | None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"a feature needs a non-empty name, got {name!r}")
        if visualization_transform is not None and not callable(visualization_transform):
            raise TypeError(
                f"visualization_transform must be callable, got {visualization_transform!r}"
            )
        self.name = name
        self.baseline_transforms = transform_list(baseline_transforms)
        self.input_transforms = transform_list(input_transforms)
        self.visualization_transform = visualization_transform

    @abstractmethod
    def visualization_type(self) -> str:
        """The name of the frontend view for this feature (``"image"``, ``"text"``...)."""

    @abstractmethod
    def visualize(self, attribution: Any, data: Any, contribution_frac: float) -> FeatureOutput:
        """The view of one example.

        Args:
            attribution: This feature's attribution for the example, with a leading batch
                dimension of 1, shaped like the model input.
            data: The example's raw data for this feature (before ``input_transforms``),
                with a leading batch dimension of 1.
            contribution_frac: Share of the example's total absolute attribution that falls
                on this feature, in [0, 1].
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ImageFeature(BaseFeature):
    """An image input, shown as the original, an attribution heat map and a blend of the two."""

    def __init__(
        self,
        name: str,
        baseline_transforms: Transforms,
        input_transforms: Transforms,
        visualization_transform: Transform | None = None,
    ) -> None:
        super().__init__(name, baseline_transforms, input_transforms, visualization_transform)

    def visualization_type(self) -> str:
        """``"image"``."""
        return "image"

    def visualize(self, attribution: Any, data: Any, contribution_frac: float) -> FeatureOutput:
        """PNG views of the image and its attribution (see the base class for arguments)."""
        shown = data[0] if len(data) == 1 else data
        if self.visualization_transform is not None:
            shown = self.visualization_transform(shown)
        base, modified = image_views(shown, attribution)
        return FeatureOutput(
            self.name, base, modified, self.visualization_type(), contribution_frac
        )


def _per_position(attribution: Any, length: int) -> np.ndarray:
    """Sum an attribution over every dimension after the sequence one: ``(1, T, ...) -> (T,)``."""
    arr = to_numpy(attribution)
    if arr.ndim >= 1 and arr.shape[0] == 1 and arr.ndim > 1:
        arr = arr[0]
    arr = arr.reshape(arr.shape[0], -1).sum(axis=1) if arr.ndim > 1 else arr.reshape(-1)
    if arr.shape[0] != length:
        raise ArgumentError(f"{arr.shape[0]} attributions for {length} tokens")
    return np.nan_to_num(arr)


def _normalised(values: np.ndarray) -> list[float]:
    peak = float(np.abs(values).max()) if values.size else 0.0
    return [float(v) / peak if peak > 0 else 0.0 for v in values]


class TextFeature(BaseFeature):
    """A token sequence, shown as tokens coloured by their attribution.

    ``visualization_transform`` turns the example's raw data (token ids, shape ``(T,)``) into
    a list of ``T`` strings; without it the ids themselves are shown.
    """

    def __init__(
        self,
        name: str,
        baseline_transforms: Transforms,
        input_transforms: Transforms,
        visualization_transform: Transform | None,
    ) -> None:
        super().__init__(name, baseline_transforms, input_transforms, visualization_transform)

    def visualization_type(self) -> str:
        """``"text"``."""
        return "text"

    def visualize(self, attribution: Any, data: Any, contribution_frac: float) -> FeatureOutput:
        """Tokens with raw and normalised attributions (see the base class for arguments)."""
        ids = data[0] if len(data) == 1 else data
        if self.visualization_transform is not None:
            tokens = [str(t) for t in self.visualization_transform(ids)]
        else:
            tokens = [str(v) for v in to_numpy(ids).reshape(-1).tolist()]
        scores = _per_position(attribution, len(tokens))
        base = tokens
        modified = {"values": [float(v) for v in scores], "normalized": _normalised(scores)}
        return FeatureOutput(
            self.name, base, modified, self.visualization_type(), contribution_frac
        )


class GeneralFeature(BaseFeature):
    """A vector of named values (tabular, dense or sparse), shown as an attribution bar chart.

    Args:
        name: The label shown for this feature.
        categories: One label per entry of the data's second dimension (data are ``(N, C)``).
    """

    def __init__(self, name: str, categories: Sequence[str]) -> None:
        super().__init__(name, None, None, None)
        self.categories = [str(c) for c in categories]

    def visualization_type(self) -> str:
        """``"general"``."""
        return "general"

    def visualize(self, attribution: Any, data: Any, contribution_frac: float) -> FeatureOutput:
        """Values and attributions per category (see the base class for arguments)."""
        values = to_numpy(data).reshape(-1)
        attrs = np.nan_to_num(to_numpy(attribution).reshape(-1))
        if attrs.shape[0] != len(self.categories):
            raise ArgumentError(
                f"feature {self.name!r} has {len(self.categories)} categories "
                f"but its attribution has {attrs.shape[0]} entries"
            )
        base = {
            "categories": self.categories,
            "values": [float(v) for v in values] if values.shape == attrs.shape else None,
        }
        modified = {"values": [float(v) for v in attrs], "normalized": _normalised(attrs)}
        return FeatureOutput(
            self.name, base, modified, self.visualization_type(), contribution_frac
        )


class EmptyFeature(BaseFeature):
    """An input that is passed to the model but not shown (its contribution still counts)."""

    def __init__(
        self,
        name: str = "empty",
        baseline_transforms: Transforms = None,
        input_transforms: Transforms = None,
        visualization_transform: Transform | None = None,
    ) -> None:
        super().__init__(name, baseline_transforms, input_transforms, visualization_transform)

    def visualization_type(self) -> str:
        """``"empty"``."""
        return "empty"

    def visualize(self, attribution: Any, data: Any, contribution_frac: float) -> FeatureOutput:
        """No view, only the contribution share."""
        return FeatureOutput(self.name, None, None, self.visualization_type(), contribution_frac)


__all__ = [
    "BaseFeature",
    "EmptyFeature",
    "FeatureOutput",
    "GeneralFeature",
    "ImageFeature",
    "TextFeature",
]
