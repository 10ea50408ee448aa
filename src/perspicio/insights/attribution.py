"""Calling a registered attribution method on one example, whatever its family."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from perspicio.insights.methods import REGISTRY, ArgumentError, MethodSpec, resolve_class
from perspicio.insights.plan import feature_masks, occlusion_window

Tensors = tuple[Tensor, ...]


class MethodNotApplicable(ValueError):
    """The chosen method cannot explain this model or these inputs (a 4xx, not a crash)."""


def last_convolution(model: nn.Module) -> nn.Module:
    """The model's last convolution module (where Grad-CAM looks)."""
    found = None
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            found = module
    if found is None:
        raise MethodNotApplicable("this method needs a convolution layer and the model has none")
    return found


def _lrp_problem(model: nn.Module) -> str | None:
    from perspicio.lrp import lrp_rules

    try:
        lrp_rules(model)
    except TypeError as exc:
        return str(exc).split(":")[0]
    return None


def not_applicable(spec: MethodSpec, model: nn.Module, inputs: Tensors | None) -> str | None:
    """Why ``spec`` cannot explain ``model`` on inputs like ``inputs``, or ``None`` if it can."""
    if spec.kind == "tunnel":
        return None  # decided by the base method at run time
    if spec.gradient and inputs is not None:
        ints = [i for i, x in enumerate(inputs) if not (x.is_floating_point() or x.is_complex())]
        if ints:
            return (
                f"input {ints[0]} is an integer tensor (token ids?) and has no gradient: give its "
                "feature an input transform that embeds it (e.g. an nn.Embedding), or use a "
                "perturbation method"
            )
    if spec.kind in ("layer", "guided_layer"):
        try:
            last_convolution(model)
        except MethodNotApplicable:
            return "the model has no convolution layer (Grad-CAM looks at the last one)"
    if spec.name == "LRP":
        return _lrp_problem(model)
    return None


def _occlusion_kwargs(inputs: Tensors, args: dict[str, Any]) -> dict[str, Any]:
    windows = args.pop("sliding_window_shapes")
    strides = args.pop("strides")
    for name, value in (("sliding_window_shapes", windows), ("strides", strides)):
        if value is not None:
            bad = [i for i, x in enumerate(inputs) if x.dim() - 1 != len(value)]
            if bad:
                ranks = [x.dim() - 1 for x in inputs]
                raise ArgumentError(
                    f"Occlusion: {name} {list(value)} needs one entry per input dimension "
                    f"(inputs have {ranks} dimensions after the batch)"
                )
    defaults = [occlusion_window(x) for x in inputs]
    return {
        "sliding_window_shapes": tuple(
            tuple(windows) if windows is not None else w for w, _ in defaults
        ),
        # explicit per-input strides, the form every implementation accepts
        "strides": tuple(tuple(strides) if strides is not None else s for _, s in defaults),
    }


def method_kwargs(spec: MethodSpec, arguments: Mapping[str, Any], inputs: Tensors) -> dict:
    """The keyword arguments of ``attribute`` for validated interface ``arguments``.

    Occlusion windows and strides get their defaults, and the feature grouping of
    perturbation methods becomes a ``feature_mask``.
    """
    args = dict(arguments)
    if spec.name == "Occlusion":
        args.update(_occlusion_kwargs(inputs, args))
    if "feature_grouping" in args:
        grouping, size = args.pop("feature_grouping"), args.pop("patch_size")
        args["feature_mask"] = feature_masks(inputs, grouping, size)
    return args


def _upsample(attr: Tensor, like: Tensor) -> Tensor:
    """A layer map ``(1, k, *spatial)`` resized to ``like``'s spatial size and channel count."""
    spatial = like.shape[2:]
    if attr.dim() != like.dim() or not spatial:
        raise MethodNotApplicable(
            f"cannot map a layer attribution of shape {tuple(attr.shape)} "
            f"onto an input of shape {tuple(like.shape)}"
        )
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(len(spatial), "nearest")
    resized = nn.functional.interpolate(attr.sum(1, keepdim=True), size=tuple(spatial), mode=mode)
    return resized.expand(like.shape[0], like.shape[1], *spatial)


def _attribute_layer(
    spec: MethodSpec, model: nn.Module, inputs: Tensors, common: dict[str, Any], args: dict
) -> Tensors:
    cls = _require(spec.name)
    layer = last_convolution(model)
    if spec.kind == "guided_layer":
        out = _as_tuple(cls(model, layer).attribute(inputs, **common, **args))
        # inputs the layer's map cannot be upsampled to come back empty: nothing attributed
        return tuple(a if a.shape == x.shape else torch.zeros_like(x) for a, x in zip(out, inputs))
    images = [i for i, x in enumerate(inputs) if x.dim() >= 3]
    if len(images) != 1:
        raise MethodNotApplicable(
            f"{spec.name} needs exactly one image-like input, got {len(images)} of {len(inputs)}"
        )
    attr = cls(model, layer).attribute(inputs, **common, **args)
    attr = attr[0] if isinstance(attr, tuple) else attr
    full = _upsample(attr.detach(), inputs[images[0]])
    return tuple(full if i == images[0] else torch.zeros_like(x) for i, x in enumerate(inputs))


def _require(name: str) -> type:
    cls = resolve_class(name)
    if cls is None:
        raise ArgumentError(f"method {name!r} is not available in perspicio.attr")
    return cls


def _as_tuple(result: Any) -> Tensors:
    if isinstance(result, tuple):
        return tuple(result)
    return (result,)


def _tunnel(
    model: nn.Module, inputs: Tensors, common: dict, args: dict, baselines: Tensors | None
) -> Tensors:
    base_name = args.pop("base")
    base_spec = REGISTRY[base_name]
    base = _require(base_name)(model)
    kwargs = {k: v for k, v in args.items() if v is not None}
    if base_spec.baselines == "one" and baselines is not None:
        kwargs["baselines"] = tuple(b[:1] for b in baselines)
    return _as_tuple(_require("NoiseTunnel")(base).attribute(inputs, **common, **kwargs))


def run_method(
    spec: MethodSpec,
    arguments: Mapping[str, Any],
    model: nn.Module,
    inputs: Tensors,
    baselines: Tensors | None,
    target: int,
    additional_args: tuple[Any, ...] | None,
) -> Tensors:
    """Attributions of ``model`` at ``target`` for one example, one tensor per input.

    Args:
        spec: The registered method.
        arguments: Validated arguments (see :meth:`MethodSpec.validate`).
        model: The model to explain.
        inputs: The model inputs (after input transforms), batch size 1.
        baselines: Per input, the baselines stacked along dimension 0 (one per baseline
            transform), or ``None`` for the method's default.
        target: The output index to explain.
        additional_args: Extra forward arguments, or ``None``.
    """
    args = method_kwargs(spec, arguments, inputs)
    common: dict[str, Any] = {"target": target, "additional_forward_args": additional_args}
    if spec.kind == "tunnel":
        return _tunnel(model, inputs, common, args, baselines)
    if spec.kind in ("layer", "guided_layer"):
        return _attribute_layer(spec, model, inputs, common, args)
    kwargs = {k: v for k, v in args.items() if v is not None}
    if spec.baselines == "one" and baselines is not None:
        kwargs["baselines"] = tuple(b[:1] for b in baselines)
    elif spec.baselines == "distribution":
        if baselines is None:
            baselines = tuple(torch.zeros_like(x) for x in inputs)
        # a distribution of one is repeated: some estimators insist on two or more
        kwargs["baselines"] = tuple(b if b.shape[0] > 1 else torch.cat([b, b]) for b in baselines)
    result = _require(spec.name)(model).attribute(inputs, **common, **kwargs)
    out = _as_tuple(result)
    shapes = [tuple(t.shape) for t in out]
    if shapes != [tuple(x.shape) for x in inputs]:
        raise MethodNotApplicable(f"{spec.name} returned attributions of shapes {shapes}")
    return tuple(t.detach() for t in out)
