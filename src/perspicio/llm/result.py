"""The result of an LLM attribution, with its plots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError


def _tensor(value: Any, name: str, dims: int) -> Tensor | None:
    if value is None:
        return None
    out = value if isinstance(value, Tensor) else torch.tensor(value)
    if out.dim() != dims:
        raise ArgumentError(f"{name} must be a {dims}-D tensor, got shape {tuple(out.shape)}")
    return out


class LLMAttributionResult:
    """Attributions of a generated (or given) continuation to the prompt's features.

    Args:
        input_tokens: names of the prompt's features.
        output_tokens: the target's tokens, readable.
        seq_attr: ``(n_features,)`` attribution of the whole target.
        token_attr: ``(n_output_tokens, n_features)`` attribution of each target token.
        output_probs: ``(n_output_tokens,)`` (log-)probabilities of the target's tokens.
        inp: the interpretable input explained (used by :meth:`plot_image_heatmap`).
        step_attr: ``(n_output_tokens, n_features + n_output_tokens)`` per-step matrix: row
            ``t`` attributes target token ``t`` to the prompt and to target tokens ``< t``
            (zero from column ``n_features + t`` on). Not in Captum.

    Example:
        >>> from perspicio.attr import LLMAttributionResult
        >>> res = LLMAttributionResult(input_tokens=["a", "b"], output_tokens=["c"],
        ...                            seq_attr=[0.5, -1.0], token_attr=[[0.5, -1.0]])
        >>> res.seq_attr_dict
        {'a': 0.5, 'b': -1.0}
    """

    def __init__(
        self,
        *,
        input_tokens: list[str],
        output_tokens: list[str],
        seq_attr: Any,
        token_attr: Any = None,
        output_probs: Any = None,
        inp: Any = None,
        step_attr: Any = None,
    ) -> None:
        self.input_tokens, self.output_tokens = list(input_tokens), list(output_tokens)
        self.seq_attr = seq_attr
        self.token_attr = token_attr
        self.output_probs = output_probs
        self.inp = inp
        self.step_attr = _tensor(step_attr, "step_attr", 2)

    @property
    def seq_attr(self) -> Tensor:
        return self._seq_attr

    @seq_attr.setter
    def seq_attr(self, value: Any) -> None:
        attr = _tensor(value, "seq_attr", 1)
        assert attr is not None
        if len(attr) != len(self.input_tokens):
            raise ArgumentError(
                f"seq_attr has {len(attr)} entries for {len(self.input_tokens)} input tokens"
            )
        self._seq_attr = attr

    @property
    def token_attr(self) -> Tensor | None:
        return self._token_attr

    @token_attr.setter
    def token_attr(self, value: Any) -> None:
        attr = _tensor(value, "token_attr", 2)
        shape = (len(self.output_tokens), len(self.input_tokens))
        if attr is not None and tuple(attr.shape) != shape:
            raise ArgumentError(f"token_attr must have shape {shape}, got {tuple(attr.shape)}")
        self._token_attr = attr

    @property
    def output_probs(self) -> Tensor | None:
        return self._output_probs

    @output_probs.setter
    def output_probs(self, value: Any) -> None:
        probs = _tensor(value, "output_probs", 1)
        if probs is not None and len(probs) != len(self.output_tokens):
            raise ArgumentError(
                f"output_probs has {len(probs)} entries for {len(self.output_tokens)} tokens"
            )
        self._output_probs = probs

    @property
    def seq_attr_dict(self) -> dict[str, float]:
        """``{input token: attribution}`` (a repeated token keeps its last value)."""
        return dict(zip(self.input_tokens, self.seq_attr.cpu().tolist()))

    def plot_token_attr(self, show: bool = False) -> Any:
        """Heat map of ``token_attr``: output tokens by input tokens."""
        if self.token_attr is None:
            raise ArgumentError(
                "token_attr is None (the method gives no per-token attribution): use plot_seq_attr"
            )
        return _heatmap(self.token_attr, self.input_tokens, self.output_tokens, show)

    def plot_step_attr(self, show: bool = False) -> Any:
        """Heat map of ``step_attr``: each output token by the prompt and earlier outputs."""
        if self.step_attr is None:
            raise ArgumentError("step_attr is None: the method gave no per-step matrix")
        columns = (
            self.input_tokens
            + self.output_tokens[: self.step_attr.shape[1] - len(self.input_tokens)]
        )
        return _heatmap(self.step_attr, columns, self.output_tokens, show)

    def plot_seq_attr(self, show: bool = False) -> Any:
        """Bar chart of ``seq_attr`` over the input tokens (green positive, red negative)."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        values = self.seq_attr.detach().cpu().float().numpy()
        ax.bar(range(len(values)), values, color=["g" if v >= 0 else "r" for v in values])
        ax.set_xticks(range(len(values)), labels=self.input_tokens, rotation=60, ha="right")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_ylabel("attribution")
        return _finish(fig, ax, show)

    def plot_image_heatmap(
        self,
        show: bool = False,
        target_token_pos: int | Sequence[int] | None = None,
        border_width: int = 2,
        show_legends: bool = True,
    ) -> Any:
        """The image of an :class:`~perspicio.attr.ImageMaskInput` overlaid with the attribution
        of the sequence, of one output token, or of the sum over several positions."""
        if self.inp is None or not hasattr(self.inp, "format_pixel_attr"):
            raise ArgumentError("plot_image_heatmap needs a result of an ImageMaskInput")
        attr = self._attr_at(target_token_pos)
        import matplotlib.pyplot as plt

        pixels = self.inp.format_pixel_attr(attr.unsqueeze(0))[0].detach().cpu().float()
        scale = float(attr.abs().max()) or 1.0
        fig, ax = plt.subplots()
        ax.imshow(self.inp.image)
        ax.imshow(pixels.numpy(), cmap=_cmap(), vmin=-scale, vmax=scale, alpha=0.6)
        colors = [_cmap()((float(a) / scale + 1) / 2)[:3] for a in attr]
        masks, ids = self.inp.get_mask_list(), list(self.inp.mask_id_to_idx)
        draw_segments(ax, masks, ids, colors, border_width, show_legends, tint=False)
        ax.axis("off")
        return _finish(fig, ax, show)

    def _attr_at(self, pos: int | Sequence[int] | None) -> Tensor:
        if pos is None:
            return self.seq_attr
        if self.token_attr is None:
            raise ArgumentError("target_token_pos needs token_attr, which this result lacks")
        rows = [pos] if isinstance(pos, int) else list(pos)
        for p in rows:
            if not -len(self.output_tokens) <= p < len(self.output_tokens):
                raise ArgumentError(
                    f"target_token_pos {p} is out of range for {len(self.output_tokens)} tokens"
                )
        return self.token_attr[rows].sum(0)


def _cmap() -> Any:
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("attr_rwg", ["red", "white", "green"])


def _finish(fig: Any, ax: Any, show: bool) -> Any:
    if show:
        import matplotlib.pyplot as plt

        plt.show()
        return None
    return fig, ax


def _heatmap(values: Tensor, columns: list[str], rows: list[str], show: bool) -> Any:
    import matplotlib.pyplot as plt

    data = values.detach().cpu().float().numpy()
    scale = float(abs(data).max()) or 1.0
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(columns)), max(2, 0.45 * len(rows))))
    image = ax.imshow(data, cmap=_cmap(), vmin=-scale, vmax=scale, aspect="auto")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(columns)), labels=columns, rotation=60, ha="right")
    ax.set_yticks(range(len(rows)), labels=rows)
    for (i, j), v in _cells(data):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    return _finish(fig, ax, show)


def _cells(data: Any) -> list[tuple[tuple[int, int], float]]:
    return [((i, j), float(data[i, j])) for i in range(data.shape[0]) for j in range(data.shape[1])]


def draw_segments(
    ax: Any,
    masks: Sequence[Tensor],
    labels: Sequence[Any],
    colors: Sequence[Any],
    border_width: int,
    show_legends: bool,
    tint: bool,
) -> None:
    """Tint, outline and label image segments on ``ax``."""
    import numpy as np

    for mask, label, color in zip(masks, labels, colors):
        m = mask.bool().cpu().numpy()
        if not m.any():
            continue
        if tint:
            ax.imshow(m[..., None] * np.array([*color, 0.6]).reshape(1, 1, 4))
        if border_width > 0:
            edge = m & ~_eroded(m, border_width)
            ax.imshow(edge[..., None] * np.array([*np.array(color) * 0.7, 1.0]).reshape(1, 1, 4))
        if show_legends:
            ys, xs = np.nonzero(m)
            ax.text(xs.mean(), ys.mean(), str(label), ha="center", va="center", fontsize=8,
                    bbox={"facecolor": "white", "alpha": 0.7, "pad": 1})  # fmt: skip


def _eroded(mask: Any, steps: int) -> Any:
    """``mask`` shrunk by ``steps`` pixels (4-neighbourhood)."""
    import numpy as np

    out = mask.copy()
    for _ in range(steps):
        padded = np.pad(out, 1)
        out = out & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return out
