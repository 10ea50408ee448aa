"""TracIn: influence as gradient dot products summed over training checkpoints.

Pruthi et al., "Estimating Training Data Influence by Tracing Gradient Descent", NeurIPS 2020
(https://arxiv.org/abs/2002.08484). The influence of training example ``z`` on test example
``x`` is ``sum_c lr_c * grad L(x; w_c) . grad L(z; w_c)`` over checkpoints ``w_c``.

:class:`TracInCPBase` holds the loops (over checkpoints, training batches, top-k) for every
TracIn variant; a variant says what it computes per example at one checkpoint ("features":
full gradients for :class:`TracInCP`, last-layer factors for ``TracInCPFast``) and how two
sets of features pair into scores.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.checkpoints import LoadFunc, at_checkpoint, checkpoint_paths, load_state_dict
from perspicio._core.progress import progress
from perspicio.influence.base import (
    GRADIENT_BUDGET,
    DataInfluence,
    KMostInfluentialResults,
    TopK,
    batches,
    check_batch_size,
    check_k,
    dataset_size,
    example_grads,
    gradient_site,
    merged,
    output_as_loss,
    split,
)

Features = tuple[Tensor, ...]


class TracInCPBase(DataInfluence):
    """Base of the TracIn variants: checkpoints, training data, losses and the shared loops.

    Args:
        model: the trained model; its weights are put back after every call.
        train_dataset: a ``Dataset`` of ``(*features, label)`` items, or a ``DataLoader``.
        checkpoints: a folder of checkpoint files, a list of paths, or an iterable.
        checkpoints_load_func: ``load(model, path) -> learning_rate``; the default reads a
            state dict as tensors only (``"learning_rate"`` entry optional, 1.0 otherwise).
        loss_fn: ``loss_fn(output, labels)``; ``None`` differentiates the output itself.
        batch_size: batch size for reading ``train_dataset`` when it is a ``Dataset``.
        test_loss_fn: the loss for test examples (default: ``loss_fn``).
    """

    def __init__(
        self,
        model: nn.Module,
        train_dataset: Any,
        checkpoints: str | Iterable[Any],
        checkpoints_load_func: LoadFunc = load_state_dict,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int = 1,
        test_loss_fn: Callable[..., Tensor] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(checkpoints_load_func):
            raise TypeError(
                f"checkpoints_load_func must be callable, got {checkpoints_load_func!r}"
            )
        check_batch_size(batch_size, train_dataset)
        self.checkpoints = checkpoints  # type: ignore[assignment]
        self.checkpoints_load_func = checkpoints_load_func
        self._keep_data(model, train_dataset, loss_fn, test_loss_fn, batch_size)
        self.train_dataloader_len = dataset_size(self.train_dataloader)

    @property
    def checkpoints(self) -> list[Any]:
        """The checkpoints, in the order they are visited."""
        return self._checkpoints

    @checkpoints.setter
    def checkpoints(self, checkpoints: str | Iterable[Any]) -> None:
        self._checkpoints = checkpoint_paths(checkpoints)

    @abstractmethod
    def influence(  # type: ignore[override]
        self,
        inputs: Any,
        k: int | None = None,
        proponents: bool = True,
        unpack_inputs: bool = True,
        show_progress: bool = False,
    ) -> Tensor | KMostInfluentialResults:
        """Scores ``(n_test, n_train)`` with ``k=None``, else the top-``k`` per test example."""

    def self_influence(
        self,
        inputs: Any = None,
        show_progress: bool = False,
        outer_loop_by_checkpoints: bool = False,
    ) -> Tensor:
        """Each example's influence on itself (training data by default).

        ``sum_c lr_c`` times the variant's squared norm at checkpoint ``c``: ``|grad L(z; w_c)|^2``
        for TracInCP, ``|g|^2 |a|^2`` for TracInCPFast. ``outer_loop_by_checkpoints`` is
        accepted for compatibility: the loop order does not change the result, and checkpoints
        are always the outer loop here.
        """
        if inputs is not None:
            batches(inputs)
        return self._self_scores(inputs, show_progress)

    # the variant's part -------------------------------------------------------------
    def _features(self, batch: Any, test: bool) -> Features:
        """Per-example quantities at the loaded checkpoint (rows = examples)."""
        raise NotImplementedError

    def _pair(self, a: Features, b: Features) -> Tensor:
        """``(n_a, n_b)`` scores at one checkpoint, before the learning rate."""
        raise NotImplementedError

    def _self(self, a: Features) -> Tensor:
        """``(n_a,)`` self scores at one checkpoint, before the learning rate."""
        raise NotImplementedError

    def _batch_self(self, batch: Any) -> Tensor:
        """``(B,)`` self scores of a batch at the loaded checkpoint, before the rate."""
        return self._self(self._features(batch, test=False))

    def _self_batches(self) -> Iterable[Any]:
        return self._train_batches()

    # the loops -----------------------------------------------------------------------
    def _checkpoint(self, path: Any) -> Any:
        return at_checkpoint(self.model, path, self.checkpoints_load_func)

    def _train_batches(self) -> Iterable[Any]:
        return merged(self.train_dataloader, self._rows_per_pass())

    def _rows_per_pass(self) -> int:
        return 1

    def _inputs_features(self, inputs: Any, aggregate: bool = False, test: bool = True) -> Features:
        """Features of every example of ``inputs`` at the loaded checkpoint."""
        parts = [self._features(b, test=test) for b in batches(inputs)]
        feats = tuple(torch.cat(p) for p in zip(*parts))
        return tuple(f.sum(0, keepdim=True) for f in feats) if aggregate else feats

    def _test_features(self, inputs: Any, aggregate: bool = False) -> list[Features]:
        """The features of the test examples at each checkpoint."""
        out = []
        for path in self.checkpoints:
            with self._checkpoint(path):
                out.append(self._inputs_features(inputs, aggregate))
        return out

    def _scores(self, inputs: Any, show_progress: bool, aggregate: bool = False) -> Tensor:
        """``(n_test, n_train)``: checkpoints outside, training batches inside."""
        total: Tensor | None = None
        desc = f"{self.get_name()}: influence"
        with progress(desc, len(self.checkpoints), show_progress, "checkpoint") as bar:
            for path in self.checkpoints:
                with self._checkpoint(path) as lr:
                    test = self._inputs_features(inputs, aggregate)
                    blocks = [
                        self._pair(test, self._features(b, test=False))
                        for b in self._train_batches()
                    ]
                part = lr * torch.cat(blocks, dim=1)
                total = part if total is None else total + part
                bar.update()
        assert total is not None
        return total

    def _top_k(
        self, inputs: Any, k: int, proponents: bool, show_progress: bool, aggregate: bool = False
    ) -> KMostInfluentialResults:
        """Top-k with bounded memory: training batches outside, checkpoints inside."""
        tests = self._test_features(inputs, aggregate)
        n_test = int(tests[0][0].shape[0])
        acc = TopK(k, proponents)
        with progress(f"{self.get_name()}: top-{k}", None, show_progress, "batch") as bar:
            for batch in self._train_batches():
                block = None
                for path, test in zip(self.checkpoints, tests):
                    with self._checkpoint(path) as lr:
                        part = lr * self._pair(test, self._features(batch, test=False))
                    block = part if block is None else block + part
                assert block is not None
                acc.add(block)
                bar.update()
        return acc.result(n_test, tests[0][0])

    def _self_scores(self, inputs: Any, show_progress: bool) -> Tensor:
        """``(n,)`` self influence: checkpoints outside, batches inside (the result is the same)."""
        data = None if inputs is None else list(batches(inputs))
        total: Tensor | None = None
        desc = f"{self.get_name()}: self influence"
        with progress(desc, len(self.checkpoints), show_progress, "checkpoint") as bar:
            for path in self.checkpoints:
                with self._checkpoint(path) as lr:
                    source = self._self_batches() if data is None else data
                    parts = [self._batch_self(b) for b in source]
                part = lr * torch.cat(parts)
                total = part if total is None else total + part
                bar.update()
        assert total is not None
        return total

    def _route(
        self, inputs: Any, k: int | None, proponents: bool, show_progress: bool, aggregate: bool
    ) -> Tensor | KMostInfluentialResults:
        batches(inputs)  # checks the form before any work
        check_k(k, self.train_dataloader_len)
        if k is None:
            return self._scores(inputs, show_progress, aggregate)
        return self._top_k(inputs, k, proponents, show_progress, aggregate)


class TracInCP(TracInCPBase):
    """TracIn over checkpoints with full per-example gradients (Pruthi et al., 2020).

    Per-example gradients come from ``torch.func`` (any layer type), so
    ``sample_wise_grads_per_batch`` only decides which loss reductions are accepted:
    ``"sum"``/``"mean"`` when ``True``, ``"none"`` when ``False`` (the results are the same).
    Training batches are merged into larger passes where that does not change the result.

    Args:
        layers: modules (or their names) whose parameters are differentiated; default: all
            trainable parameters.
        sample_wise_grads_per_batch: see above.

    Example:
        >>> import os, tempfile, torch
        >>> from torch.utils.data import TensorDataset
        >>> from perspicio.influence import TracInCP
        >>> model = torch.nn.Linear(3, 2)
        >>> data = TensorDataset(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0]))
        >>> ckpt = os.path.join(tempfile.mkdtemp(), "ckpt-0.pt")
        >>> torch.save(model.state_dict(), ckpt)
        >>> tracin = TracInCP(model, data, [ckpt],
        ...                   loss_fn=torch.nn.CrossEntropyLoss(reduction="none"))
        >>> tracin.influence((torch.randn(2, 3), torch.tensor([0, 1]))).shape
        torch.Size([2, 6])
        >>> tracin.influence((torch.randn(2, 3), torch.tensor([0, 1])), k=3).indices.shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        model: nn.Module,
        train_dataset: Any,
        checkpoints: str | Iterable[Any],
        checkpoints_load_func: LoadFunc = load_state_dict,
        layers: Sequence[str | nn.Module] | None = None,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int = 1,
        test_loss_fn: Callable[..., Tensor] | None = None,
        sample_wise_grads_per_batch: bool = False,
    ) -> None:
        self.sample_wise_grads_per_batch = sample_wise_grads_per_batch
        self.reduction_type, self.test_reduction_type, self.layers, self.site = gradient_site(
            model, layers, loss_fn, test_loss_fn, sample_wise_grads_per_batch
        )
        super().__init__(
            model, train_dataset, checkpoints, checkpoints_load_func, loss_fn, batch_size,
            test_loss_fn,
        )  # fmt: skip

    def _features(self, batch: Any, test: bool) -> Features:
        """One ``(B, *param.shape)`` gradient per parameter (not concatenated: no copies)."""
        return example_grads(
            self.site, self.test_loss_fn if test else self.loss_fn, batch, flat=False
        )

    def _pair(self, a: Features, b: Features) -> Tensor:
        return sum((x.flatten(1) @ y.flatten(1).T for x, y in zip(a, b)), a[0].new_zeros(()))

    def _self(self, a: Features) -> Tensor:
        return sum((x.flatten(1).pow(2).sum(1) for x in a), a[0].new_zeros(()))

    def _rows_per_pass(self) -> int:
        return max(1, min(1024, GRADIENT_BUDGET // max(self.site.numel, 1)))

    def _batch_self(self, batch: Any) -> Tensor:
        """Squared gradient norms: for Linear layers without forming the gradients."""
        features, labels = split(batch)
        if self.loss_fn is None:
            return self.site.per_example_sq_norms(output_as_loss, features, labels)
        return self.site.per_example_sq_norms(
            self.loss_fn, features, labels, (), self.reduction_type
        )

    def _self_batches(self) -> Iterable[Any]:
        linear = self.site.linear_layers() is not None
        return merged(self.train_dataloader, 4096 if linear else self._rows_per_pass())

    def influence(  # type: ignore[override]
        self,
        inputs: Any,
        k: int | None = None,
        proponents: bool = True,
        show_progress: bool = False,
        aggregate: bool = False,
    ) -> Tensor | KMostInfluentialResults:
        """Influence of each training example on each example of ``inputs``.

        Args:
            inputs: a batch ``(*features, labels)`` or a ``DataLoader`` of them.
            k: ``None`` for the ``(n_test, n_train)`` scores; else the ``k`` most
                influential training examples per test example.
            proponents: with ``k``, the most positive scores (else the most negative).
            show_progress: a progress bar (tqdm when installed).
            aggregate: score the sum of the test examples' gradients (one row).
        """
        return self._route(inputs, k, proponents, show_progress, aggregate)

    def compute_intermediate_quantities(self, inputs: Any, aggregate: bool = False) -> Tensor:
        """``(n, n_checkpoints * P)``: each example's gradients, times the learning rate,
        concatenated over checkpoints (with ``aggregate``, summed over examples: one row).

        The gradients are those of ``loss_fn`` (as Captum's), not of ``test_loss_fn``.
        """
        parts = []
        for path in self.checkpoints:
            with self._checkpoint(path) as lr:
                grads = self._inputs_features(inputs, aggregate, test=False)
                parts.append(lr * torch.cat([g.flatten(1) for g in grads], dim=1))
        return torch.cat(parts, dim=1)
