"""Stochastic gates: learnable, differentiable L0 feature selection.

A gate ``z in [0, 1]`` multiplies each input element (or each group of elements). ``z`` is a
smoothed Bernoulli variable: a continuous random variable, reparameterised by noise, folded
into ``[0, 1]`` by the hard sigmoid ``min(1, max(0, s))``. The expected L0 norm of the gates,
``sum_j P(z_j > 0)``, is differentiable in the distribution's parameters and is returned with
the gated input, to be added to the training loss. In eval mode a gate takes the mean of its
distribution (no noise).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from perspicio._core.validate import ArgumentError

REDUCTIONS = ("none", "mean", "sum")
G = TypeVar("G", bound="StochasticGatesBase")


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ArgumentError(f"{name} must be at least 1, got {value}")


class StochasticGatesBase(nn.Module, ABC):
    """The gating and the regulariser, whatever the gate distribution.

    Args:
        n_gates: the number of gates.
        mask: integer gate ids, broadcastable to one example's shape (with or without a batch
            dimension of 1), from 0 to ``n_gates - 1``: elements with the same id share a gate.
            Without it every element of an example has its own gate (``n_gates`` of them).
        reg_weight: the factor of the L0 regulariser.
        reg_reduction: ``"sum"`` or ``"mean"`` of the gates' active probabilities, or
            ``"none"`` for the probabilities themselves.

    Example:
        >>> import torch
        >>> from perspicio.module import GaussianStochasticGates
        >>> mask = torch.tensor([0, 0, 1])  # the first two features share a gate
        >>> gates = GaussianStochasticGates(2, mask=mask, reg_reduction="none").eval()
        >>> gated, reg = gates(torch.ones(5, 3))
        >>> gated.shape, reg.shape
        (torch.Size([5, 3]), torch.Size([2]))
    """

    mask: Tensor | None

    def __init__(
        self,
        n_gates: int,
        mask: Tensor | None = None,
        reg_weight: float = 1.0,
        reg_reduction: str = "sum",
    ) -> None:
        super().__init__()
        _check_positive_int(n_gates, "n_gates")
        if mask is not None:
            if not isinstance(mask, Tensor):
                raise TypeError(f"mask must be a tensor, got {type(mask).__name__}")
            if mask.is_floating_point() or mask.is_complex():
                raise TypeError(f"mask must hold integer gate ids, got {mask.dtype}")
            top = int(mask.max())
            if top != n_gates - 1 or int(mask.min()) < 0:
                raise ArgumentError(
                    f"mask must hold gate ids 0..n_gates-1 (n_gates={n_gates}), "
                    f"got ids {int(mask.min())}..{top}"
                )
        if reg_reduction not in REDUCTIONS:
            raise ArgumentError(f"reg_reduction must be one of {REDUCTIONS}, got {reg_reduction!r}")
        self.n_gates = n_gates
        self.reg_weight = reg_weight
        self.reg_reduction = reg_reduction
        # gather needs int64 ids
        self.register_buffer("mask", None if mask is None else mask.detach().clone().long())

    def forward(self, input_tensor: Tensor) -> tuple[Tensor, Tensor]:
        """The gated input (same shape) and the weighted L0 regulariser."""
        if input_tensor.dim() < 2:
            raise ArgumentError(
                f"input_tensor must have a batch dimension and at least one more, got shape "
                f"{tuple(input_tensor.shape)}"
            )
        if self.mask is None and input_tensor[0].numel() != self.n_gates:
            raise ArgumentError(
                f"without a mask every example needs one element per gate: got "
                f"{input_tensor[0].numel()} elements for {self.n_gates} gates"
            )
        n = input_tensor.shape[0]
        gates = self._sample_gate_values(n).clamp(0, 1)  # (N, n_gates)
        if self.mask is not None:
            ids = self.mask.expand_as(input_tensor).reshape(n, -1)
            gates = gates.gather(1, ids)
        gated = input_tensor * gates.reshape(input_tensor.shape)
        probs = self._get_gate_active_probs()
        if self.reg_reduction == "sum":
            reg = probs.sum()
        elif self.reg_reduction == "mean":
            reg = probs.mean()
        else:
            reg = probs
        return gated, reg * self.reg_weight

    def get_gate_values(self, clamp: bool = True) -> Tensor:
        """The mean of each gate's distribution, shape ``(n_gates,)``, clamped into [0, 1]
        unless ``clamp=False`` (useful to rank gates that all sit at 0 or 1)."""
        values = self._get_gate_values()
        return (values.clamp(0, 1) if clamp else values).detach()

    def get_gate_active_probs(self) -> Tensor:
        """``P(gate > 0)`` for each gate, shape ``(n_gates,)``."""
        return self._get_gate_active_probs().detach()

    @abstractmethod
    def _get_gate_values(self) -> Tensor:
        """The distribution means before the hard sigmoid, shape ``(n_gates,)``."""

    @abstractmethod
    def _sample_gate_values(self, batch_size: int) -> Tensor:
        """Gate values before the hard sigmoid, shape ``(batch_size, n_gates)``: samples in
        training mode, the means in eval mode."""

    @abstractmethod
    def _get_gate_active_probs(self) -> Tensor:
        """``P(gate > 0)``, differentiable in the parameters, shape ``(n_gates,)``."""


def _pretrained(cls: type[G], name: str, value: Tensor, *args: Any, **kwargs: Any) -> G:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(value).__name__}")
    if value.dim() != 1:
        raise ArgumentError(f"{name} must be 1-D (one value per gate), got {tuple(value.shape)}")
    gates = cls(value.numel(), *args, **kwargs)
    with torch.no_grad():
        getattr(gates, name).copy_(value)
    return gates


class BinaryConcreteStochasticGates(StochasticGatesBase):
    """Gates following the hard concrete distribution (a stretched binary concrete).

    Training samples ``s = sigmoid((logit(u) + log_alpha) / temperature)`` with
    ``u ~ U(eps, 1 - eps)``, stretched to ``s * (upper_bound - lower_bound) + lower_bound`` and
    folded into [0, 1]. Eval mode uses ``sigmoid(log_alpha)`` in place of ``s``. The active
    probability is ``sigmoid(log_alpha - temperature * log(-lower_bound / upper_bound))``.

    Louizos, Welling and Kingma, "Learning Sparse Neural Networks through L0
    Regularization", ICLR 2018 (https://arxiv.org/abs/1712.01312).

    Args:
        temperature: the concrete temperature, in (0, 1) (0 would be a Bernoulli).
        lower_bound: the stretch below 0 (negative).
        upper_bound: the stretch above 1 (above 1).
        eps: keeps the uniform noise away from 0 and 1.

    Example:
        >>> import torch
        >>> from perspicio.module import BinaryConcreteStochasticGates
        >>> gates = BinaryConcreteStochasticGates(4, reg_weight=0.1).eval()
        >>> gated, reg = gates(torch.ones(2, 4))
        >>> gated.shape, reg.shape
        (torch.Size([2, 4]), torch.Size([]))
    """

    def __init__(
        self,
        n_gates: int,
        mask: Tensor | None = None,
        reg_weight: float = 1.0,
        temperature: float = 2 / 3,
        lower_bound: float = -0.1,
        upper_bound: float = 1.1,
        eps: float = 1e-8,
        reg_reduction: str = "sum",
    ) -> None:
        super().__init__(n_gates, mask=mask, reg_weight=reg_weight, reg_reduction=reg_reduction)
        if not 0 < temperature < 1:
            raise ArgumentError(f"temperature must be in (0, 1), got {temperature}")
        if not lower_bound < 0:
            raise ArgumentError(f"lower_bound must be below 0, got {lower_bound}")
        if not upper_bound > 1:
            raise ArgumentError(f"upper_bound must be above 1, got {upper_bound}")
        self.log_alpha_param = nn.Parameter(torch.empty(n_gates).normal_(0.0, 0.01))
        self.temperature = temperature
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.eps = eps
        # P(stretched s > 0) = sigmoid(log_alpha - offset)
        self.active_prob_offset = temperature * math.log(-lower_bound / upper_bound)

    def _stretch(self, s: Tensor) -> Tensor:
        return s * (self.upper_bound - self.lower_bound) + self.lower_bound

    def _sample_gate_values(self, batch_size: int) -> Tensor:
        log_alpha = self.log_alpha_param
        if not self.training:
            return self._stretch(torch.sigmoid(log_alpha)).expand(batch_size, self.n_gates)
        u = torch.empty(batch_size, self.n_gates, device=log_alpha.device)
        u.uniform_(self.eps, 1 - self.eps)
        return self._stretch(torch.sigmoid((torch.logit(u) + log_alpha) / self.temperature))

    def _get_gate_values(self) -> Tensor:
        return self._stretch(torch.sigmoid(self.log_alpha_param))

    def _get_gate_active_probs(self) -> Tensor:
        return torch.sigmoid(self.log_alpha_param - self.active_prob_offset)

    @classmethod
    def _from_pretrained(
        cls, log_alpha_param: Tensor, *args: Any, **kwargs: Any
    ) -> BinaryConcreteStochasticGates:
        """Gates with trained ``log_alpha_param`` (1-D, one per gate); the other arguments
        are the constructor's, after ``n_gates``."""
        return _pretrained(cls, "log_alpha_param", log_alpha_param, *args, **kwargs)


class GaussianStochasticGates(StochasticGatesBase):
    """Gates following a Gaussian of learned mean ``mu`` and fixed ``std``, folded into [0, 1].

    Training samples ``mu + std * n`` with ``n ~ N(0, 1)``; eval mode uses ``mu``. The active
    probability is ``Phi(mu / std)``.

    Yamada, Lindenbaum, Negahban and Kluger, "Feature Selection using Stochastic Gates",
    ICML 2020 (https://arxiv.org/abs/1810.04247).

    Args:
        std: the standard deviation of the gate noise (positive).

    Example:
        >>> import torch
        >>> from perspicio.module import GaussianStochasticGates
        >>> gates = GaussianStochasticGates._from_pretrained(torch.tensor([-1.0, 0.25, 2.0]))
        >>> gates.get_gate_values()
        tensor([0.0000, 0.2500, 1.0000])
    """

    def __init__(
        self,
        n_gates: int,
        mask: Tensor | None = None,
        reg_weight: float = 1.0,
        std: float = 0.5,
        reg_reduction: str = "sum",
    ) -> None:
        super().__init__(n_gates, mask=mask, reg_weight=reg_weight, reg_reduction=reg_reduction)
        if not std > 0:
            raise ArgumentError(f"std must be positive, got {std}")
        self.mu = nn.Parameter(torch.empty(n_gates).normal_(0.5, 0.01))
        self.std = std

    def _sample_gate_values(self, batch_size: int) -> Tensor:
        if not self.training:
            return self.mu.expand(batch_size, self.n_gates)
        noise = torch.empty(batch_size, self.n_gates, device=self.mu.device)
        return self.mu + noise.normal_(0.0, self.std)

    def _get_gate_values(self) -> Tensor:
        return self.mu

    def _get_gate_active_probs(self) -> Tensor:
        # the Gaussian CDF at mu / std
        return 0.5 * (1 + torch.erf(self.mu / (self.std * math.sqrt(2))))

    @classmethod
    def _from_pretrained(cls, mu: Tensor, *args: Any, **kwargs: Any) -> GaussianStochasticGates:
        """Gates with a trained ``mu`` (1-D, one per gate); the other arguments are the
        constructor's, after ``n_gates``."""
        return _pretrained(cls, "mu", mu, *args, **kwargs)
