"""TracIn on the last fully-connected layer, exactly or through random projections.

Pruthi et al., "Estimating Training Data Influence by Tracing Gradient Descent", NeurIPS 2020,
section 3.2. For a final layer ``y = W a`` the gradient of the loss w.r.t. ``W`` is the outer
product ``g a^T`` of the loss gradient at the layer's output and its input, so
``<g_x a_x^T, g_z a_z^T> = (g_x . g_z)(a_x . a_z)``: no per-example weight gradient is formed.
The bias is not part of the score. :class:`TracInCPFastRandProj` stores a random projection of
``g a^T`` for the training data once and answers queries by nearest-neighbour search.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.checkpoints import LoadFunc, load_state_dict
from perspicio._core.hooks import capture, check_layer
from perspicio._core.params import resolve_layers
from perspicio._core.validate import ArgumentError
from perspicio.influence.base import (
    KMostInfluentialResults,
    batches,
    check_k,
    check_losses,
    split,
)
from perspicio.influence.tracincp import Features, TracInCPBase


def _layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    if isinstance(layer, str):
        name = resolve_layers(model, [layer], "final_fc_layer")[0]
        return dict(model.named_modules())[name]
    check_layer(model, layer, "final_fc_layer")
    return layer


class TracInCPFast(TracInCPBase):
    """TracIn restricted to the weight of the final fully-connected layer (Pruthi et al., 2020).

    Scores are ``sum_c lr_c (g_x . g_z)(a_x . a_z)`` with ``g`` the loss gradient at the
    layer's output and ``a`` its input; ``loss_fn`` must reduce a batch (``"sum"`` or
    ``"mean"``; the per-example gradients are the same either way).

    Args:
        final_fc_layer: the last linear layer (a module of ``model`` or its name).
        vectorize: accepted for compatibility (gradients are always taken in one pass).

    Example:
        >>> import os, tempfile, torch
        >>> from torch.utils.data import TensorDataset
        >>> from perspicio.influence import TracInCPFast
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
        >>> data = TensorDataset(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0]))
        >>> ckpt = os.path.join(tempfile.mkdtemp(), "ckpt-0.pt")
        >>> torch.save(model.state_dict(), ckpt)
        >>> fast = TracInCPFast(model, model[1], data, [ckpt],
        ...                     loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"))
        >>> fast.self_influence().shape
        torch.Size([6])
    """

    def __init__(
        self,
        model: nn.Module,
        final_fc_layer: nn.Module | str,
        train_dataset: Any,
        checkpoints: str | Iterable[Any],
        checkpoints_load_func: LoadFunc = load_state_dict,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int = 1,
        test_loss_fn: Callable[..., Tensor] | None = None,
        vectorize: bool = False,
    ) -> None:
        self.final_fc_layer = _layer(model, final_fc_layer)
        if loss_fn is None:
            raise ArgumentError("loss_fn must not be None for TracInCPFast (a loss is needed)")
        self.reduction_type, self.test_reduction_type = check_losses(loss_fn, test_loss_fn, True)
        self.vectorize = vectorize
        super().__init__(
            model, train_dataset, checkpoints, checkpoints_load_func, loss_fn, batch_size,
            test_loss_fn,
        )  # fmt: skip

    def _rows_per_pass(self) -> int:
        return 4096

    def _features(self, batch: Any, test: bool) -> Features:
        """``(g, a)``: loss gradients at the layer's output and the layer's inputs."""
        loss_fn = self.test_loss_fn if test else self.loss_fn
        reduction = self.test_reduction_type if test else self.reduction_type
        features, labels = split(batch)
        with torch.enable_grad(), capture([self.final_fc_layer], inputs=True) as ins:
            with capture([self.final_fc_layer], leaf=True) as outs:
                output = self.model(*features)
            loss = output if loss_fn is None else loss_fn(output, labels)
            if reduction == "mean":
                loss = loss * int(output.shape[0])
            (grad,) = torch.autograd.grad(loss.sum(), outs[self.final_fc_layer][0])
        act = ins[self.final_fc_layer][0].detach()
        return grad.reshape(grad.shape[0], -1).detach(), act.reshape(act.shape[0], -1)

    def _pair(self, a: Features, b: Features) -> Tensor:
        return (a[0] @ b[0].T) * (a[1] @ b[1].T)

    def _self(self, a: Features) -> Tensor:
        return (a[0] * a[0]).sum(1) * (a[1] * a[1]).sum(1)

    def influence(  # type: ignore[override]
        self,
        inputs: Any,
        k: int | None = None,
        proponents: bool = True,
        show_progress: bool = False,
    ) -> Tensor | KMostInfluentialResults:
        """Scores ``(n_test, n_train)`` with ``k=None``, else the top-``k`` per test example."""
        return self._route(inputs, k, proponents, show_progress, False)


class NearestNeighbors(ABC):
    """Maximum-inner-product search over stored vectors (the rows given to :meth:`setup`)."""

    @abstractmethod
    def setup(self, data: Tensor) -> None:
        """Index ``data`` (``(n, *)``; rows are flattened)."""

    @abstractmethod
    def get_nearest_neighbors(self, query: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """``(indices, inner_products)``, each ``(n_query, k)``, largest inner product first."""


class TorchNearestNeighbors(NearestNeighbors):
    """Exact search in torch (blocks of ``block_rows`` stored rows), or faiss when installed.

    Args:
        use_faiss: ``None`` uses ``faiss`` (an exact inner-product index) if it imports.
        block_rows: stored rows scored at once by the torch search.
    """

    def __init__(self, use_faiss: bool | None = None, block_rows: int = 65536) -> None:
        self.use_faiss, self.block_rows = use_faiss, block_rows
        self.data: Tensor | None = None
        self.index: Any = None

    def setup(self, data: Tensor) -> None:
        self.data = data.reshape(data.shape[0], -1)
        self.index = None
        if self.use_faiss is not False:
            try:
                import faiss  # type: ignore[import-not-found]
            except ImportError:
                if self.use_faiss:
                    raise
                return
            self.index = faiss.IndexFlatIP(self.data.shape[1])
            self.index.add(self.data.detach().float().cpu().numpy())

    def get_nearest_neighbors(self, query: Tensor, k: int) -> tuple[Tensor, Tensor]:
        if self.data is None:
            raise ArgumentError("call setup(data) before get_nearest_neighbors")
        query = query.reshape(query.shape[0], -1).to(self.data)
        if self.index is not None:
            _scores, idx = self.index.search(query.detach().float().cpu().numpy(), k)
            idx_t = torch.as_tensor(idx, device=query.device)
            return idx_t, (query.unsqueeze(1) * self.data[idx_t]).sum(-1)
        best_s, best_i = (
            query.new_empty(query.shape[0], 0),
            torch.empty(query.shape[0], 0, dtype=torch.long, device=query.device),
        )
        for start in range(0, self.data.shape[0], self.block_rows):
            block = query @ self.data[start : start + self.block_rows].T
            idx = torch.arange(start, start + block.shape[1], device=query.device)
            s = torch.cat([best_s, block], 1)
            i = torch.cat([best_i, idx.expand(query.shape[0], -1)], 1)
            best_s, pos = torch.topk(s, min(k, s.shape[1]), dim=1)
            best_i = torch.gather(i, 1, pos)
        return best_i, best_s


class TracInCPFastRandProj(TracInCPFast):
    """:class:`TracInCPFast` with the training data's quantities stored once, for quick queries.

    Each example becomes ``sqrt(lr_c) * vec(P_g^T g a^T P_a)`` concatenated over checkpoints,
    with Gaussian projections ``P_g``, ``P_a`` (about ``sqrt(projection_dim)`` columns each;
    none with ``projection_dim=None``, making scores exact). Queries are inner-product
    nearest-neighbour searches: :class:`TorchNearestNeighbors` by default (no ``annoy``).
    Unlike Captum's, :meth:`self_influence` is supported (from the stored quantities).

    Args:
        nearest_neighbors: a :class:`NearestNeighbors` (``setup`` / ``get_nearest_neighbors``).
        projection_dim: the projected dimension per checkpoint, or ``None`` for none.
        seed: seed of the projections (a private generator: the global RNG is not touched).

    Example:
        >>> import os, tempfile, torch
        >>> from torch.utils.data import TensorDataset
        >>> from perspicio.influence import TracInCPFastRandProj
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
        >>> data = TensorDataset(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0]))
        >>> ckpt = os.path.join(tempfile.mkdtemp(), "ckpt-0.pt")
        >>> torch.save(model.state_dict(), ckpt)
        >>> proj = TracInCPFastRandProj(model, model[1], data, [ckpt],
        ...                             loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"))
        >>> proj.influence((torch.randn(2, 3), torch.tensor([0, 1])), k=2).indices.shape
        torch.Size([2, 2])
    """

    def __init__(
        self,
        model: nn.Module,
        final_fc_layer: nn.Module | str,
        train_dataset: Any,
        checkpoints: str | Iterable[Any],
        checkpoints_load_func: LoadFunc = load_state_dict,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int = 1,
        test_loss_fn: Callable[..., Tensor] | None = None,
        vectorize: bool = False,
        nearest_neighbors: NearestNeighbors | None = None,
        projection_dim: int | None = None,
        seed: int = 0,
    ) -> None:
        if projection_dim is not None and (
            isinstance(projection_dim, bool)
            or not isinstance(projection_dim, int)
            or projection_dim < 1
        ):
            raise ArgumentError(
                f"projection_dim must be a positive int or None, got {projection_dim!r}"
            )
        if nearest_neighbors is not None and not (
            hasattr(nearest_neighbors, "setup")
            and hasattr(nearest_neighbors, "get_nearest_neighbors")
        ):
            raise TypeError(
                "nearest_neighbors must have setup(data) and get_nearest_neighbors(query, k), "
                f"got {type(nearest_neighbors).__name__}"
            )
        super().__init__(
            model, final_fc_layer, train_dataset, checkpoints, checkpoints_load_func, loss_fn,
            batch_size, test_loss_fn, vectorize,
        )  # fmt: skip
        self.nearest_neighbors = nearest_neighbors or TorchNearestNeighbors()
        self.projection_dim, self.seed = projection_dim, seed
        self.projection_quantities = self._projections()
        self.src_intermediate_quantities = self._quantities(None, test=False)
        self.nearest_neighbors.setup(self.src_intermediate_quantities)

    def _projections(self) -> tuple[Tensor, Tensor] | None:
        if self.projection_dim is None:
            return None
        with self._checkpoint(self.checkpoints[0]):
            g, a = self._features(next(iter(self.train_dataloader)), test=False)
        dim_g, dim_a = g.shape[1], a.shape[1]
        if dim_g * dim_a <= self.projection_dim:
            return None
        side = int(self.projection_dim**0.5)
        gen = torch.Generator().manual_seed(self.seed)
        # Captum draws its projections after a DataLoader iterator has taken its base seed
        # from the seeded RNG: the same draw here gives the same projections for a seed
        torch.empty((), dtype=torch.int64).random_(generator=gen)
        p_g, p_a = (
            torch.normal(torch.zeros(d, min(side, d)), 1.0 / min(side, d) ** 0.5, generator=gen)
            for d in (dim_g, dim_a)
        )
        return p_g.to(g), p_a.to(a)

    def _quantities(self, inputs: Any, test: bool) -> Tensor:
        """``(n, C * D)``: projected outer products, ``sqrt(lr)``-scaled, over checkpoints."""
        parts = []
        for path in self.checkpoints:
            with self._checkpoint(path) as lr:
                source = self._train_batches() if inputs is None else batches(inputs)
                rows = []
                for batch in source:
                    g, a = self._features(batch, test)
                    if self.projection_quantities is not None:
                        g, a = g @ self.projection_quantities[0], a @ self.projection_quantities[1]
                    rows.append((g.unsqueeze(2) * a.unsqueeze(1)).flatten(1))
            parts.append(lr**0.5 * torch.cat(rows))
        return torch.cat(parts, dim=1)

    def influence(  # type: ignore[override]
        self, inputs: Any = None, k: int | None = 5, proponents: bool = True
    ) -> Tensor | KMostInfluentialResults:
        """Scores ``(n_test, n_train)`` with ``k=None``; else the top-``k`` by neighbour search."""
        if inputs is None:
            raise ArgumentError("inputs is required (use self_influence for self influence)")
        batches(inputs)
        check_k(k, int(self.src_intermediate_quantities.shape[0]))
        query = self._quantities(inputs, test=True)
        if k is None:
            return query @ self.src_intermediate_quantities.T
        sign = 1.0 if proponents else -1.0
        indices, scores = self.nearest_neighbors.get_nearest_neighbors(sign * query, k)
        return KMostInfluentialResults(indices, sign * scores)

    def self_influence(  # type: ignore[override]
        self,
        inputs: Any = None,
        show_progress: bool = False,
        outer_loop_by_checkpoints: bool = False,
    ) -> Tensor:
        """Squared norms of the (projected) quantities: exact with ``projection_dim=None``."""
        q = self.src_intermediate_quantities if inputs is None else self._quantities(inputs, False)
        return (q * q).sum(1)

    def compute_intermediate_quantities(self, inputs: Any) -> Tensor:
        """``(n, C * D)``: the vectors whose inner products are the influence scores."""
        batches(inputs)
        return self._quantities(inputs, test=False)
