"""Dict batches through unpack_batch; Layer methods built without a layer."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio import ArgumentError
from perspicio._core.forward import unpack_batch
from perspicio.attr import LayerGradientXActivation
from perspicio.testing import ReLUMLP


class Output:
    def __init__(self, logits: Tensor) -> None:
        self.logits = logits


class Keyword(nn.Module):
    def forward(self, input_ids: Tensor, scale: Tensor, note: str = "") -> Any:
        assert note == "kept"
        return Output(input_ids.float() * scale)


def test_dict_batch_becomes_positional() -> None:
    batch = {"input_ids": torch.tensor([[1, 2]]), "scale": torch.tensor([[3.0]]), "note": "kept"}
    forward, inputs = unpack_batch(Keyword(), batch)
    assert len(inputs) == 2 and inputs[0] is batch["input_ids"]
    torch.testing.assert_close(forward(*inputs), torch.tensor([[3.0, 6.0]]))
    with pytest.raises(ArgumentError, match="additional_forward_args"):
        forward(*inputs, torch.ones(1))
    with pytest.raises(ArgumentError, match="without tensor values"):
        unpack_batch(Keyword(), {"note": "kept"})


def test_tensor_batch_passes_through_and_logits_are_taken() -> None:
    model = nn.Linear(2, 2)
    x = torch.randn(3, 2)
    forward, inputs = unpack_batch(model, x)
    assert inputs is x
    torch.testing.assert_close(forward(x), model(x))
    forward, _ = unpack_batch(lambda t: Output(t * 2), x)
    torch.testing.assert_close(forward(x), x * 2)


def test_layer_method_without_a_layer() -> None:
    model = ReLUMLP()
    method = LayerGradientXActivation(model, None)
    with pytest.raises(ArgumentError, match="has no layer"):
        method.attribute(torch.randn(2, 6), target=0)
    method.layer = model.fc1
    assert method.attribute(torch.randn(2, 6), target=0).shape == (2, 8)
