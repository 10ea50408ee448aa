"""TCAV: how much a class's prediction moves along a concept's direction in a layer.

Kim et al. (2018), "Interpretability Beyond Feature Attribution: Quantitative Testing with
Concept Activation Vectors (TCAV)", https://arxiv.org/abs/1711.11279.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.call import build_call
from perspicio._core.forward import unpack_batch
from perspicio._core.sites import LayerSite
from perspicio._core.validate import ArgumentError
from perspicio.attr import LayerGradientXActivation
from perspicio.concept import store
from perspicio.concept.cav import CAV, cav_weights
from perspicio.concept.classifier import Classifier, DefaultClassifier
from perspicio.concept.concept import Concept, ConceptInterpreter, concepts_to_str

Scores = dict[str, dict[str, dict[str, Tensor]]]


class TCAV(ConceptInterpreter):
    """Testing with Concept Activation Vectors (Kim et al., 2018).

    For each experimental set (a list of concepts) and layer, a linear classifier separates
    the concepts' activations; its weight rows are the CAVs. The TCAV score of a concept is
    the share of inputs whose layer attribution (by default the gradient of the target
    w.r.t. the layer) has a positive dot product with the concept's CAV (``sign_count``),
    and the mean of those dot products (``magnitude``). Activations and CAVs are cached in
    ``save_path/model_id`` as safetensors files and reused by later calls.

    Layers are given by name (as in Captum) or as modules of ``model``; inputs and concept
    batches may be tensors, tuples of tensors or dict batches (``model(**batch)``, a Hugging
    Face ``ModelOutput``'s logits are used). ``pooling`` (keyword only) says how an
    activation becomes a vector, see :mod:`perspicio.concept.store`: ``"mean"`` for
    variable-length text. Classifier keyword arguments (e.g. ``test_split_ratio``) go to
    ``classifier.train_and_eval``. CAVs are trained in this process (``processes`` is
    accepted for compatibility; the torch classifiers fit a set in milliseconds).

    Example:
        >>> import tempfile, torch
        >>> from perspicio.concept import TCAV, Concept
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> g = torch.Generator().manual_seed(0)
        >>> bright = Concept(0, "bright", [torch.rand(8, 1, 8, 8, generator=g) + 1])
        >>> dark = Concept(1, "dark", [torch.rand(8, 1, 8, 8, generator=g)])
        >>> tcav = TCAV(model, ["conv2"], save_path=tempfile.mkdtemp())
        >>> scores = tcav.interpret(torch.rand(4, 1, 8, 8), [[bright, dark]], target=0)
        >>> sorted(scores["0-1"]["conv2"])
        ['magnitude', 'sign_count']
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | nn.Module | Sequence[str | nn.Module],
        model_id: str = "default_model_id",
        classifier: Classifier | None = None,
        layer_attr_method: Any = None,
        attribute_to_layer_input: bool = False,
        save_path: str = "./cav/",
        *,
        pooling: store.Pooling = "flatten",
        **classifier_kwargs: Any,
    ) -> None:
        ConceptInterpreter.__init__(self, model)
        if not isinstance(model_id, str) or not model_id or "/" in model_id:
            raise ArgumentError(f"model_id must be a non-empty name, got {model_id!r}")
        if classifier is not None and not isinstance(classifier, Classifier):
            raise TypeError(f"classifier must be a Classifier, got {type(classifier).__name__}")
        store.check_pooling(pooling)
        self._modules = _resolve_layers(model, layers)
        self.layers: list[str] = list(self._modules)
        self.model_id = model_id
        self.classifier: Classifier = DefaultClassifier() if classifier is None else classifier
        self.classifier_kwargs = classifier_kwargs
        self._default_method = layer_attr_method is None
        self.layer_attr_method = layer_attr_method or LayerGradientXActivation(
            model, list(self._modules.values()), multiply_by_inputs=False
        )
        self.attribute_to_layer_input = attribute_to_layer_input
        self.save_path = save_path
        self.pooling = pooling
        self.concepts: set[Concept] = set()
        self.cavs: dict[str, dict[str, CAV]] = {}
        CAV.create_cav_dir_if_missing(save_path, model_id)

    def _how(self, layer: str) -> dict[str, Any]:
        """How activations at ``layer`` are taken (stored with them and checked on reuse)."""
        return {
            "layer": layer,
            "pooling": store.pooling_name(self.pooling),
            "attribute_to_layer_input": self.attribute_to_layer_input,
        }

    def _av_path(self, concept: Concept, layer: str) -> str:
        return store.av_path(self.save_path, self.model_id, concept.identifier, layer)

    def generate_activation(self, layers: str | Sequence[str], concept: Concept) -> None:
        """Compute and store ``concept``'s pooled activations at ``layers`` (one forward each)."""
        names = [layers] if isinstance(layers, str) else list(layers)
        if not names:
            raise ArgumentError("generate_activation needs at least one layer, got none")
        modules = [self._module(name) for name in names]
        if concept.data_iter is None:
            raise ArgumentError(
                f"concept {concept.identifier} has no data_iter to take examples from"
            )
        site = LayerSite(tuple(modules), self.attribute_to_layer_input)
        rows: list[list[Tensor]] = [[] for _ in names]
        for i, batch in enumerate(concept.data_iter):
            forward, inputs = unpack_batch(self.model, batch, f"concept {concept.identifier}")
            probe = site.probe(forward, build_call(inputs))
            for name, kept, group in zip(names, rows, probe.split(probe.values)):
                pooled = torch.cat([store.pool(t, self.pooling, _mask(batch)) for t in group], 1)
                if kept and pooled.shape[1] != kept[0].shape[1]:
                    raise ArgumentError(
                        f"layer {name!r} gave {kept[0].shape[1]} features per example for the "
                        f"first batch of concept {concept.identifier} and {pooled.shape[1]} for "
                        f"batch {i} (variable-length inputs?): use TCAV(..., pooling='mean')"
                    )
                kept.append(pooled.detach())
        if not rows[0] or sum(len(r) for r in rows[0]) == 0:
            raise ArgumentError(f"concept {concept.identifier} has no examples")
        for name, kept in zip(names, rows):
            how = self._how(name)
            store.write(self._av_path(concept, name), {"activations": torch.cat(kept)}, how)

    def generate_activations(self, concept_layers: Mapping[Concept, Sequence[str]]) -> None:
        """:meth:`generate_activation` for each concept and its layers."""
        for concept, layers in concept_layers.items():
            self.generate_activation(layers, concept)

    def generate_all_activations(self) -> None:
        """:meth:`generate_activation` for every concept seen so far, at every layer."""
        for concept in self.concepts:
            self.generate_activation(self.layers, concept)

    def load_cavs(self, concepts: list[Concept]) -> tuple[list[str], dict[Concept, list[str]]]:
        """Load the stored CAVs of ``concepts``; say what is missing.

        Returns:
            The layers without a usable CAV, and for each concept the layers at which its
            activations are not stored yet.
        """
        key = concepts_to_str(concepts)
        layers: list[str] = []
        concept_layers: dict[Concept, list[str]] = {}
        for layer in self.layers:
            cav = CAV.load(self.save_path, self.model_id, concepts, layer)
            if cav is not None and _made_as(cav, self._how(layer)):
                self.cavs.setdefault(key, {})[layer] = cav
                continue
            layers.append(layer)
            for concept in concepts:
                path = self._av_path(concept, layer)
                if store.load_activations(path, self._how(layer)) is None:
                    concept_layers.setdefault(concept, []).append(layer)
        return layers, concept_layers

    def compute_cavs(
        self,
        experimental_sets: list[list[Concept]],
        force_train: bool = False,
        processes: int | None = None,
    ) -> dict[str, dict[str, CAV]]:
        """Train (or load from the cache) the CAVs of every experimental set at every layer.

        With ``force_train`` the activations are computed again and every CAV is retrained.
        """
        _check_sets(experimental_sets, self.concepts)
        _check_processes(processes)
        for concepts in experimental_sets:
            self.concepts.update(concepts)
        if force_train:
            self.generate_all_activations()
        to_train: dict[str, list[str]] = {}
        for concepts in experimental_sets:
            key = concepts_to_str(concepts)
            if force_train:
                to_train[key] = list(self.layers)
                continue
            layers, concept_layers = self.load_cavs(concepts)
            self.generate_activations(concept_layers)
            to_train[key] = layers
        for concepts in experimental_sets:
            for layer in to_train[concepts_to_str(concepts)]:
                self._train(concepts, layer)
        return self.cavs

    def _train(self, concepts: list[Concept], layer: str) -> None:
        data: list[tuple[Tensor, Tensor]] = []
        for concept in concepts:
            x = store.load_activations(self._av_path(concept, layer), self._how(layer))
            if x is None:  # stored in another way meanwhile: take them again
                self.generate_activation(layer, concept)
                x = store.load_activations(self._av_path(concept, layer), self._how(layer))
            assert x is not None
            if data and x.shape[1] != data[0][0].shape[1]:
                raise ArgumentError(
                    f"activations at layer {layer!r} have {data[0][0].shape[1]} features for "
                    f"concept {concepts[0].identifier} but {x.shape[1]} for "
                    f"{concept.identifier}: use TCAV(..., pooling='mean') for inputs of "
                    "different sizes"
                )
            data.append((x, torch.full((len(x),), concept.id, dtype=torch.long)))
        stats = self.classifier.train_and_eval(data, **self.classifier_kwargs) or {}
        weights, classes = self.classifier.weights(), self.classifier.classes()
        if weights is None or len(weights) == 0 or not len(classes):
            raise ArgumentError("the classifier gave no weights or no classes")
        stats = {**stats, "weights": torch.as_tensor(weights).detach().cpu()}
        stats.update(classes=[int(c) for c in classes], **self._how(layer))
        cav = CAV(concepts, layer, stats, self.save_path, self.model_id)
        cav.save()
        self.cavs.setdefault(concepts_to_str(concepts), {})[layer] = cav

    def interpret(
        self,
        inputs: Any,
        experimental_sets: list[list[Concept]],
        target: Any = None,
        additional_forward_args: Any = None,
        processes: int | None = None,
        **kwargs: Any,
    ) -> Scores:
        """TCAV scores of every concept of every experimental set, at every layer.

        Returns:
            ``{concepts key: {layer name: {"sign_count": (K,), "magnitude": (K,)}}}`` where
            the key is the set's concept ids joined by ``-`` and the K values follow the
            set's concept order. As in Captum, the keys come in order of set size (sets of
            equal size in the given order). Extra keyword arguments go to the layer
            attribution method.
        """
        if "attribute_to_layer_input" in kwargs:
            raise ArgumentError(
                "attribute_to_layer_input is a TCAV constructor argument (it applies to the "
                "activations and to the attributions alike), not an interpret argument"
            )
        forward, tensors = unpack_batch(self.model, inputs)
        build_call(tensors, target, additional_forward_args)  # checks before any work
        _check_sets(experimental_sets, self.concepts)
        self.compute_cavs(experimental_sets, processes=processes)
        kwargs = dict(
            target=target,
            additional_forward_args=additional_forward_args,
            attribute_to_layer_input=self.attribute_to_layer_input,
            **kwargs,
        )
        attribs = self._attributions(forward, tensors, _mask(inputs), kwargs)
        scores: Scores = {}
        for concepts in sorted(experimental_sets, key=len):  # Captum's key order
            key = concepts_to_str(concepts)
            for layer, a in attribs.items():
                scores.setdefault(key, {})[layer] = _score(a, self.cavs[key][layer], concepts)
        return scores

    def _attributions(
        self, forward: Any, inputs: Any, mask: Tensor | None, common: dict[str, Any]
    ) -> dict[str, Tensor]:
        """Each layer's attributions for the inputs, pooled to one row per example."""
        method = self.layer_attr_method
        per_layer: list[Any]
        if self._default_method:
            method = LayerGradientXActivation(
                forward, list(self._modules.values()), multiply_by_inputs=False
            )
            per_layer = method.attribute(inputs, **common)
        else:
            per_layer = []
            for module in self._modules.values():
                with _borrowed(method, module, forward):
                    per_layer.append(method.attribute(inputs, **common))
        out = {}
        for name, a in zip(self.layers, per_layer):
            group = a if isinstance(a, tuple | list) else (a,)
            pooled = [store.pool(t, self.pooling, mask, grads=True) for t in group]
            out[name] = torch.cat(pooled, 1)
        return out

    def _module(self, name: str) -> nn.Module:
        if name in self._modules:
            return self._modules[name]
        return _resolve_layers(self.model, [name])[name]


def _resolve_layers(model: nn.Module, layers: Any) -> dict[str, nn.Module]:
    """Layer names and modules, each checked to be part of ``model``, by name."""
    items = [layers] if isinstance(layers, str | nn.Module) else list(layers)
    if not items:
        raise ArgumentError("layers must name at least one layer, got an empty list")
    names = {id(m): n for n, m in model.named_modules()}
    out: dict[str, nn.Module] = {}
    for item in items:
        if isinstance(item, nn.Module):
            if id(item) not in names:
                raise ArgumentError(f"layer {type(item).__name__} is not a submodule of the model")
            out[names[id(item)]] = item
        elif isinstance(item, str):
            try:
                out[item] = model.get_submodule(item)
            except AttributeError:
                known = [n for n in names.values() if n][:10]
                raise ArgumentError(
                    f"layer {item!r} is not in the model; its layers include {known}"
                ) from None
        else:
            raise TypeError(f"layers must be names or modules, got {type(item).__name__}")
    return out


def _check_sets(experimental_sets: Any, seen: set[Concept]) -> None:
    if not isinstance(experimental_sets, list | tuple) or not experimental_sets:
        raise ArgumentError(
            f"experimental_sets must be a non-empty list of lists of concepts, got "
            f"{experimental_sets!r}"
        )
    by_id = {c.id: c for c in seen}
    for concepts in experimental_sets:
        if not isinstance(concepts, list | tuple) or len(concepts) < 2:
            raise ArgumentError(
                f"each experimental set needs at least two concepts, got {concepts!r}"
            )
        for c in concepts:
            if not isinstance(c, Concept):
                raise TypeError(f"experimental sets hold Concepts, got {type(c).__name__}")
            if by_id.setdefault(c.id, c) is not c:
                raise ArgumentError(
                    f"two different concepts have id {c.id} ({by_id[c.id]!r} and {c!r}): "
                    "reuse the same Concept object, or give each concept its own id"
                )
        if len({c.id for c in concepts}) != len(concepts):
            raise ArgumentError(f"an experimental set repeats a concept: {concepts!r}")


def _check_processes(processes: Any) -> None:
    if processes is None:
        return
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ArgumentError(f"processes must be a positive int or None, got {processes!r}")


def _mask(batch: Any) -> Tensor | None:
    """The attention mask of a dict batch, if it has one."""
    if isinstance(batch, Mapping) and isinstance(batch.get("attention_mask"), Tensor):
        return batch["attention_mask"]
    return None


def _made_as(cav: CAV, how: dict[str, Any]) -> bool:
    stats = cav.stats or {}
    return "weights" in stats and all(stats.get(k) == v for k, v in how.items())


def _score(attribs: Tensor, cav: CAV, concepts: list[Concept]) -> dict[str, Tensor]:
    """``sign_count`` and ``magnitude`` of each concept, in the set's order."""
    weights, classes = cav_weights(cav)
    if weights.shape[1] != attribs.shape[1]:
        raise ArgumentError(
            f"the CAV of {concepts_to_str(concepts)} at layer {cav.layer!r} has "
            f"{weights.shape[1]} features but the layer attributions have {attribs.shape[1]}"
        )
    dtype = torch.promote_types(attribs.dtype, torch.float32)
    dots = attribs.to(dtype) @ weights.to(attribs.device, dtype).T  # (N, K)
    order = torch.tensor([classes.index(c.id) for c in concepts], device=dots.device)
    return {
        "sign_count": (dots > 0).to(dtype).mean(0)[order],
        "magnitude": dots.mean(0)[order],
    }


@contextmanager
def _borrowed(method: Any, layer: nn.Module, forward: Any) -> Iterator[None]:
    """The user's attribution method pointed at ``layer`` (and ``forward``) for the block."""
    saved = method.layer, method.forward_func
    method.layer, method.forward_func = layer, forward
    try:
        yield
    finally:
        method.layer, method.forward_func = saved
