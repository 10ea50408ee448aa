"""Text attribution as HTML: one row per example, each token shaded by its attribution.

Every token, label and class name is HTML-escaped, so a token such as ``<script>`` is shown
as text and never interpreted by the browser.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from perspicio._core.validate import ArgumentError
from perspicio.viz.scale import to_numpy

__all__ = [
    "VisualizationDataRecord",
    "format_classname",
    "format_special_tokens",
    "format_tooltip",
    "format_word_importances",
    "visualize_text",
]

_HEADERS = (
    "True Label",
    "Predicted Label",
    "Attribution Label",
    "Attribution Score",
    "Word Importance",
)


class VisualizationDataRecord:
    """What `visualize_text` shows for one example.

    Args:
        word_attributions: One attribution per token (sequence, array or 1D tensor), best
            scaled into [-1, 1]; values beyond are shown at full intensity.
        pred_prob: Probability of the predicted class.
        pred_class: Predicted class name.
        true_class: True class name.
        attr_class: Class the attributions were computed for.
        attr_score: Total attribution score.
        raw_input_ids: The tokens (strings), in order.
        convergence_score: Convergence delta of the attribution method (not displayed).

    Example:
        >>> record = VisualizationDataRecord([0.5, -0.2], 0.9, "pos", "pos", "pos", 0.3,
        ...                                  ["good", "movie"], 0.0)
        >>> record.raw_input_ids
        ['good', 'movie']
    """

    __slots__ = (
        "attr_class",
        "attr_score",
        "convergence_score",
        "pred_class",
        "pred_prob",
        "raw_input_ids",
        "true_class",
        "word_attributions",
    )

    def __init__(
        self,
        word_attributions: Any,
        pred_prob: Any,
        pred_class: Any,
        true_class: Any,
        attr_class: Any,
        attr_score: Any,
        raw_input_ids: Any,
        convergence_score: Any,
    ) -> None:
        self.word_attributions = word_attributions
        self.pred_prob = pred_prob
        self.pred_class = pred_class
        self.true_class = true_class
        self.attr_class = attr_class
        self.attr_score = attr_score
        self.raw_input_ids = raw_input_ids
        self.convergence_score = convergence_score

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"VisualizationDataRecord({fields})"


def token_color(value: float) -> str:
    """CSS background colour for an attribution: green if positive, red if negative.

    The magnitude (clipped to 1) sets the intensity; 0 is white.

    Example:
        >>> token_color(1.0), token_color(-0.5), token_color(0.0)
        ('hsl(120, 70%, 55%)', 'hsl(0, 70%, 78%)', 'hsl(0, 70%, 100%)')
    """
    strength = min(abs(float(value)), 1.0)
    if strength != strength:  # NaN: show as neutral
        strength = 0.0
    hue = 120 if value > 0 else 0
    return f"hsl({hue}, 70%, {round(100 - 45 * strength)}%)"


def format_classname(classname: Any) -> str:
    """A table cell holding a class name (escaped), in bold.

    Example:
        >>> format_classname("<pos>")
        '<td><b>&lt;pos&gt;</b></td>'
    """
    return f"<td><b>{html.escape(str(classname))}</b></td>"


def format_special_tokens(token: str) -> str:
    """Show a special token such as ``<s>`` or ``</s>`` as ``#s`` / ``#/s``.

    The result is plain text (not yet escaped); other tokens are returned unchanged.

    Example:
        >>> format_special_tokens("<pad>"), format_special_tokens("cat")
        ('#pad', 'cat')
    """
    if token.startswith("<") and token.endswith(">"):
        return "#" + token.strip("<>")
    return token


def format_tooltip(item: str, text: str) -> str:
    """`item` with a hover tooltip showing `text`; both are escaped.

    Example:
        >>> format_tooltip("cat", "0.52")
        '<div class="tooltip" title="0.52">cat<span class="tooltiptext">0.52</span></div>'
    """
    tip = html.escape(str(text))
    return (
        f'<div class="tooltip" title="{tip}">{html.escape(str(item))}'
        f'<span class="tooltiptext">{tip}</span></div>'
    )


def _importance_values(importances: Any) -> np.ndarray:
    values = to_numpy(importances, "word_attributions").astype(np.float64)
    if values.ndim != 1:
        raise ArgumentError(
            f"word_attributions must be 1D (one per token); got shape {values.shape}"
        )
    return values


def format_word_importances(words: Sequence[Any], importances: Any) -> str:
    """A table cell with every token shaded by its attribution.

    Tokens are shown after `format_special_tokens` and escaped. There must be at least as
    many importances as words (extra importances are ignored).

    Example:
        >>> format_word_importances(["hi"], [1.0])  # doctest: +NORMALIZE_WHITESPACE
        '<td><mark style="background-color: hsl(120, 70%, 55%); padding: 0 2px;
        line-height: 1.75" title="1.000">hi</mark> </td>'
    """
    if importances is None or len(importances) == 0:
        return "<td></td>"
    values = _importance_values(importances)
    if len(words) > values.shape[0]:
        raise ArgumentError(
            f"need one attribution per word: {len(words)} words, {values.shape[0]} attributions"
        )
    marks = [
        f'<mark style="background-color: {token_color(value)}; padding: 0 2px; '
        f'line-height: 1.75" title="{value:.3f}">'
        f"{html.escape(format_special_tokens(str(word)))}</mark> "
        for word, value in zip(words, values)
    ]
    return "<td>" + "".join(marks) + "</td>"


def _number(value: Any) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return str(value)


def _row(record: VisualizationDataRecord) -> str:
    predicted = f"{record.pred_class} ({_number(record.pred_prob)})"
    cells = [
        format_classname(record.true_class),
        format_classname(predicted),
        format_classname(record.attr_class),
        format_classname(_number(record.attr_score)),
        format_word_importances(record.raw_input_ids, record.word_attributions),
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _legend() -> str:
    swatches = "".join(
        f'<span style="display: inline-block; width: 10px; height: 10px; '
        f'border: 1px solid; background-color: {token_color(value)}"></span> {label} '
        for value, label in ((-1.0, "Negative"), (0.0, "Neutral"), (1.0, "Positive"))
    )
    return (
        '<div class="legend" style="border-top: 1px solid; margin-top: 5px; '
        f'padding-top: 5px; display: inline-block"><b>Legend: </b>{swatches}</div>'
    )


class HTMLText:
    """An HTML document that notebooks render and that can be written to a file.

    Used by `visualize_text` when IPython is not installed.

    Example:
        >>> page = HTMLText("<b>hi</b>")
        >>> page.data == str(page) == page._repr_html_()
        True
    """

    def __init__(self, data: str) -> None:
        self.data = data

    def _repr_html_(self) -> str:
        return self.data

    def __str__(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return f"HTMLText({len(self.data)} characters)"


def visualize_text(datarecords: Iterable[VisualizationDataRecord], legend: bool = True) -> Any:
    """Render text attributions as an HTML table.

    Each record becomes a row: true, predicted and attribution labels, the attribution score,
    then the tokens shaded green (positive) or red (negative), stronger for larger
    magnitudes. Inside an IPython session the table is also displayed.

    Args:
        datarecords: The records to show.
        legend: Add a colour legend under the table.

    Returns:
        An ``IPython.display.HTML`` object when IPython is installed, otherwise an
        `HTMLText`; either way ``.data`` is the HTML string.

    Example:
        >>> record = VisualizationDataRecord([0.8, -0.4], 0.75, "pos", "pos", "pos", 0.4,
        ...                                  ["<s>", "nice"], 0.0)
        >>> page = visualize_text([record])
        >>> "#s" in page.data and "Legend" in page.data
        True
    """
    records = list(datarecords)
    for record in records:
        if not isinstance(record, VisualizationDataRecord):
            raise TypeError(
                f"datarecords must hold VisualizationDataRecord; got {type(record).__name__}"
            )
    header = "<tr>" + "".join(f"<th>{name}</th>" for name in _HEADERS) + "</tr>"
    body = "".join(_row(record) for record in records)
    page = f'<table style="width: 100%">{header}{body}</table>'
    if legend:
        page += _legend()
    return _publish(page)


def _publish(page: str) -> Any:
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return HTMLText(page)
    document = HTML(page)
    if get_ipython() is not None:
        display(document)
    return document
