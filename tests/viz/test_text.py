"""Text attribution HTML, checked by parsing it with the standard library."""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from perspicio.viz import (
    HTMLText,
    VisualizationDataRecord,
    format_classname,
    format_special_tokens,
    format_tooltip,
    format_word_importances,
    token_color,
    visualize_text,
)

HSL = re.compile(r"hsl\((\d+), (\d+)%, (\d+)%\)")


class _Page(HTMLParser):
    """Collects tags, header cells, body cells and the shaded tokens of a page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.headers: list[str] = []
        self.cells: list[str] = []
        self.marks: list[tuple[str, str]] = []  # (style, text)
        self._open: list[tuple[str, dict[str, str | None]]] = []
        self._text: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._open.append((tag, dict(attrs)))
        if tag in ("th", "td", "mark"):
            self._text = []

    def handle_endtag(self, tag):
        opened, attrs = self._open.pop()
        assert opened == tag, f"</{tag}> closes <{opened}>"
        text = "".join(self._text).strip()
        if tag == "th":
            self.headers.append(text)
        elif tag == "td":
            self.cells.append(text)
        elif tag == "mark":
            self.marks.append((attrs.get("style") or "", text))
            self._text = []

    def handle_data(self, data):
        self._text.append(data)


def _record(tokens, attributions, true_class="pos", pred_class="pos") -> VisualizationDataRecord:
    return VisualizationDataRecord(
        attributions, 0.875, pred_class, true_class, "pos", 1.234, tokens, 0.01
    )


def _hsl(style: str) -> tuple[int, int, int]:
    match = HSL.search(style)
    assert match, style
    hue, sat, light = (int(g) for g in match.groups())
    return hue, sat, light


def test_script_tokens_are_text_not_markup():
    tokens = ["<script>alert(1)</script>", "a<b>c", "&amp;", '"quoted"']
    page = _Page(visualize_text([_record(tokens, [0.1, 0.2, 0.3, 0.4])], legend=False).data)
    assert "script" not in page.tags and "b" not in page.tags[page.tags.index("mark") :]
    texts = [text for _, text in page.marks]
    assert texts == ["#script>alert(1)</script", "a<b>c", "&amp;", '"quoted"']


def test_labels_and_class_names_are_escaped():
    record = _record(["x"], [0.5], true_class="<img src=x onerror=alert(1)>", pred_class="<i>")
    page = _Page(visualize_text([record]).data)
    assert "img" not in page.tags and "i" not in page.tags
    assert page.cells[0] == "<img src=x onerror=alert(1)>"
    assert page.cells[1] == "<i> (0.88)"


def test_one_coloured_mark_per_token_with_direction():
    attributions = [0.9, 0.3, 0.0, -0.3, -0.9, 5.0]
    tokens = ["great", "good", "the", "bad", "awful", "huge"]
    page = _Page(visualize_text([_record(tokens, torch.tensor(attributions))], legend=False).data)
    assert [text for _, text in page.marks] == tokens
    assert all(style.startswith("background-color: hsl(") for style, _ in page.marks)
    colours = [_hsl(style) for style, _ in page.marks]
    hues = [hue for hue, _, _ in colours]
    lights = [light for _, _, light in colours]
    assert hues[:2] == [120, 120] and hues[3:5] == [0, 0] and hues[5] == 120
    assert lights[2] == 100  # zero is white
    assert lights[0] < lights[1] < 100 and lights[4] < lights[3] < 100
    assert lights[5] == _hsl(token_color(1.0))[2] < lights[0]  # clipped at full strength


def test_label_row_and_legend():
    records = [_record(["a", "b"], [0.1, -0.1]), _record(["c"], [0.5])]
    page = _Page(visualize_text(records).data)
    assert page.headers == [
        "True Label",
        "Predicted Label",
        "Attribution Label",
        "Attribution Score",
        "Word Importance",
    ]
    assert page.cells[:4] == ["pos", "pos (0.88)", "pos", "1.23"]
    assert page.tags.count("tr") == 3
    assert "Legend" in visualize_text(records).data
    assert "Legend" not in visualize_text(records, legend=False).data


def test_returns_ipython_html_when_available(capsys):
    pytest.importorskip("IPython")
    page = visualize_text([_record(["a"], [1.0])])
    assert type(page).__name__ == "HTML" and page.data.startswith("<table")
    assert capsys.readouterr().out == ""  # not displayed outside an IPython shell


def test_fallback_without_ipython(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    page = visualize_text([_record(["<s>", "hi"], np.array([0.2, -0.2]))])
    assert isinstance(page, HTMLText)
    assert str(page) == page.data == page._repr_html_()
    target = tmp_path / "attr.html"
    target.write_text(str(page), encoding="utf-8")
    assert [text for _, text in _Page(target.read_text(encoding="utf-8")).marks] == ["#s", "hi"]


def test_format_helpers():
    assert format_special_tokens("</s>") == "#/s"
    assert format_special_tokens("<3 you") == "<3 you"
    assert _Page(format_classname("<cls>")).cells == ["<cls>"]
    tooltip = _Page(format_tooltip("<x>", "a & b"))
    assert "x" not in tooltip.tags
    assert format_word_importances(["a"], None) == "<td></td>"
    assert format_word_importances(["a"], []) == "<td></td>"
    assert len(_Page(format_word_importances(["a"], [0.1, 0.2])).marks) == 1
    assert token_color(float("nan")) == "hsl(0, 70%, 100%)"


@pytest.mark.parametrize(
    ("words", "importances", "error", "message"),
    [
        (["a", "b"], [0.1], ValueError, "2 words, 1 attributions"),
        (["a"], np.ones((1, 2)), ValueError, "must be 1D"),
        (["a"], ["x"], TypeError, "word_attributions must hold numbers"),
    ],
)
def test_format_word_importances_bad_input(words, importances, error, message):
    with pytest.raises(error, match=message):
        format_word_importances(words, importances)


def test_visualize_text_rejects_other_objects():
    with pytest.raises(TypeError, match="VisualizationDataRecord; got dict"):
        visualize_text([{"word_attributions": [1.0]}])  # type: ignore[list-item]


def test_record_fields():
    record = _record(["a"], [0.5])
    assert record.convergence_score == 0.01 and "raw_input_ids=['a']" in repr(record)
    with pytest.raises(AttributeError):
        record.extra = 1  # type: ignore[attr-defined]
