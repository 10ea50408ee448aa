"""LLMAttributionResult: validation, dict view and plots (also the image path end to end)."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from perspicio import ArgumentError
from perspicio.attr import FeatureAblation, ImageMaskInput, LLMAttribution, LLMAttributionResult
from tests.llm import tiny

matplotlib.use("Agg")


def test_validation_and_dict() -> None:
    res = LLMAttributionResult(
        input_tokens=["a", "b"], output_tokens=["c", "d"], seq_attr=[1.0, 2.0],
        token_attr=torch.ones(2, 2), output_probs=[0.5, 0.25],
    )  # fmt: skip
    assert res.seq_attr_dict == {"a": 1.0, "b": 2.0}
    res.plot_token_attr()
    res.plot_seq_attr()
    with pytest.raises(ArgumentError, match="token_attr must have shape"):
        LLMAttributionResult(
            input_tokens=["a"], output_tokens=["c"], seq_attr=[1.0], token_attr=[[1.0, 2.0]]
        )
    with pytest.raises(ArgumentError, match="seq_attr has 2 entries"):
        LLMAttributionResult(input_tokens=["a"], output_tokens=[], seq_attr=[1.0, 2.0])
    empty = LLMAttributionResult(input_tokens=["a"], output_tokens=["c"], seq_attr=[1.0])
    with pytest.raises(ArgumentError, match="plot_seq_attr"):
        empty.plot_token_attr()
    with pytest.raises(ArgumentError, match="ImageMaskInput"):
        empty.plot_image_heatmap()


def test_image_input_end_to_end() -> None:
    """A 'multimodal' prompt: each image half becomes a word, the rest is text."""
    pil = pytest.importorskip("PIL.Image")
    tok, model = tiny.tokenizer(), tiny.model("gpt2")
    image = pil.fromarray(torch.zeros(4, 6, 3, dtype=torch.uint8).numpy())
    mask = torch.zeros(4, 6, dtype=torch.int32)
    mask[:, 3:] = 1

    def processor(im: object) -> dict[str, torch.Tensor]:
        px = torch.tensor(list(im.getdata())).view(4, 6, 3)  # type: ignore[attr-defined]
        words = [
            "cat" if px[:, :3].sum() == 0 else "dog",
            "red" if px[:, 3:].sum() == 0 else "blue",
        ]
        return {"input_ids": tok.encode(" ".join(["the", *words, "sat"]), return_tensors="pt")}

    inp = ImageMaskInput(image, mask=mask, processor_fn=processor)
    res = LLMAttribution(FeatureAblation(model), tok).attribute(inp, target="on the mat")
    llm_text = LLMAttribution(FeatureAblation(model), tok)
    lp = llm_text._log_probs  # the same scorer, on the text prompts directly
    prompts = ["the cat red sat", "the dog red sat", "the cat blue sat"]
    ids = [tok.encode(p, return_tensors="pt") for p in prompts]
    job = llm_text._job(inp, "on the mat", None, None)
    seq = lp(ids, job.targets[0], job).sum(1)
    torch.testing.assert_close(res.seq_attr, torch.stack([seq[0] - seq[1], seq[0] - seq[2]]))
    res.plot_image_heatmap()
    res.plot_image_heatmap(target_token_pos=[0, 1], border_width=1)
    inp.plot_mask_overlay(border_width=1)
    with pytest.raises(ArgumentError, match="target_token_pos 5"):
        res.plot_image_heatmap(target_token_pos=5)
