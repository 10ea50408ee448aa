"""``perspicio explain``: attribute a saved model's predictions from the command line.

    perspicio explain --model model.pt --input x.safetensors --method IntegratedGradients \\
        --target 3 --out result.safetensors [--args '{"n_steps": 64}'] [--picture p.png]

The model is TorchScript (``torch.jit.save``), an exported program (``torch.export.save``,
``.pt2``), or a state dict (safetensors, or a torch file read with ``weights_only=True``)
with ``--model-class package.module:Class`` (and ``--model-kwargs`` JSON) to build it. The
inputs are a safetensors file (key ``inputs``, or its only tensor), a ``.npy`` array (read
without pickle) or a torch tensor file. The result is an :class:`~perspicio.result.Explanation`
file (the attributions, the inputs, the scores and the arguments), and a picture: a heat map
for images, bars for anything else. The numbers are those of the Python API.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.validate import ArgumentError


def add_parser(commands: Any) -> None:
    """Register the ``explain`` subcommand."""
    p = commands.add_parser("explain", help="attribute a saved model's predictions to its inputs")
    p.add_argument("--model", required=True, help="TorchScript, .pt2 export, or a state dict")
    p.add_argument("--model-class", help="package.module:Class building the model (state dicts)")
    p.add_argument("--model-kwargs", default="{}", help="JSON keyword arguments for the class")
    p.add_argument("--input", required=True, help=".safetensors, .npy or torch tensor file")
    p.add_argument("--method", required=True, help="a class of perspicio.attr, e.g. Saliency")
    p.add_argument("--layer", help="module name, for Layer methods (e.g. features.3)")
    p.add_argument("--target", help="an int, or 'predicted' (default: none)")
    p.add_argument("--args", default="{}", help="JSON keyword arguments for attribute()")
    p.add_argument("--out", required=True, help="the result file (.safetensors)")
    p.add_argument("--picture", help="where to draw the picture (default: OUT with .png)")


def run(args: argparse.Namespace) -> int:
    """Run ``perspicio explain``; returns the exit status."""
    from perspicio.result import Explanation

    model = load_model(args.model, args.model_class, _json(args.model_kwargs, "--model-kwargs"))
    inputs = load_inputs(args.input)
    method = build_method(args.method, model, args.layer)
    kwargs = _json(args.args, "--args")
    target = _target(args.target, model, inputs)
    if target is not None:
        kwargs["target"] = target
    result = Explanation.of(method, inputs, **kwargs)
    result.save(args.out)
    picture = args.picture or str(Path(args.out).with_suffix(".png"))
    draw(result, picture)
    print(f"wrote {args.out} and {picture}")
    return 0


def load_model(path: str, model_class: str | None, model_kwargs: dict[str, Any]) -> nn.Module:
    """A model from a TorchScript file, an exported program, or a state dict and its class."""
    if not Path(path).exists():
        raise ArgumentError(f"--model {path!r} does not exist")
    if model_class is not None:
        module_name, _, cls_name = model_class.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError) as e:
            raise ArgumentError(f"--model-class {model_class!r} cannot be imported: {e}") from None
        model = cls(**model_kwargs)
        model.load_state_dict(_state_dict(path))
        return model.eval()
    if path.endswith(".pt2"):
        return torch.export.load(path).module()
    try:
        return torch.jit.load(path, map_location="cpu")
    except RuntimeError:
        raise ArgumentError(
            f"--model {path!r} is not TorchScript or a .pt2 export; for a state dict give "
            "--model-class package.module:Class"
        ) from None


def _state_dict(path: str) -> dict[str, Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ArgumentError(f"--model {path!r} does not hold a state dict")
    return state


def load_inputs(path: str) -> Tensor:
    """The input batch from a safetensors, ``.npy`` or torch tensor file (never unpickled)."""
    if not Path(path).exists():
        raise ArgumentError(f"--input {path!r} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        tensors = load_file(path)
        if "inputs" in tensors:
            return tensors["inputs"]
        if len(tensors) != 1:
            raise ArgumentError(f"--input {path!r} needs a tensor named 'inputs' or exactly one")
        return next(iter(tensors.values()))
    if path.endswith(".npy"):
        import numpy as np

        return torch.from_numpy(np.load(path, allow_pickle=False))
    value = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(value, Tensor):
        raise ArgumentError(f"--input {path!r} does not hold a tensor")
    return value


def build_method(name: str, model: nn.Module, layer: str | None) -> Any:
    """An instance of the named ``perspicio.attr`` class on ``model`` (and ``layer``)."""
    import perspicio.attr as attr

    cls = getattr(attr, name, None)
    if not isinstance(cls, type) or not hasattr(cls, "attribute"):
        raise ArgumentError(f"--method {name!r} is not an attribution class of perspicio.attr")
    if name.startswith(("Layer", "Neuron")) or name == "GuidedGradCam":
        if layer is None:
            raise ArgumentError(f"--method {name} needs --layer (a module name of the model)")
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ArgumentError(f"--layer {layer!r} is not a module of the model")
        return cls(model, modules[layer])
    return cls(model)


def _target(value: str | None, model: nn.Module, inputs: Tensor) -> Any:
    if value is None:
        return None
    if value == "predicted":
        with torch.no_grad():
            return model(inputs).argmax(-1)
    try:
        return int(value)
    except ValueError:
        raise ArgumentError(f"--target must be an int or 'predicted', got {value!r}") from None


def _json(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ArgumentError(f"{flag} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ArgumentError(f"{flag} must be a JSON object, got {text!r}")
    return value


def draw(result: Any, path: str) -> None:
    """A heat map of the first example for image inputs, bars of the top features otherwise."""
    if result.values[0].dim() == 4 and result.values[0].shape[1] in (1, 3):
        figure, _ = result.plot_image(0, title=result.method)
    else:
        figure = result.plot_bar(k=min(20, result.n_features)).figure
    figure.savefig(path, bbox_inches="tight")
