"""Perturbation attribution of a metric computed over a whole DataLoader."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from perspicio._core.attribution import Attribution
from perspicio._core.call import Tensors, normalize_baselines
from perspicio._core.forward import run_forward
from perspicio._core.masks import FeatureGroups, MaskType
from perspicio._core.sweep import AUTO, check_per_eval, execute, nbytes, perturbed
from perspicio._core.validate import ArgumentError
from perspicio.perturbation.ablation import FeatureAblation, Occlusion
from perspicio.perturbation.shapley import ShapleyValueSampling


class InputRole:
    """What each element of a DataLoader batch is for (the values Captum's code uses)."""

    need_attr = 0  # perturbed, passed to the model, attributed
    need_forward = 1  # passed to the model as it is
    no_forward = 2  # not passed to the model (e.g. labels, seen only by ``reduce``)


def _concat_tensors(accum: Tensor | None, output: Tensor, inputs: Any) -> Tensor:
    """The default ``reduce``: every batch's output, concatenated along the batch."""
    if not isinstance(output, Tensor):
        raise TypeError(
            f"forward_func returned a {type(output).__name__}: the default reduce concatenates "
            "tensors; wrap the model to return one tensor, or give reduce and to_metric that "
            "handle its outputs"
        )
    return output if accum is None else torch.cat([accum, output])


def _items(batch: Any) -> tuple[Any, ...]:
    return tuple(batch) if isinstance(batch, tuple | list) else (batch,)


class DatasetMetric:
    """Evaluate: ``(k, F)`` feature switches (1 kept, 0 at baseline) -> ``(k, *metric)``.

    One traversal of the DataLoader per call; every batch is evaluated once per switch row,
    and each row keeps its own ``reduce`` state.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        dataloader: Iterable[Any],
        roles: tuple[int, ...],
        baselines: Tensors,
        groups: FeatureGroups,
        reduce: Callable[..., Any],
        to_metric: Callable[[Any], Any] | None,
    ) -> None:
        self.forward_func, self.dataloader, self.roles = forward_func, dataloader, roles
        self.baselines, self.groups = baselines, groups
        self.reduce, self.to_metric = reduce, to_metric

    def _perturb(self, items: tuple[Any, ...], dropped: list[Tensor]) -> tuple[Any, ...]:
        out, a = list(items), 0
        for i, role in enumerate(self.roles):
            if role == InputRole.need_attr:
                if bool(dropped[a].any()):
                    out[i] = perturbed((items[i],), [dropped[a]], [self.baselines[a]])[0]
                a += 1
        return tuple(out)

    def __call__(self, switches: Tensors, k: int) -> Tensor:
        dropped = self.groups.select(switches[0].reshape(k, -1) == 0)  # (k, 1, *S) each
        states: list[Any] = [None] * k
        for batch in self.dataloader:
            items = _items(batch)
            if len(items) != len(self.roles):
                raise ArgumentError(
                    f"the DataLoader returned {len(items)} elements, input_roles has "
                    f"{len(self.roles)}"
                )
            for j in range(k):
                pert = self._perturb(items, [d[j : j + 1] for d in dropped])
                fwd = tuple(p for p, r in zip(pert, self.roles) if r != InputRole.no_forward)
                states[j] = self.reduce(states[j], run_forward(self.forward_func, fwd), pert)
        metrics = [self.to_metric(s) if self.to_metric else s for s in states]
        for m in metrics:
            if not isinstance(m, Tensor):
                raise TypeError(
                    f"the accumulated metric must be a tensor (check reduce/to_metric), got "
                    f"{type(m).__name__}"
                )
        return torch.stack(metrics)


class DataLoaderAttribution(Attribution):
    """Perturbation attribution of a dataset-level metric (Captum's DataLoaderAttribution).

    Each feature group is perturbed in every batch of the DataLoader; ``reduce`` accumulates
    the model outputs over the traversal and ``to_metric`` turns them into the tensor that
    is attributed (by default the concatenated outputs). Wraps a :class:`FeatureAblation`
    (as Captum does) or, beyond Captum, a :class:`ShapleyValueSampling`/``ShapleyValues``.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from perspicio.attr import DataLoaderAttribution, FeatureAblation
        >>> from perspicio.testing import BasicLinearModel
        >>> model = BasicLinearModel()
        >>> loader = DataLoader(TensorDataset(torch.ones(6, 4)), batch_size=4)
        >>> dla = DataLoaderAttribution(FeatureAblation(lambda x: model(x)[:, 0]))
        >>> (attr,) = dla.attribute(loader)  # batches are 1-element lists: a 1-tuple back
        >>> attr.shape  # the default metric has one value per example of the dataset
        torch.Size([6, 4])
    """

    def __init__(self, attr_method: Attribution) -> None:
        if isinstance(attr_method, Occlusion) or not isinstance(
            attr_method, FeatureAblation | ShapleyValueSampling
        ):
            raise TypeError(
                "DataLoaderAttribution wraps a FeatureAblation, ShapleyValueSampling or "
                f"ShapleyValues instance, got {type(attr_method).__name__}"
            )
        super().__init__(attr_method.forward_func)
        self.attr_method = attr_method

    def attribute(
        self,
        dataloader: Iterable[Any],
        input_roles: tuple[int, ...] | None = None,
        baselines: Any = None,
        feature_mask: MaskType = None,
        reduce: Callable[..., Any] | None = None,
        to_metric: Callable[[Any], Any] | None = None,
        perturbations_per_pass: int = AUTO,
        show_progress: bool = False,
        return_input_shape: bool = True,
    ) -> Any:
        """Attributions of the metric to the attributed elements' features.

        Args:
            dataloader: yields batches (a tensor, or a tuple/list of elements).
            input_roles: one :class:`InputRole` per batch element (default: all attributed):
                0 attributed, 1 passed to the model only, 2 seen by ``reduce`` only.
            baselines: as in :class:`FeatureAblation`, for the attributed elements; tensors
                need first dimension 1 (shared by every batch).
            feature_mask: as in :class:`FeatureAblation`, first dimension 1.
            reduce: ``reduce(accum, output, batch) -> accum``; default concatenates outputs.
            to_metric: ``to_metric(accum) -> tensor``, the value attributed.
            perturbations_per_pass: perturbations per traversal of the DataLoader. Left at its
                default (Captum's 1), as many as fit a memory budget for their accumulated
                states (same results, fewer traversals).
            show_progress: show a progress bar (tqdm when installed).
            return_input_shape: attributions shaped ``(metric size, *element.shape[1:])``;
                otherwise one ``(metric size, max feature id + 1)`` tensor.
        """
        check_per_eval(perturbations_per_pass, "perturbations_per_pass")
        first = next(iter(dataloader))
        items = _items(first)
        roles = self._roles(input_roles, len(items))
        attr_inputs = tuple(x for x, r in zip(items, roles) if r == InputRole.need_attr)
        for x in attr_inputs:
            if not isinstance(x, Tensor):
                raise TypeError(f"attributed DataLoader elements must be tensors, got {type(x)}")
        base_values = normalize_baselines(baselines, attr_inputs)
        groups = FeatureGroups.build(feature_mask, attr_inputs)
        for name, ts in (("baselines", base_values), ("feature_mask", groups.masks)):
            if any(t.shape[0] != 1 for t in ts) and attr_inputs[0].shape[0] != 1:
                raise ArgumentError(f"{name} must have first dimension 1 (shared by every batch)")
        metric = DatasetMetric(
            self.forward_func, dataloader, roles, base_values, groups,
            reduce or _concat_tensors, to_metric,
        )  # fmt: skip
        switches = (torch.ones(1, groups.n_features, device=attr_inputs[0].device),)
        plan = self.attr_method.feature_plan(
            switches, (torch.zeros(1, 1, device=switches[0].device),),
            FeatureGroups.build(None, switches),
        )  # fmt: skip

        def finish(base: Tensor) -> Any:
            table = plan.result(base)  # (metric size, F)
            if not return_input_shape:
                return groups.to_ids(table)
            out = groups.spread(table)
            return out if isinstance(first, tuple | list) else out[0]

        return execute(
            plan, metric, switches, finish, perturbations_per_pass,
            show_progress=show_progress, desc=self.attr_method.get_name(),
            cost=lambda base: nbytes(base),
        )  # fmt: skip

    @staticmethod
    def _roles(input_roles: Any, n_items: int) -> tuple[int, ...]:
        if input_roles is None:
            return (InputRole.need_attr,) * n_items
        roles = tuple(input_roles)
        if len(roles) != n_items:
            raise ArgumentError(
                f"input_roles has {len(roles)} entries but the DataLoader returns {n_items} "
                "elements per batch"
            )
        if any(r not in (0, 1, 2) for r in roles):
            raise ArgumentError(f"input_roles entries must be 0, 1 or 2, got {roles}")
        if InputRole.need_attr not in roles:
            raise ArgumentError(
                f"input_roles must mark at least one element 0 (attributed): {roles}"
            )
        return roles
