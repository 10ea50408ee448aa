"""Interpretable inputs: model inputs for perturbed features, formatting, bad input."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from perspicio import ArgumentError
from perspicio.attr import ImageMaskInput, ProductBaselines, TextTemplateInput, TextTokenInput
from perspicio.testing.llm import WordTokenizer

TOK = WordTokenizer(["<unk>", "<s>", "the", "cat", "sat", "on", "mat"], bos_token="<s>")


@pytest.mark.parametrize(
    ("present", "want"),
    [
        ([1, 1, 1, 1], [1, 2, 3, 4, 2]),
        ([0, 1, 1, 0], [1, 0, 3, 4, 0]),
        ([0, 0, 0, 0], [1, 0, 0, 0, 0]),
    ],
)
def test_token_input_with_skipped_tokens(present: list[int], want: list[int]) -> None:
    inp = TextTokenInput("the cat sat the", TOK, skip_tokens=["<s>"])
    assert inp.values == ["the", "cat", "sat", "the"] and inp.n_itp_features == 4
    assert inp.to_model_input(torch.tensor([present])).tolist() == [want]
    stacked = inp.to_model_input(torch.tensor([present, [1, 1, 1, 1]]))
    assert stacked.tolist() == [want, [1, 2, 3, 4, 2]]


def test_token_input_baseline_and_ids() -> None:
    inp = TextTokenInput("the cat", TOK, baselines="mat", skip_tokens=[1])
    assert inp.to_model_input(torch.tensor([[0, 1]])).tolist() == [[1, 6, 3]]


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"skip_tokens": ["dog"]}, "'dog' is not in the tokenizer's vocabulary"),
        ({"skip_tokens": [99]}, "99 is not a token id"),
        ({"baselines": "dog"}, "baselines entry 'dog'"),
    ],
)
def test_token_input_bad_tokens(kw: dict[str, Any], msg: str) -> None:
    with pytest.raises(ArgumentError, match=msg):
        TextTokenInput("the cat", TOK, **kw)


def test_template_input_mask_and_dicts() -> None:
    inp = TextTemplateInput(
        "{a} {b} on {c}", {"a": "the", "b": "cat", "c": "mat"},
        baselines={"a": "a", "b": "dog", "c": "rug"}, mask={"a": 5, "b": 5, "c": 2},
    )  # fmt: skip
    assert inp.n_itp_features == 2
    assert inp.to_model_input(torch.tensor([[1, 0]])) == "a dog on mat"
    assert inp.to_model_input(torch.tensor([[0, 1]])) == "the cat on rug"
    attr = inp.format_attr(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert attr.tolist() == [[2.0, 2.0, 1.0], [4.0, 4.0, 3.0]]


def test_template_callable_and_product_baselines() -> None:
    random.seed(0)
    pb = ProductBaselines([["x", "y"], ["z"]])
    inp = TextTemplateInput(lambda a, b: f"{a}-{b}", ["p", "q"], baselines=pb)
    seen = {inp.to_model_input(torch.tensor([[0, 0]])) for _ in range(20)}
    assert seen == {"x-z", "y-z"}
    assert ProductBaselines({("a", "b"): [(1, 2)]})() == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("template", "values", "msg"),
    [
        ("{} and {}", ["a"], "2 positional slots but 1 values"),
        ("{} and", ["a", "b"], "1 positional slots but 2 values"),
        ("{x} and {y}", {"x": "a", "z": "b"}, r"slots without a value \['y'\]"),
        ("{x}", ["a"], "named slots"),
    ],
)
def test_template_slots_must_match(template: str, values: Any, msg: str) -> None:
    with pytest.raises(ArgumentError, match=msg):
        TextTemplateInput(template, values)


def test_template_bad_baselines_and_mask() -> None:
    with pytest.raises(ArgumentError, match="baselines must give one entry per value"):
        TextTemplateInput("{} {}", ["a", "b"], baselines=["x"])
    with pytest.raises(ArgumentError, match="mask must be a dict"):
        TextTemplateInput("{x}", {"x": "a"}, mask=[0])
    with pytest.raises(TypeError, match="values must be a list or a dict"):
        TextTemplateInput("{}", "a")  # type: ignore[arg-type]


def test_image_mask_input() -> None:
    pil = pytest.importorskip("PIL.Image")
    image = pil.fromarray((torch.zeros(4, 6, 3, dtype=torch.uint8) + 10).numpy())
    mask = torch.zeros(4, 6, dtype=torch.int32)
    mask[:, 3:] = 7
    inp = ImageMaskInput(image, mask=mask, processor_fn=lambda im: torch.tensor(list(im.getdata())))
    assert inp.values == ["image_feature_0", "image_feature_7"]
    pixels = inp.to_model_input(torch.tensor([[1, 0]])).view(4, 6, 3)
    assert (pixels[:, :3] == 10).all() and (pixels[:, 3:] == 255).all()
    heat = inp.format_pixel_attr(torch.tensor([[1.0, -2.0]]))
    assert heat.shape == (1, 4, 6) and heat[0, 0, 0] == 1 and heat[0, 0, 5] == -2
    overlap = ImageMaskInput(image, mask_list=[mask == 0, torch.ones(4, 6, dtype=torch.bool)])
    assert overlap.format_pixel_attr(torch.tensor([1.0, 2.0]))[0, 0] == 3
    with pytest.raises(ArgumentError, match="mask has shape"):
        ImageMaskInput(image, mask=torch.zeros(3, 3))
