"""EK-FAC influence functions: a Kronecker-factored Hessian with corrected eigenvalues.

Grosse et al., "Studying Large Language Model Generalization with Influence Functions", 2023
(https://arxiv.org/abs/2308.03296), after George et al., "Fast Approximate Natural Gradient
Descent in a Kronecker-factored Eigenbasis", NeurIPS 2018 (https://arxiv.org/abs/1806.03884).

For each Linear or Conv2d layer the Gauss-Newton Hessian of the summed loss is approximated by
``A (x) S`` with ``A`` the covariance of the layer's inputs (patches for convolutions, with a
constant 1 for the bias) and ``S`` that of the loss gradients at its outputs. A first pass over
the data fits ``A`` and ``S``; their eigenvectors ``Q_A``, ``Q_S`` give a basis in which a second
pass fits the diagonal exactly: ``Lambda_ij = sum_n (Q_S^T G_n Q_A)_ij^2`` over per-example
gradients ``G_n``. The inverse-Hessian-vector product is then a rotation, a division by
``Lambda + damping``, and a rotation back. Both passes stream over the data: memory holds the
factors and one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.checkpoints import LoadFunc, load_state_dict
from perspicio._core.hooks import capture
from perspicio._core.params import ParameterSite, resolve_layers
from perspicio._core.progress import progress
from perspicio._core.validate import ArgumentError
from perspicio.influence.base import batch_rows, example_grads, split
from perspicio.influence.functions import InfluenceFunctionBase

SUPPORTED = (nn.Linear, nn.Conv2d)


@dataclass
class Factors:
    """One layer's eigenbases and corrected eigenvalues (``(out, in + bias)`` shaped)."""

    q_a: Tensor
    q_s: Tensor
    eigenvalues: Tensor
    bias: bool


def _inputs_as_rows(layer: nn.Module, x: Tensor) -> Tensor:
    """``(rows, in [* kh * kw] [+ 1])``: what the layer's weight multiplies, one row per use."""
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ArgumentError(f"EK-FAC supports Conv2d with numeric zero padding, got {layer}")
        patches = nn.functional.unfold(
            x, layer.kernel_size, layer.dilation, layer.padding, layer.stride
        )  # (B, in * kh * kw, L)
        if layer.groups != 1:
            raise ArgumentError(f"EK-FAC supports Conv2d with groups=1, got {layer.groups}")
        x = patches.transpose(1, 2)
    x = x.reshape(-1, x.shape[-1])
    if layer.bias is not None:
        x = torch.cat([x, x.new_ones(len(x), 1)], dim=1)
    return x


def _outputs_as_rows(layer: nn.Module, g: Tensor) -> Tensor:
    if isinstance(layer, nn.Conv2d):
        g = g.flatten(2).transpose(1, 2)  # (B, L, out)
    return g.reshape(-1, g.shape[-1])


class EKFACInfluence(InfluenceFunctionBase):
    """Influence functions with an EK-FAC Hessian (Grosse et al., 2023), for Linear and Conv2d.

    Scores are ``grad L(x)^T (H + damping I)^{-1} grad L(z)`` (the sign of Captum's influence
    functions), with ``H`` the EK-FAC approximation of the summed loss's Gauss-Newton Hessian
    over ``hessian_dataset``. With ``sample_labels=None`` the factors use the data's labels
    (empirical Fisher); a callable ``sample_labels(output) -> labels`` draws labels from the
    model instead (true Fisher, as in the paper).

    Args:
        layers: Linear/Conv2d modules or names (default: every Linear and Conv2d).
        damping: added to the corrected eigenvalues; ``None``: 0.1 x their mean per layer.
        sample_labels: see above.

    Example:
        >>> import os, tempfile, torch
        >>> from torch.utils.data import TensorDataset
        >>> from perspicio.influence import EKFACInfluence
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        >>> data = TensorDataset(torch.randn(8, 3), torch.tensor([0, 1, 0, 1, 1, 0, 1, 0]))
        >>> ckpt = os.path.join(tempfile.mkdtemp(), "ckpt-0.pt")
        >>> torch.save(model.state_dict(), ckpt)
        >>> ekfac = EKFACInfluence(model, data, ckpt,
        ...                        loss_fn=torch.nn.CrossEntropyLoss(reduction="none"), batch_size=4)
        >>> ekfac.influence((torch.randn(2, 3), torch.tensor([0, 1]))).shape
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
        damping: float | None = None,
        sample_labels: Callable[[Tensor], Any] | None = None,
        show_progress: bool = False,
    ) -> None:
        if layers is None:
            layers = [m for m in model.modules() if isinstance(m, SUPPORTED)]
        super().__init__(
            model, train_dataset, checkpoint, checkpoints_load_func, layers, loss_fn,
            batch_size, hessian_dataset, test_loss_fn, sample_wise_grads_per_batch,
        )  # fmt: skip
        modules = dict(model.named_modules())
        self.modules = [modules[n] for n in resolve_layers(model, layers)]
        for m in self.modules:
            if not isinstance(m, SUPPORTED):
                raise ArgumentError(
                    f"EK-FAC supports Linear and Conv2d layers, got {type(m).__name__}"
                )
        # the site in layer order, weight before bias: per-example gradients split by layer
        names = [n for m in self.modules for n, _ in _layer_params(model, m)]
        self.site = ParameterSite(model, tuple(names))
        if damping is not None and not damping >= 0:
            raise ArgumentError(f"damping must be >= 0 or None, got {damping!r}")
        self.damping, self.sample_labels = damping, sample_labels
        with self._loaded():
            bases = self._fit_covariances(show_progress)
            self.factors = self._fit_eigenvalues(bases, show_progress)

    def _loss_of(self, output: Tensor, labels: Any, rows: int) -> Tensor:
        if self.sample_labels is not None:
            labels = self.sample_labels(output.detach())
        loss = output if self.loss_fn is None else self.loss_fn(output, labels)
        return loss * rows if self.reduction_type == "mean" else loss.sum()

    def _fit_covariances(self, show_progress: bool) -> list[tuple[Tensor, Tensor]]:
        """First pass: eigenvectors of the input and output-gradient covariances per layer."""
        covs: list[list[Tensor]] | None = None
        with progress("EK-FAC: covariances", None, show_progress, "batch") as bar:
            for batch in self.hessian_dataloader:
                features, labels = split(batch)
                with torch.enable_grad(), capture(self.modules, inputs=True) as ins:
                    with capture(self.modules, leaf=True, connected=True) as outs:
                        output = self.model(*features)
                    leaves = [outs[m][0] for m in self.modules]
                    grads = torch.autograd.grad(
                        self._loss_of(output, labels, batch_rows(batch)), leaves
                    )
                a = [_inputs_as_rows(m, ins[m][0].detach()) for m in self.modules]
                g = [_outputs_as_rows(m, gr) for m, gr in zip(self.modules, grads)]
                new = [[x.T @ x, y.T @ y] for x, y in zip(a, g)]
                covs = (
                    new if covs is None else [[c + n for c, n in zip(*p)] for p in zip(covs, new)]
                )
                bar.update()
        if covs is None:
            raise ArgumentError("the Hessian data is empty")
        return [(torch.linalg.eigh(a)[1], torch.linalg.eigh(s)[1]) for a, s in covs]

    def _layer_grads(self, flat: Tensor) -> list[Tensor]:
        """``(B, out, in [+ 1])`` per layer from flattened per-example gradients."""
        out, start = [], 0
        for m in self.modules:
            w = m.weight
            n_w = w.numel()
            gw = flat[:, start : start + n_w].reshape(len(flat), w.shape[0], -1)
            start += n_w
            if m.bias is not None:
                gb = flat[:, start : start + m.bias.numel()].unsqueeze(2)
                start += m.bias.numel()
                gw = torch.cat([gw, gb], dim=2)
            out.append(gw)
        return out

    def _fit_eigenvalues(
        self, bases: list[tuple[Tensor, Tensor]], show_progress: bool
    ) -> list[Factors]:
        """Second pass: the exact second moments of per-example gradients in the eigenbasis."""
        sums = [torch.zeros(q_s.shape[0], q_a.shape[0]).to(q_a) for q_a, q_s in bases]
        with progress("EK-FAC: eigenvalues", None, show_progress, "batch") as bar:
            for batch in self.hessian_dataloader:
                features, labels = split(batch)
                if self.sample_labels is not None:  # drawn outside vmap, once per batch
                    with torch.no_grad():
                        labels = self.sample_labels(self.model(*features))
                grads = self._layer_grads(
                    example_grads(self.site, self.loss_fn, (*features, labels))
                )
                for i, ((q_a, q_s), g) in enumerate(zip(bases, grads)):
                    sums[i] += (q_s.T @ g @ q_a).pow(2).sum(0)
                bar.update()
        return [
            Factors(q_a, q_s, lam, m.bias is not None)
            for (q_a, q_s), lam, m in zip(bases, sums, self.modules)
        ]

    def _embed(self, grads: Tensor) -> Tensor:
        """Rotated gradients over ``sqrt(Lambda + damping)``: dot products give the scores."""
        parts = []
        for f, g in zip(self.factors, self._layer_grads(grads)):
            damping = 0.1 * f.eigenvalues.mean() if self.damping is None else self.damping
            rotated = f.q_s.T.to(g) @ g @ f.q_a.to(g)
            parts.append((rotated / (f.eigenvalues.to(g) + damping).sqrt()).flatten(1))
        return torch.cat(parts, dim=1)

    def inverse_hvp(self, grads: Tensor) -> Tensor:
        """``(H + damping I)^{-1} v`` for rows ``v`` of flattened gradients (site order)."""
        parts = []
        for f, g in zip(self.factors, self._layer_grads(grads)):
            damping = 0.1 * f.eigenvalues.mean() if self.damping is None else self.damping
            rotated = f.q_s.T.to(g) @ g @ f.q_a.to(g) / (f.eigenvalues.to(g) + damping)
            back = f.q_s.to(g) @ rotated @ f.q_a.T.to(g)
            w = back[..., : back.shape[2] - int(f.bias)].flatten(1)
            parts += [w, back[..., -1]] if f.bias else [w]
        return torch.cat(parts, dim=1)


def _layer_params(model: nn.Module, layer: nn.Module) -> list[tuple[str, Any]]:
    prefix = next(n for n, m in model.named_modules() if m is layer)
    own = [("weight", layer.weight), ("bias", layer.bias)]
    return [(f"{prefix}.{n}" if prefix else n, p) for n, p in own if p is not None]
