"""Influence functions: ``grad L(x)^T H^{-1} grad L(z)`` through a low-rank inverse Hessian.

Koh & Liang, "Understanding Black-box Predictions via Influence Functions", ICML 2017
(https://arxiv.org/abs/1703.04730); the Arnoldi variant follows Schioppa et al., "Scaling Up
Influence Functions", AAAI 2022 (https://arxiv.org/abs/2112.03052).

Both build a matrix ``R`` (``P x k``) with ``H^{-1} ~ R R^T`` from the top eigenpairs of the
Hessian ``H`` of the summed training loss (plus ``hessian_reg`` on the diagonal): each
example's *influence embedding* is ``R^T grad L``, and scores are embedding dot products.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.checkpoints import LoadFunc, at_checkpoint, load_state_dict
from perspicio._core.progress import progress
from perspicio._core.validate import ArgumentError
from perspicio.influence.base import (
    DataInfluence,
    KMostInfluentialResults,
    TopK,
    as_loader,
    batch_rows,
    batches,
    check_batch_size,
    check_k,
    dataset_size,
    example_grads,
    gradient_site,
    output_as_loss,
    split,
)


class InfluenceFunctionBase(DataInfluence):
    """Shared set-up and queries of the influence-function family.

    Subclasses set ``self.R`` (or override :meth:`_embed`); scores between two examples are
    the dot products of their embeddings. The checkpoint is loaded for each computation and
    the user's weights are put back afterwards.
    """

    def __init__(
        self,
        model: nn.Module,
        train_dataset: Any,
        checkpoint: Any,
        checkpoints_load_func: LoadFunc = load_state_dict,
        layers: Sequence[str | nn.Module] | None = None,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int = 1,
        hessian_dataset: Any = None,
        test_loss_fn: Callable[..., Tensor] | None = None,
        sample_wise_grads_per_batch: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_batch_size(batch_size, train_dataset)
        self.sample_wise_grads_per_batch = sample_wise_grads_per_batch
        self.reduction_type, self.test_reduction_type, self.layers, self.site = gradient_site(
            model, layers, loss_fn, test_loss_fn, sample_wise_grads_per_batch
        )
        self.checkpoint, self.checkpoints_load_func = checkpoint, checkpoints_load_func
        self._keep_data(model, train_dataset, loss_fn, test_loss_fn, batch_size)
        self.hessian_dataloader = (
            self.train_dataloader
            if hessian_dataset is None
            else as_loader(hessian_dataset, batch_size, "hessian_dataset")
        )
        self.R: Tensor | None = None

    def _loaded(self) -> Any:
        return at_checkpoint(self.model, self.checkpoint, self.checkpoints_load_func)

    # Hessian of the summed training loss, as a function of the flattened parameters ----
    def _unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        out, start = {}, 0
        for name, shape in zip(self.site.names, self.site.shapes):
            size = shape.numel()
            out[name] = flat[start : start + size].reshape(shape)
            start += size
        return out

    def _flat_params(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.site.params.values()])

    def batch_loss(self, flat: Tensor, batch: Any) -> Tensor:
        """The batch's summed loss at parameters ``flat`` (``"mean"`` losses scaled up)."""
        features, labels = split(batch)
        loss_fn = self.loss_fn if self.loss_fn is not None else output_as_loss
        loss = self.site.loss(loss_fn, features, labels, (), self._unflatten(flat))
        if self.reduction_type == "mean":
            return loss * batch_rows(batch)
        return loss.sum()

    def _hvp(self, flat: Tensor, v: Tensor) -> Tensor:
        """``H v`` summed over the Hessian data."""
        out = torch.zeros_like(v)
        for batch in self.hessian_dataloader:
            g = torch.func.grad(lambda f, b=batch: self.batch_loss(f, b))
            out += torch.func.jvp(g, (flat,), (v,))[1]
        return out

    # the low-rank inverse of Naive and Arnoldi ---------------------------------------------
    _reduced = "the Hessian"  # what _reduced_hessian returns, for the error message

    def _reduced_hessian(self, show_progress: bool) -> tuple[Tensor | None, Tensor]:
        """``(basis, H)``: the Hessian in the rows of ``basis`` (``None``: the parameters)."""
        raise NotImplementedError

    def _set_projection(
        self,
        projection_dim: int | None,
        seed: int,
        hessian_reg: float,
        hessian_inverse_tol: float,
        projection_on_cpu: bool,
        show_progress: bool,
    ) -> None:
        """Keeps the settings and sets ``R`` from the top eigenpairs of the reduced Hessian."""
        self.projection_dim, self.seed = projection_dim, seed
        self.hessian_reg, self.hessian_inverse_tol = hessian_reg, hessian_inverse_tol
        with self._loaded():
            basis, H = self._reduced_hessian(show_progress)
        ls, vs = top_eigen(H, projection_dim, hessian_reg, hessian_inverse_tol)
        R = _inverse_root(ls, vs if basis is None else basis.T @ vs, self._reduced)
        self.R = R.cpu() if projection_on_cpu else R

    # embeddings and queries ------------------------------------------------------------
    def _embed(self, grads: Tensor) -> Tensor:
        assert self.R is not None
        return grads @ self.R.to(grads)

    def _embeddings(self, data: Any, test: bool, aggregate: bool = False) -> Tensor:
        loss_fn = self.test_loss_fn if test else self.loss_fn
        parts = [self._embed(example_grads(self.site, loss_fn, b)) for b in data]
        out = torch.cat(parts)
        return out.sum(0, keepdim=True) if aggregate else out

    def compute_intermediate_quantities(
        self,
        inputs_dataset: Any,
        aggregate: bool = False,
        show_progress: bool = False,
        return_on_cpu: bool = True,
        test: bool = False,
    ) -> Tensor:
        """``(n, k)`` influence embeddings (with ``aggregate``, their sum: one row).

        ``test`` selects ``test_loss_fn`` instead of ``loss_fn``.
        """
        data = batches(inputs_dataset, "inputs_dataset")
        with self._loaded():
            out = self._embeddings(data, test, aggregate)
        return out.cpu() if return_on_cpu else out

    def influence(  # type: ignore[override]
        self,
        inputs: Any,
        k: int | None = None,
        proponents: bool = True,
        show_progress: bool = False,
    ) -> Tensor | KMostInfluentialResults:
        """Scores ``(n_test, n_train)`` with ``k=None``, else the top-``k`` per test example."""
        data = batches(inputs)
        check_k(k, dataset_size(self.train_dataloader))
        acc = None if k is None else TopK(k, proponents)
        blocks = []
        with self._loaded(), progress(self.get_name(), None, show_progress, "batch") as bar:
            test = self._embeddings(data, test=True)
            for batch in self.train_dataloader:
                block = test @ self._embeddings([batch], test=False).T
                if acc is None:
                    blocks.append(block)
                else:
                    acc.add(block)
                bar.update()
        if acc is not None:
            return acc.result(test.shape[0], test)
        return torch.cat(blocks, dim=1)

    def self_influence(self, inputs_dataset: Any = None, show_progress: bool = False) -> Tensor:
        """Squared norms of the embeddings (training data by default)."""
        data = self.train_dataloader if inputs_dataset is None else batches(inputs_dataset)
        with self._loaded():
            emb = self._embeddings(data, test=False)
        return (emb * emb).sum(1)


def top_eigen(
    H: Tensor, k: int | None, hessian_reg: float, hessian_inverse_tol: float
) -> tuple[Tensor, Tensor]:
    """Eigenpairs of ``H + reg I`` above ``tol``, the top ``k`` of them, ascending.

    Each eigenvector's sign is fixed so that its entries sum to a positive number.
    """
    H = (H + H.T) / 2 + hessian_reg * torch.eye(len(H), dtype=H.dtype, device=H.device)
    ls, vs = torch.linalg.eigh(H)
    keep = ls > hessian_inverse_tol
    ls, vs = ls[keep], vs[:, keep]
    if k is not None:
        ls, vs = ls[len(ls) - min(k, len(ls)) :], vs[:, vs.shape[1] - min(k, vs.shape[1]) :]
    sign = torch.where(vs.sum(0) > 0, 1.0, -1.0).to(vs)
    return ls, vs * sign


def _check_dim(value: Any, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"{name} must be a positive int, got {value!r}")


def _inverse_root(ls: Tensor, vs: Tensor, what: str) -> Tensor:
    if len(ls) == 0:
        raise ArgumentError(
            f"{what} has no eigenvalue above hessian_inverse_tol: lower it or raise hessian_reg"
        )
    return vs / ls.sqrt()


class NaiveInfluenceFunction(InfluenceFunctionBase):
    """Influence functions with the Hessian formed explicitly (Koh & Liang, 2017).

    ``H`` is the Hessian of the summed loss over ``hessian_dataset`` (default: the training
    data) w.r.t. the parameters of ``layers``; only the top ``projection_dim`` eigenpairs of
    ``H + hessian_reg I`` above ``hessian_inverse_tol`` are kept (``None``: all of them).
    Scores are ``+grad L(x)^T H^{-1} grad L(z)`` (Captum's sign). For small models only:
    memory grows as the square of the number of parameters.

    Args:
        checkpoint: the checkpoint at which influence is measured.
        hessian_dataset: the data the Hessian is summed over (default: ``train_dataset``).
        projection_dim: how many eigenpairs to keep.
        seed: accepted for compatibility (nothing is random here).
        hessian_reg: added to the Hessian's diagonal (an L2 penalty's Hessian, for example).
        hessian_inverse_tol: eigenvalues at or below it are dropped.
        projection_on_cpu: keep ``R`` on the CPU.

    Example:
        >>> import os, tempfile, torch
        >>> from torch.utils.data import TensorDataset
        >>> from perspicio.influence import NaiveInfluenceFunction
        >>> model = torch.nn.Linear(3, 2)
        >>> data = TensorDataset(torch.randn(8, 3), torch.tensor([0, 1, 0, 1, 1, 0, 1, 0]))
        >>> ckpt = os.path.join(tempfile.mkdtemp(), "ckpt-0.pt")
        >>> torch.save(model.state_dict(), ckpt)
        >>> fn = NaiveInfluenceFunction(model, data, ckpt,
        ...                             loss_fn=torch.nn.CrossEntropyLoss(reduction="none"))
        >>> fn.influence((torch.randn(2, 3), torch.tensor([0, 1]))).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        model: nn.Module,
        train_dataset: Any,
        checkpoint: Any,
        checkpoints_load_func: LoadFunc = load_state_dict,
        layers: Sequence[str | nn.Module] | None = None,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int = 1,
        hessian_dataset: Any = None,
        test_loss_fn: Callable[..., Tensor] | None = None,
        sample_wise_grads_per_batch: bool = False,
        projection_dim: int | None = 50,
        seed: int = 42,
        hessian_reg: float = 1e-6,
        hessian_inverse_tol: float = 1e-5,
        projection_on_cpu: bool = True,
        show_progress: bool = False,
    ) -> None:
        _check_dim(projection_dim, "projection_dim", allow_none=True)
        super().__init__(
            model, train_dataset, checkpoint, checkpoints_load_func, layers, loss_fn,
            batch_size, hessian_dataset, test_loss_fn, sample_wise_grads_per_batch,
        )  # fmt: skip
        self._set_projection(
            projection_dim, seed, hessian_reg, hessian_inverse_tol, projection_on_cpu, show_progress
        )

    def _reduced_hessian(self, show_progress: bool) -> tuple[Tensor | None, Tensor]:
        return None, self.hessian(show_progress)

    def hessian(self, show_progress: bool = False) -> Tensor:
        """``(P, P)``: the Hessian of the summed loss over the Hessian data (at the loaded
        weights)."""
        flat = self._flat_params()
        H = torch.zeros(flat.numel(), flat.numel(), dtype=flat.dtype, device=flat.device)
        with progress(f"{self.get_name()}: Hessian", None, show_progress, "batch") as bar:
            for batch in self.hessian_dataloader:
                H += torch.func.hessian(lambda f, b=batch: self.batch_loss(f, b))(flat)
                bar.update()
        return H


class ArnoldiInfluenceFunction(InfluenceFunctionBase):
    """Influence functions with the top Hessian eigenpairs found by Arnoldi iteration.

    Schioppa et al., "Scaling Up Influence Functions", AAAI 2022. The iteration needs only
    Hessian-vector products (over ``hessian_dataset``): ``arnoldi_dim`` of them build a
    Krylov basis (stopping early when the next vector's norm falls below ``arnoldi_tol``);
    the top ``projection_dim`` eigenpairs of the Hessian restricted to it (plus
    ``hessian_reg``, above ``hessian_inverse_tol``) give ``R``. The starting vector is drawn
    from a private CPU generator seeded with ``seed`` (the same start on every device).

    Example:
        >>> import os, tempfile, torch
        >>> from torch.utils.data import TensorDataset
        >>> from perspicio.influence import ArnoldiInfluenceFunction
        >>> model = torch.nn.Linear(3, 2)
        >>> data = TensorDataset(torch.randn(8, 3), torch.tensor([0, 1, 0, 1, 1, 0, 1, 0]))
        >>> ckpt = os.path.join(tempfile.mkdtemp(), "ckpt-0.pt")
        >>> torch.save(model.state_dict(), ckpt)
        >>> fn = ArnoldiInfluenceFunction(model, data, ckpt,
        ...                               loss_fn=torch.nn.CrossEntropyLoss(reduction="none"),
        ...                               arnoldi_tol=1e-8)
        >>> fn.self_influence().shape
        torch.Size([8])
    """

    _reduced = "the Hessian restricted to the Krylov subspace"

    def __init__(
        self,
        model: nn.Module,
        train_dataset: Any,
        checkpoint: Any,
        checkpoints_load_func: LoadFunc = load_state_dict,
        layers: Sequence[str | nn.Module] | None = None,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int = 1,
        hessian_dataset: Any = None,
        test_loss_fn: Callable[..., Tensor] | None = None,
        sample_wise_grads_per_batch: bool = False,
        projection_dim: int = 50,
        seed: int = 0,
        arnoldi_dim: int = 200,
        arnoldi_tol: float = 1e-1,
        hessian_reg: float = 1e-3,
        hessian_inverse_tol: float = 1e-4,
        projection_on_cpu: bool = True,
        show_progress: bool = False,
    ) -> None:
        _check_dim(projection_dim, "projection_dim")
        _check_dim(arnoldi_dim, "arnoldi_dim")
        super().__init__(
            model, train_dataset, checkpoint, checkpoints_load_func, layers, loss_fn,
            batch_size, hessian_dataset, test_loss_fn, sample_wise_grads_per_batch,
        )  # fmt: skip
        self.arnoldi_dim, self.arnoldi_tol = arnoldi_dim, arnoldi_tol
        self._set_projection(
            projection_dim, seed, hessian_reg, hessian_inverse_tol, projection_on_cpu, show_progress
        )

    def _reduced_hessian(self, show_progress: bool) -> tuple[Tensor | None, Tensor]:
        Q, H = self.arnoldi(show_progress)
        if len(Q) == 0:
            raise ArgumentError("the Arnoldi basis is empty: lower arnoldi_tol")
        return Q, H

    def arnoldi(self, show_progress: bool = False) -> tuple[Tensor, Tensor]:
        """``(Q, H)``: an orthonormal Krylov basis (rows) and the Hessian restricted to it."""
        flat = self._flat_params()
        gen = torch.Generator().manual_seed(self.seed)  # on the CPU: the same on every device
        parts = [
            torch.randn(s, generator=gen, dtype=flat.dtype).reshape(-1) for s in self.site.shapes
        ]
        b = torch.cat(parts).to(flat.device)
        n = self.arnoldi_dim
        H = torch.zeros(n + 1, n, dtype=flat.dtype, device=flat.device)
        qs = [b / b.norm()]
        k = 0
        with progress(f"{self.get_name()}: Arnoldi", n, show_progress, "step") as bar:
            for k in range(1, n + 1):
                v = self._hvp(flat, qs[k - 1])
                for i in range(k):  # modified Gram-Schmidt
                    H[i, k - 1] = qs[i] @ v
                    v = v - H[i, k - 1] * qs[i]
                H[k, k - 1] = v.norm()
                bar.update()
                if H[k, k - 1] < self.arnoldi_tol:
                    break
                qs.append(v / H[k, k - 1])
        # the last basis vector has no full column in H: both are dropped
        m = max(k - 1, 0)
        return torch.stack(qs[:m]) if m else flat.new_zeros(0, flat.numel()), H[:m, :m]
