"""Interpretable inputs: the features a prompt is explained by, and how to perturb them.

An interpretable input maps a binary *presence* vector ``x'`` (one entry per interpretable
feature) to what the model consumes, ``x = h(x')``: the interpretable representation of
LIME (Ribeiro et al., 2016, https://arxiv.org/abs/1602.04938) and SHAP (Lundberg & Lee,
2017, https://arxiv.org/abs/1705.07874). Perturbation methods switch features off (entries
``0``); the input replaces them by their baselines.
"""

from __future__ import annotations

import random
import string
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError


class InterpretableInput(ABC):
    """A model input together with its interpretable features.

    ``values`` names the ``n_itp_features`` features; ``to_tensor()`` is the all-present
    interpretable tensor ``(1, n_itp_features)``; ``to_model_input(x')`` builds the model's
    input with the absent features (entries other than 1) replaced by baselines;
    ``format_attr`` maps attributions of the features back to the user's units.
    """

    n_itp_features: int
    values: list[str]

    @abstractmethod
    def to_tensor(self) -> Tensor:
        """The interpretable tensor of the unperturbed input, ``(1, n_itp_features)``."""

    @abstractmethod
    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Any:
        """The model input for a (perturbed) interpretable tensor; the original when None."""

    def format_attr(self, itp_attr: Tensor) -> Tensor:
        """Attributions of the interpretable features in the user's units (identity here)."""
        return itp_attr

    def model_inputs(self, perturbed: Tensor) -> list[Any]:
        """One model input per row of a stack of interpretable tensors ``(k, n)``."""
        return [self.to_model_input(row.unsqueeze(0)) for row in perturbed]


def _scatter_by_group(itp_attr: Tensor, group: Tensor) -> Tensor:
    """``(..., n_groups)`` attributions to ``(..., n_members)``: each member gets its group's."""
    index = group.to(itp_attr.device).long().expand(*itp_attr.shape[:-1], group.shape[-1])
    return torch.gather(itp_attr, -1, index)


def _slots(template: str) -> tuple[int, list[str]]:
    """How many positional ``{}`` fields, and which named fields, a format string has."""
    positional, named = 0, []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        if field == "" or field.isdigit():
            positional += 1
        else:
            named.append(field.split(".")[0].split("[")[0])
    return positional, named


class TextTemplateInput(InterpretableInput):
    """Text whose features are the segments filled into a template.

    Args:
        template: a format string (``"{} is {}"`` for a list of values, ``"{who} is {what}"``
            for a dict) or a callable taking the values (positionally or by keyword).
        values: the segments, a list or a dict.
        baselines: the segment used when a feature is absent (``""`` by default): a list or
            dict like ``values``, or a callable returning one (e.g. :class:`ProductBaselines`,
            drawn anew for each perturbation).
        mask: group ids, one per segment (list or dict like ``values``): segments with the
            same id form one feature.

    Example:
        >>> import torch
        >>> from perspicio.attr import TextTemplateInput
        >>> inp = TextTemplateInput("{} feels {} today", ["She", "happy"], baselines=["It", "fine"])
        >>> inp.to_tensor()
        tensor([[1., 1.]])
        >>> inp.to_model_input(torch.tensor([[0, 1]]))
        'It feels happy today'
    """

    def __init__(
        self,
        template: str | Callable[..., str],
        values: list[str] | dict[str, str],
        baselines: list[str] | dict[str, str] | Callable[[], Any] | None = None,
        mask: list[int] | dict[str, int] | None = None,
    ) -> None:
        if isinstance(values, dict):
            self.dict_keys = list(values)
            self.values = [values[k] for k in self.dict_keys]
        elif isinstance(values, list):
            self.dict_keys, self.values = [], list(values)
        else:
            raise TypeError(f"values must be a list or a dict, got {type(values).__name__}")
        if isinstance(template, str):
            self._check_slots(template)
            self.format_fn: Callable[..., str] = template.format
        elif callable(template):
            self.format_fn = template
        else:
            raise TypeError(f"template must be a str or a callable, got {type(template).__name__}")
        self.template = template
        self.n_features = len(self.values)
        self.baselines: Any = (
            [""] * self.n_features if baselines is None else self._listed(baselines, "baselines")
        )
        self.mask = mask
        if mask is None:
            self.n_itp_features = self.n_features
        else:
            ids = self._listed(mask, "mask")
            index = {m: i for i, m in enumerate(sorted(set(ids)))}
            self.formatted_mask = [index[m] for m in ids]
            self.n_itp_features = len(index)

    def _check_slots(self, template: str) -> None:
        positional, named = _slots(template)
        if self.dict_keys:
            missing = sorted(set(named) - set(self.dict_keys))
            unused = sorted(set(self.dict_keys) - set(named))
            if positional or missing or unused:
                raise ArgumentError(
                    f"template {template!r} does not match the values' keys {self.dict_keys}: "
                    f"slots without a value {missing or '[]'}, values without a slot "
                    f"{unused or '[]'}" + (f", {positional} positional slots" if positional else "")
                )
        elif named or positional != len(self.values):
            raise ArgumentError(
                f"template {template!r} has {positional} positional slots"
                + (f" and named slots {named}" if named else "")
                + f" but {len(self.values)} values were given: {self.values!r}"
            )

    def _listed(self, spec: Any, name: str) -> Any:
        """A list, dict (by the values' keys) or callable spec as a list (callables kept)."""
        if callable(spec) and not isinstance(spec, list | dict):
            return spec
        if self.dict_keys:
            if not isinstance(spec, Mapping) or set(spec) != set(self.dict_keys):
                raise ArgumentError(
                    f"{name} must be a dict with the values' keys {self.dict_keys}, got {spec!r}"
                )
            spec = [spec[k] for k in self.dict_keys]
        if not isinstance(spec, list) or len(spec) != self.n_features:
            raise ArgumentError(
                f"{name} must give one entry per value ({self.n_features}), got {spec!r}"
            )
        return spec

    def to_tensor(self) -> Tensor:
        return torch.ones(1, self.n_itp_features)

    def _baselines(self) -> list[str]:
        if not callable(self.baselines):
            return list(self.baselines)
        drawn = self.baselines()
        if self.dict_keys:
            if not isinstance(drawn, Mapping):
                raise TypeError(f"the baselines callable must return a dict, got {drawn!r}")
            return [drawn[k] for k in self.dict_keys]
        if not isinstance(drawn, list):
            raise TypeError(f"the baselines callable must return a list, got {drawn!r}")
        return drawn

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> str:
        values = list(self.values)
        if perturbed_tensor is not None:
            present = perturbed_tensor[0]
            baselines = self._baselines()
            for i in range(self.n_features):
                feature = self.formatted_mask[i] if self.mask is not None else i
                if not present[feature]:
                    values[i] = baselines[i]
        if self.dict_keys:
            return self.format_fn(**dict(zip(self.dict_keys, values)))
        return self.format_fn(*values)

    def format_attr(self, itp_attr: Tensor) -> Tensor:
        if self.mask is None:
            return itp_attr
        return _scatter_by_group(itp_attr, torch.tensor([self.formatted_mask]))


def _token_id(tokenizer: Any, token: str | int, name: str) -> int:
    """A token (string or id) as an id of ``tokenizer``'s vocabulary, else a clear error."""
    if isinstance(token, bool) or not isinstance(token, str | int):
        raise TypeError(f"{name} entries must be token strings or ids, got {token!r}")
    if isinstance(token, int):
        if not 0 <= token < len(tokenizer):
            raise ArgumentError(
                f"{name} entry {token} is not a token id of the tokenizer (0..{len(tokenizer) - 1})"
            )
        return token
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else None
    if vocab is not None and token not in vocab:
        raise ArgumentError(f"{name} entry {token!r} is not in the tokenizer's vocabulary")
    return int(tokenizer.convert_tokens_to_ids([token])[0])


class TextTokenInput(InterpretableInput):
    """Text whose features are its tokens.

    Args:
        text: the prompt.
        tokenizer: the model's tokenizer (Hugging Face interface: ``encode``,
            ``convert_ids_to_tokens``, ``convert_tokens_to_ids``, ``decode``).
        baselines: the token (string or id) an absent token becomes; 0 by default.
        skip_tokens: tokens (strings or ids) that are not features (e.g. a BOS token): they
            stay in the model input and get no attribution.

    Example:
        >>> import torch
        >>> from perspicio.attr import TextTokenInput
        >>> from perspicio.testing.llm import WordTokenizer
        >>> tok = WordTokenizer(["<unk>", "<s>", "the", "cat", "sat"], bos_token="<s>")
        >>> inp = TextTokenInput("the cat sat", tok, skip_tokens=["<s>"])
        >>> inp.values
        ['the', 'cat', 'sat']
        >>> inp.to_model_input(torch.tensor([[1, 0, 1]]))
        tensor([[1, 2, 0, 4]])
    """

    def __init__(
        self,
        text: str,
        tokenizer: Any,
        baselines: int | str = 0,
        skip_tokens: list[int] | list[str] | None = None,
    ) -> None:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        self.text = text
        self.baselines = _token_id(tokenizer, baselines, "baselines")
        skip = {_token_id(tokenizer, t, "skip_tokens") for t in skip_tokens or []}
        self.inp_tensor: Tensor = tokenizer.encode(text, return_tensors="pt")
        self.itp_mask: Tensor | None = None
        self.itp_tensor = self.inp_tensor
        if skip:
            keep = torch.tensor([[int(t) not in skip for t in self.inp_tensor[0].tolist()]])
            self.itp_mask = keep
            self.itp_tensor = self.inp_tensor[keep].unsqueeze(0)
        self.skip_tokens = skip_tokens
        self.tokenizer = tokenizer
        self.values = list(tokenizer.convert_ids_to_tokens(self.itp_tensor[0].tolist()))
        self.n_itp_features = len(self.values)

    def to_tensor(self) -> Tensor:
        return torch.ones_like(self.itp_tensor)

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Tensor:
        if perturbed_tensor is None:
            return self.inp_tensor
        k, device = perturbed_tensor.shape[0], perturbed_tensor.device
        itp = self.itp_tensor.to(device).expand(k, -1)
        itp = torch.where(perturbed_tensor != 1, torch.full_like(itp, self.baselines), itp)
        if self.itp_mask is None:
            return itp
        out = self.inp_tensor.to(device).expand(k, -1).clone()
        out[self.itp_mask.to(device).expand(k, -1)] = itp.reshape(-1)
        return out

    def model_inputs(self, perturbed: Tensor) -> list[Any]:
        return list(self.to_model_input(perturbed).unsqueeze(1))


class ImageMaskInput(InterpretableInput):
    """An image whose features are segments (for multimodal models).

    Args:
        image: a ``PIL.Image.Image``.
        mask: ``(height, width)`` integer segment ids; one feature per id (the whole image
            is one feature when None).
        mask_list: boolean ``(height, width)`` masks, one feature each, possibly overlapping;
            takes precedence over ``mask``.
        baseline: the RGB colour of absent pixels.
        processor_fn: turns a (perturbed) image into the model's input (e.g. a multimodal
            processor call); the image itself by default.

    Example:
        >>> import numpy as np, torch
        >>> from PIL import Image
        >>> from perspicio.attr import ImageMaskInput
        >>> image = Image.fromarray(np.zeros((2, 4, 3), dtype="uint8"))
        >>> mask = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
        >>> inp = ImageMaskInput(image, mask=mask)
        >>> inp.values
        ['image_feature_0', 'image_feature_1']
        >>> np.array(inp.to_model_input(torch.tensor([[1, 0]])))[0, :, 0].tolist()
        [0, 0, 255, 255]
    """

    def __init__(
        self,
        image: Any,
        mask: Tensor | None = None,
        mask_list: list[Tensor] | None = None,
        baseline: tuple[int, int, int] = (255, 255, 255),
        processor_fn: Callable[[Any], Any] = lambda x: x,
    ) -> None:
        self.image, self.baseline, self.processor_fn = image, baseline, processor_fn
        shape = (image.size[1], image.size[0])
        for i, m in enumerate(mask_list or []):
            if tuple(m.shape) != shape:
                raise ArgumentError(f"mask_list[{i}] has shape {tuple(m.shape)}, image is {shape}")
        if mask_list is not None:
            ids: list[int] = list(range(len(mask_list)))
            self.mask, self.mask_list = torch.empty(0), list(mask_list)
        else:
            if mask is not None and tuple(mask.shape) != shape:
                raise ArgumentError(f"mask has shape {tuple(mask.shape)}, image is {shape}")
            self.mask = torch.zeros(shape, dtype=torch.int32) if mask is None else mask
            self.mask_list = []
            ids = [int(i) for i in torch.unique(self.mask).tolist()]
        self.mask_id_to_idx = {m: i for i, m in enumerate(ids)}
        self.n_itp_features = len(ids)
        self.values = [f"image_feature_{m}" for m in ids]
        self.original_model_inputs = processor_fn(image)

    def to_tensor(self) -> Tensor:
        return torch.ones(1, self.n_itp_features)

    def get_mask_list(self) -> list[Tensor]:
        """One boolean ``(height, width)`` mask per feature."""
        return self.mask_list or [self.mask == m for m in self.mask_id_to_idx]

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Any:
        if perturbed_tensor is None:
            return self.original_model_inputs
        import numpy as np
        from PIL import Image

        pixels = np.array(self.image)
        for i, m in enumerate(self.get_mask_list()):
            if perturbed_tensor[0][i] == 0:
                pixels[m.bool().numpy()] = self.baseline
        return self.processor_fn(Image.fromarray(pixels.astype("uint8")))

    def format_pixel_attr(self, itp_attr: Tensor) -> Tensor:
        """Per-pixel attributions ``(*lead, height, width)`` (overlapping masks add up)."""
        masks = torch.stack([m.bool() for m in self.get_mask_list()]).to(itp_attr)
        return torch.einsum("...f,fhw->...hw", itp_attr, masks)

    def plot_mask_overlay(
        self, show: bool = False, border_width: int = 0, show_legends: bool = True
    ) -> Any:
        """The image with each segment tinted (and optionally outlined and labelled)."""
        import matplotlib.pyplot as plt

        from perspicio.llm.result import draw_segments

        fig, ax = plt.subplots()
        ax.imshow(self.image)
        rng = random.Random(0)
        colors = [(rng.random(), rng.random(), rng.random()) for _ in self.values]
        draw_segments(ax, self.get_mask_list(), list(self.mask_id_to_idx), colors, border_width,
                      show_legends, tint=True)  # fmt: skip
        ax.axis("off")
        if show:
            plt.show()
            return None
        return fig, ax


class ProductBaselines:
    """Baselines drawn from the Cartesian product of per-feature choices.

    Args:
        baseline_values: a list of lists (choices per feature, in order) or a dict from a
            feature name, or a tuple of names whose baselines go together, to the choices
            (tuples of values for a tuple of names).

    Example:
        >>> from perspicio.attr import ProductBaselines
        >>> pb = ProductBaselines({"who": ["It"], ("a", "b"): [("x", "y")]})
        >>> pb()
        {'who': 'It', 'a': 'x', 'b': 'y'}
    """

    def __init__(self, baseline_values: Sequence[Sequence[Any]] | Mapping[Any, Sequence[Any]]):
        if isinstance(baseline_values, Mapping):
            self.dict_keys: list[Any] = list(baseline_values)
            self.baseline_values = [list(baseline_values[k]) for k in self.dict_keys]
        else:
            self.dict_keys, self.baseline_values = [], [list(v) for v in baseline_values]

    def sample(self) -> list[Any] | dict[str, Any]:
        """One draw: a choice per feature (a list, or a dict by name)."""
        drawn = [random.choice(choices) for choices in self.baseline_values]
        if not self.dict_keys:
            return drawn
        out: dict[str, Any] = {}
        for key, value in zip(self.dict_keys, drawn):
            keys, vals = (key, value) if isinstance(key, tuple) else ((key,), (value,))
            out.update(zip(keys, vals))
        return out

    def __call__(self) -> list[Any] | dict[str, Any]:
        return self.sample()
