"""AttnLRP: layer-wise relevance propagation through attention (Achtibat et al., ICML 2024).

https://arxiv.org/abs/2402.05602. Relevance is propagated as input times a *modified*
gradient, so one backward pass per target token gives the relevance of every position:

- linear maps (projections, embeddings, residual sums): the ε-rule with ε → 0, which is the
  ordinary gradient times input (biases absorb their share);
- elementwise nonlinearities (GELU, SiLU, ...): the identity rule, relevance passes
  unchanged (the modified gradient is ``f(x) / x``);
- LayerNorm and RMSNorm: the identity rule on the normalisation (the divisor is treated as
  a constant, so the norm is linear in its input);
- products of two activations (``q @ k^T``, ``attention @ v``, the gate times the up
  projection of a gated MLP): the uniform rule, half the relevance to each factor (half
  the gradient);
- softmax: the AttnLRP rule ``R_in = x * (R_out - s * sum(R_out))``, which equals the
  ordinary gradient times input. With ``softmax="constant"`` the attention weights are
  constants instead (CP-LRP, Ali et al., 2022), which conserves relevance exactly.

The rules are installed by :func:`attnlrp_rules`, a context manager: the module rules
(norms, activations) as a :class:`perspicio.lrp.Composite` of
:class:`perspicio.lrp.PropagationRule` subclasses, and a torch function mode for the
functional products and softmax inside attention and gated MLPs; nothing is left on the
model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from perspicio._core.hooks import handles
from perspicio._core.validate import ArgumentError
from perspicio.llm.attribution import (
    DEFAULT_GEN_ARGS,
    ContrastiveTarget,
    pretty_tokens,
    target_ids,
)
from perspicio.llm.inputs import TextTokenInput
from perspicio.llm.result import LLMAttributionResult
from perspicio.llm.scoring import LanguageModel
from perspicio.lrp import Composite, PropagationRule

_PRODUCTS = {torch.matmul, torch.bmm, torch.mul, Tensor.__matmul__, Tensor.__mul__,
             Tensor.__rmul__, Tensor.matmul, Tensor.mul, Tensor.bmm}  # fmt: skip
_SOFTMAX = {torch.softmax, nn.functional.softmax, Tensor.softmax}
_ACTIVATION_NAMES = ("GELU", "SiLU", "Swish", "Tanh", "Sigmoid", "ReLU", "Mish", "Activation")


def _is_variable(x: Any) -> bool:
    return isinstance(x, Tensor) and x.requires_grad and not isinstance(x, nn.Parameter)


class _Rules(TorchFunctionMode):
    """Uniform rule for products of two activations; softmax as the chosen rule."""

    def __init__(self, constant_softmax: bool, softmaxes: list[tuple[Tensor, Tensor]]) -> None:
        super().__init__()
        self.constant_softmax = constant_softmax
        self.softmaxes = softmaxes  # (input, output) of each softmax, for the accounting

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is nn.functional.scaled_dot_product_attention:
            raise ArgumentError(
                "AttnLRP needs the attention's products and softmax as separate operations: "
                "the model uses a fused scaled_dot_product_attention (for Hugging Face models "
                "load them with attn_implementation='eager')"
            )
        if func in _PRODUCTS and len(args) == 2 and all(_is_variable(a) for a in args):
            a, b = args
            return 0.5 * (func(a, b.detach()) + func(a.detach(), b))
        out = func(*args, **kwargs)
        if func in _SOFTMAX and isinstance(out, Tensor) and out.requires_grad:
            if self.constant_softmax:
                return out.detach()
            self.softmaxes.append((args[0], out))
        return out


class NormRule(PropagationRule):
    """LayerNorm/RMSNorm as a linear map: the normalising divisor is held constant.

    ``y = (x - mean(x)) * s * w + b`` (no centring for RMSNorm) with ``s`` a constant, so
    the modified gradient is ``c - mean(c)`` with ``c = grad * s * w`` (``c`` for RMSNorm).
    """

    def backward(self, call: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        m, x = call.module, call.x
        weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
        eps = getattr(m, "eps", getattr(m, "variance_epsilon", 1e-5))
        centring = isinstance(m, nn.LayerNorm) or bias is not None
        centred = x - x.mean(-1, keepdim=True) if centring else x
        wide = centred.to(torch.promote_types(x.dtype, torch.float32))
        c = grad_out * (wide.pow(2).mean(-1, keepdim=True) + eps).rsqrt().to(x.dtype)
        if weight is not None:
            c = c * weight.detach()
        return (c - c.mean(-1, keepdim=True) if centring else c,)


class PassRule(PropagationRule):
    """An elementwise nonlinearity passes relevance unchanged: the gradient is ``f(x) / x``."""

    def backward(self, call: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, y = call.x, call.y
        if y.shape != x.shape:
            return (call.plain_grad(grad_out),)
        safe = torch.where(x == 0, torch.ones_like(x), x)
        return (torch.where(x == 0, torch.zeros_like(x), y / safe) * grad_out,)


def is_norm(module: nn.Module) -> bool:
    """LayerNorm, or a module whose class name ends in ``RMSNorm``/``LayerNorm``."""
    name = type(module).__name__
    return isinstance(module, nn.LayerNorm) or name.endswith(("RMSNorm", "LayerNorm"))


def is_activation(module: nn.Module) -> bool:
    """A parameter-free leaf module named like an activation (GELU, SiLU, ...)."""
    name = type(module).__name__
    has_params = any(True for _ in module.parameters(recurse=False))
    return (
        not has_params and not list(module.children()) and any(n in name for n in _ACTIVATION_NAMES)
    )


class AttnLRPComposite(Composite):
    """The module rules of AttnLRP: :class:`NormRule` on norms, :class:`PassRule` on
    activations (the functional products and softmax are handled by :func:`attnlrp_rules`)."""

    def __init__(self) -> None:
        norm, passing = NormRule(), PassRule()
        super().__init__(
            {}, lookup=lambda m: norm if is_norm(m) else passing if is_activation(m) else None
        )


@contextmanager
def attnlrp_rules(
    model: nn.Module,
    softmax: str = "attnlrp",
    softmaxes: list[tuple[Tensor, Tensor]] | None = None,
) -> Iterator[None]:
    """Inside the block, gradients of ``model`` are AttnLRP's modified gradients.

    ``softmaxes``, when given, receives the ``(input, output)`` of every softmax.
    """
    if softmax not in ("attnlrp", "constant"):
        raise ArgumentError(f"softmax must be 'attnlrp' or 'constant', got {softmax!r}")
    with ExitStack() as stack:
        stack.enter_context(AttnLRPComposite().context(model))
        stack.enter_context(_Rules(softmax == "constant", [] if softmaxes is None else softmaxes))
        yield


@contextmanager
def _embedding_outputs(model: nn.Module, found: list[tuple[str, Tensor]]) -> Iterator[None]:
    """Make every embedding output a fresh leaf that requires grad, and record it."""

    def hook(name: str) -> Any:
        def record(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
            leaf = output.detach().requires_grad_(True)
            found.append((name, leaf))
            return leaf

        return record

    hs = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
          if isinstance(m, nn.Embedding)]  # fmt: skip
    with handles(*hs):
        yield


def _absorbed(tensors: list[Tensor], grads: tuple[Tensor | None, ...]) -> Tensor:
    """Relevance in minus relevance out, summed over the softmaxes: output relevance
    ``s * grad_s`` less input relevance ``x * grad_x`` (masked scores have zero gradient)."""
    total = torch.zeros((), dtype=torch.float64)
    for i in range(0, len(tensors), 2):
        x, s = tensors[i], tensors[i + 1]
        gx, gs = grads[i], grads[i + 1]
        if gx is None or gs is None:
            continue
        into = torch.where(gx == 0, torch.zeros_like(gx), x.detach() * gx)
        total = total + (s.detach() * gs).double().sum().cpu() - into.double().sum().cpu()
    return total


@dataclass
class Relevance:
    """AttnLRP relevances of one sequence, for ``T`` explained steps."""

    embeddings: dict[str, Tensor]
    """``(T, n)`` relevance of each embedding module's output, by module name."""
    scores: Tensor
    """``(T,)`` the explained logits (or logit differences)."""
    softmax_absorbed: Tensor
    """``(T,)`` relevance the softmax rule did not pass on (zero with ``softmax="constant"``)."""


class AttnLRP:
    """AttnLRP relevance of a continuation's tokens to the prompt (and earlier outputs).

    One forward pass over prompt and target, then one backward pass per target token; the
    relevance of a position is its token embedding times the modified gradient, summed over
    the hidden dimension. Explains the target token's logit (or, for a
    :class:`~perspicio.attr.ContrastiveTarget` of single tokens, the logit difference).
    Use eager attention (``attn_implementation="eager"``) for Hugging Face models: fused
    attention kernels hide the products and softmax the rules act on.

    Args:
        model: a Hugging Face causal LM or any ``forward(input_ids) -> logits`` module.
        tokenizer: its tokenizer.
        softmax: ``"attnlrp"`` (the paper's softmax rule) or ``"constant"`` (attention
            weights held constant, CP-LRP: exact conservation).

    Example:
        >>> import torch
        >>> from perspicio.attr import TextTokenInput
        >>> from perspicio.llm.attnlrp import AttnLRP
        >>> from perspicio.testing.llm import TinyCausalLM, WordTokenizer
        >>> tok = WordTokenizer(["<unk>", "the", "cat", "sat", "on", "mat"])
        >>> res = AttnLRP(TinyCausalLM(vocab=6), tok).attribute(
        ...     TextTokenInput("the cat sat", tok), target="on the")
        >>> res.token_attr.shape, res.step_attr.shape
        (torch.Size([2, 3]), torch.Size([2, 5]))
    """

    def __init__(self, model: nn.Module, tokenizer: Any, softmax: str = "attnlrp") -> None:
        if softmax not in ("attnlrp", "constant"):
            raise ArgumentError(f"softmax must be 'attnlrp' or 'constant', got {softmax!r}")
        self.model, self.tokenizer, self.softmax = model, tokenizer, softmax
        self.lm = LanguageModel(model)

    def relevance(self, input_ids: Tensor, targets: Tensor, foils: Tensor | None = None) -> Any:
        """Relevance of every embedding output for each step's target logit.

        Args:
            input_ids: ``(1, n)`` the prompt followed by the target tokens but the last.
            targets: ``(T,)`` token ids; step ``t`` explains the logit of ``targets[t]`` at
                position ``n - T + t``.
            foils: optional ``(T,)`` ids whose logits are subtracted.

        Returns:
            a :class:`Relevance`: per embedding module ``(T, n)`` relevances, the explained
            scores ``(T,)`` and what the softmax rule absorbed ``(T,)``. The embeddings'
            relevances and the absorbed part add up to the score, less what biases absorb.
        """
        found: list[tuple[str, Tensor]] = []
        softmaxes: list[tuple[Tensor, Tensor]] = []
        n, steps = input_ids.shape[1], len(targets)
        with torch.enable_grad(), _embedding_outputs(self.model, found):
            with attnlrp_rules(self.model, self.softmax, softmaxes):
                logits = self.lm.logits(input_ids)[0, n - steps :]  # (T, V)
            rows = torch.arange(steps, device=logits.device)
            scores = logits[rows, targets.to(logits.device)]
            if foils is not None:
                scores = scores - logits[rows, foils.to(logits.device)]
            leaves = [leaf for _, leaf in found]
            sm = [t for pair in softmaxes for t in pair]
            out: dict[str, list[Tensor]] = {name: [] for name, _ in found}
            absorbed = []
            for t in range(steps):
                grads = torch.autograd.grad(scores[t], leaves + sm, retain_graph=t < steps - 1,
                                            allow_unused=True)  # fmt: skip
                for (name, leaf), g in zip(found, grads):
                    r = torch.zeros_like(leaf) if g is None else leaf.detach() * g
                    out[name].append(r.reshape(-1, n, r.shape[-1]).sum(-1)[0])
                absorbed.append(_absorbed(sm, grads[len(leaves) :]))
        return Relevance(
            {k: torch.stack(v) for k, v in out.items()},
            scores.detach(),
            torch.stack(absorbed) if absorbed else scores.new_zeros(0),
        )

    def attribute(
        self,
        inp: TextTokenInput,
        target: str | Tensor | ContrastiveTarget | None = None,
        gen_args: dict[str, Any] | None = None,
    ) -> LLMAttributionResult:
        """Per-step AttnLRP relevances as an :class:`~perspicio.attr.LLMAttributionResult`.

        ``token_attr`` holds each target token's relevance on the prompt's features,
        ``step_attr`` also on the earlier target tokens, ``seq_attr`` the sum over steps.
        """
        if not isinstance(inp, TextTokenInput):
            raise TypeError(f"inp must be a TextTokenInput, got {type(inp).__name__}")
        implementation = getattr(getattr(self.model, "config", None), "_attn_implementation", None)
        if implementation not in (None, "eager"):
            raise ArgumentError(
                f"AttnLRP needs eager attention, the model uses {implementation!r}: load it "
                "with attn_implementation='eager'"
            )
        foils = None
        if isinstance(target, ContrastiveTarget):
            targets = target_ids(self.tokenizer, target.target)
            foils = target_ids(self.tokenizer, target.foil, "foil")
            if len(targets) != 1 or len(foils) != 1:
                raise ArgumentError(
                    f"AttnLRP contrasts single tokens; {target!r} has {len(targets)} and "
                    f"{len(foils)} tokens"
                )
        elif target is None:
            targets = _generate(self.model, inp, gen_args)
        else:
            targets = target_ids(self.tokenizer, target)
        device = self.lm.device
        prompt = inp.inp_tensor.to(device)
        ids = torch.cat([prompt, targets[:-1].to(device).view(1, -1)], dim=1)
        relevances = self.relevance(ids, targets, foils).embeddings
        tokens = relevances[_token_embedding(self.model, relevances)].detach()  # (T, n)
        length = prompt.shape[1]
        steps = torch.zeros(len(targets), length + len(targets), dtype=tokens.dtype)
        steps[:, : ids.shape[1]] = tokens.cpu()
        steps = torch.tril(steps, diagonal=length - 1)
        prompt_attr = steps[:, :length]
        if inp.itp_mask is not None:
            prompt_attr = prompt_attr[:, inp.itp_mask[0]]
        return LLMAttributionResult(
            seq_attr=prompt_attr.sum(0),
            token_attr=prompt_attr,
            input_tokens=inp.values,
            output_tokens=pretty_tokens(targets, self.tokenizer),
            inp=inp,
            step_attr=torch.cat([prompt_attr, steps[:, length:]], dim=1),
        )


def _token_embedding(model: nn.Module, relevances: dict[str, Tensor]) -> str:
    """The name of the token embedding among the recorded embedding modules."""
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        emb = getter()
        for name, module in model.named_modules():
            if module is emb and name in relevances:
                return name
    if not relevances:
        raise ArgumentError(f"{type(model).__name__} has no nn.Embedding to attribute to")
    return next(iter(relevances))


def _generate(model: nn.Module, inp: TextTokenInput, gen_args: dict[str, Any] | None) -> Tensor:
    generate = getattr(model, "generate", None)
    if not callable(generate):
        raise ArgumentError("target is None but the model has no generate(): pass the target")
    ids = inp.inp_tensor.to(LanguageModel(model).device)
    with torch.no_grad():
        out = generate(input_ids=ids, **(gen_args or DEFAULT_GEN_ARGS))
    return out[0, ids.shape[1] :]
