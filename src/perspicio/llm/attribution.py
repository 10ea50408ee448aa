"""LLM attribution: explain a continuation of a prompt by perturbing or differentiating.

:class:`LLMAttribution` wraps a perturbation method (FeatureAblation, ShapleyValueSampling,
ShapleyValues, Lime, KernelShap) and :class:`LLMGradientAttribution` a layer-gradient
method (LayerIntegratedGradients, LayerGradientXActivation, LayerGradientShap); both explain
the log-probability (or probability) of a target continuation given an interpretable prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from copy import copy
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.attribution import Attribution
from perspicio._core.validate import ArgumentError
from perspicio.attr import (
    FeatureAblation,
    KernelShap,
    LayerGradientShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    Lime,
    ShapleyValues,
    ShapleyValueSampling,
)
from perspicio.llm.inputs import (
    ImageMaskInput,
    InterpretableInput,
    TextTemplateInput,
    TextTokenInput,
)
from perspicio.llm.result import LLMAttributionResult
from perspicio.llm.scoring import LanguageModel, PrefixCache, logits_of, target_log_probs

DEFAULT_GEN_ARGS: dict[str, Any] = {
    "max_new_tokens": 25,
    "do_sample": False,
    "temperature": None,
    "top_p": None,
}


@dataclass(frozen=True)
class ContrastiveTarget:
    """Explain why the model continues with ``target`` rather than with ``foil``.

    The explained score is ``s(target) - s(foil)`` with ``s`` the sequence log-probability
    (``attr_target='log_prob'``) or probability (``'prob'``); for one-token continuations
    the log-probability difference is the logit difference (the softmax normaliser cancels).
    Pass it as ``target``. Not in Captum.

    Example:
        >>> from perspicio.attr import ContrastiveTarget
        >>> ContrastiveTarget("yes", "no").foil
        'no'
    """

    target: str | Tensor
    foil: str | Tensor


def target_ids(tokenizer: Any, target: str | Tensor, name: str = "target") -> Tensor:
    """Token ids ``(T,)`` of a target string (no special tokens) or id tensor; never empty."""
    if isinstance(target, str):
        ids = torch.tensor(tokenizer.encode(target, add_special_tokens=False), dtype=torch.long)
    elif isinstance(target, Tensor):
        ids = target.reshape(-1).long()
    else:
        raise TypeError(f"{name} must be a str or a Tensor of token ids, got {type(target)}")
    if ids.numel() == 0:
        raise ArgumentError(f"{name} {target!r} tokenises to no tokens")
    return ids


def pretty_tokens(ids: Tensor, tokenizer: Any) -> list[str]:
    """Readable tokens: the target text cut at the tokens' offsets (no byte-level marks)."""
    ids_list = [int(i) for i in ids.reshape(-1)]
    text = tokenizer.decode(ids_list)
    try:
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        if list(enc["input_ids"]) == ids_list:
            return [text[a:b].replace("\n", "\\n").strip() for a, b in enc["offset_mapping"]]
    except (TypeError, ValueError, KeyError, NotImplementedError):
        pass
    return [tokenizer.decode([i]).replace("\n", "\\n").strip() for i in ids_list]


class _LLMBase(Attribution):
    SUPPORTED_METHODS: tuple[type, ...] = ()
    SUPPORTED_INPUTS: tuple[type, ...] = ()

    def __init__(self, attr_method: Attribution, tokenizer: Any) -> None:
        if not isinstance(attr_method, self.SUPPORTED_METHODS):
            names = ", ".join(m.__name__ for m in self.SUPPORTED_METHODS)
            raise TypeError(
                f"{type(self).__name__} wraps one of {names}; got {type(attr_method).__name__}"
            )
        super().__init__(attr_method.forward_func)
        self.model = attr_method.forward_func
        self.lm = LanguageModel(self.model)
        self.tokenizer = tokenizer
        self.device = self.lm.device

    def _check_input(self, inp: Any) -> None:
        if not isinstance(inp, self.SUPPORTED_INPUTS):
            names = ", ".join(t.__name__ for t in self.SUPPORTED_INPUTS)
            raise TypeError(f"inp must be one of {names}, got {type(inp).__name__}")

    def _target_tokens(self, inp: InterpretableInput, target: Any, gen_args: Any) -> Tensor:
        if target is not None:
            if gen_args is not None:
                raise ArgumentError(
                    "gen_args is only used to generate a target: pass one or the other"
                )
            return target_ids(self.tokenizer, target)
        generate = getattr(self.model, "generate", None)
        if not callable(generate):
            raise ArgumentError(
                f"target is None but the model ({type(self.model).__name__}) has no generate(): "
                "pass the target continuation"
            )
        model_inp = self._model_input(inp.to_model_input())
        with torch.no_grad():
            out = generate(**model_inp, **(gen_args or DEFAULT_GEN_ARGS))
        return out[0, model_inp["input_ids"].shape[1] :].detach()

    def _model_input(self, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            value = self.tokenizer.encode(value, return_tensors="pt")
        if isinstance(value, Tensor):
            return {"input_ids": value.to(self.device)}
        if isinstance(value, Mapping):
            return dict(value)
        raise TypeError(f"the input gives a model input of unsupported type {type(value)}")

    def _with_skip_tokens(self, inp: Any, skip_tokens: Any) -> Any:
        """Captum 0.8's ``attribute(..., skip_tokens=...)``: rebuild the token input."""
        if skip_tokens is None:
            return inp
        if not isinstance(inp, TextTokenInput):
            raise ArgumentError("skip_tokens applies to a TextTokenInput only")
        return TextTokenInput(inp.text, inp.tokenizer, inp.baselines, skip_tokens)

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"attribute_future is not implemented for {type(self).__name__}")


@dataclass
class _Job:
    """What the wrapped method's forward function needs besides the perturbed tensor."""

    inp: InterpretableInput
    targets: list[Tensor]  # one continuation, or (target, foil) for a contrast
    contrast: bool
    original: Tensor | None
    prefix: PrefixCache | None
    inspect: Callable[..., None] | None = None
    fed: int = 0  # target tokens already in each model input (per-step attribution)


class _StepInput(InterpretableInput):
    """A token input extended by the target's tokens but the last, which become features too."""

    def __init__(self, inp: TextTokenInput, target: Tensor) -> None:
        self.inp, self.fed = inp, target[:-1].view(1, -1).cpu()
        self.values = [*inp.values, *inp.tokenizer.convert_ids_to_tokens(self.fed[0].tolist())]
        self.n_itp_features = len(self.values)

    def to_tensor(self) -> Tensor:
        return torch.ones(1, self.n_itp_features, dtype=torch.long)

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Tensor:
        if perturbed_tensor is None:
            return torch.cat([self.inp.to_model_input(), self.fed], dim=1)
        n, device = self.inp.n_itp_features, perturbed_tensor.device
        fed = self.fed.to(device).expand(len(perturbed_tensor), -1)
        fed = torch.where(
            perturbed_tensor[:, n:] != 1, torch.full_like(fed, self.inp.baselines), fed
        )
        return torch.cat([self.inp.to_model_input(perturbed_tensor[:, :n]), fed], dim=1)

    def model_inputs(self, perturbed: Tensor) -> list[Any]:
        return list(self.to_model_input(perturbed).unsqueeze(1))


class LLMAttribution(_LLMBase):
    """Perturbation attribution of an LLM's continuation to the prompt's features.

    The wrapped method perturbs the interpretable input; each perturbed prompt is scored by
    the (log-)probability of the target continuation. Rows: the whole sequence, then each
    target token (FeatureAblation, ShapleyValueSampling, ShapleyValues); Lime and KernelShap
    explain the sequence only. Unlike Captum, the perturbed prompts are batched and share the
    unperturbed prompt's KV cache up to their first changed token, and the target is scored
    in one teacher-forced pass (``forward_in_tokens`` and ``use_cached_outputs`` give the
    same numbers, up to rounding).

    Args:
        attr_method: a FeatureAblation, ShapleyValueSampling, ShapleyValues, Lime or
            KernelShap instance built on the model (a Hugging Face causal LM or any
            ``forward(input_ids) -> logits`` module).
        tokenizer: the model's tokenizer.
        attr_target: ``'log_prob'`` or ``'prob'``.

    Example:
        >>> import torch
        >>> from perspicio.attr import FeatureAblation, LLMAttribution, TextTokenInput
        >>> from perspicio.testing.llm import TinyCausalLM, WordTokenizer
        >>> tok = WordTokenizer(["<unk>", "the", "cat", "sat", "on", "mat"])
        >>> llm = LLMAttribution(FeatureAblation(TinyCausalLM(vocab=6)), tok)
        >>> res = llm.attribute(TextTokenInput("the cat sat", tok), target="on the mat")
        >>> res.seq_attr.shape, res.token_attr.shape
        (torch.Size([3]), torch.Size([3, 3]))
    """

    SUPPORTED_METHODS = (FeatureAblation, ShapleyValueSampling, ShapleyValues, Lime, KernelShap)
    SUPPORTED_PER_TOKEN_ATTR_METHODS = (FeatureAblation, ShapleyValueSampling, ShapleyValues)
    SUPPORTED_INPUTS: tuple[type, ...] = (TextTemplateInput, TextTokenInput, ImageMaskInput)

    def __init__(self, attr_method: Any, tokenizer: Any, attr_target: str = "log_prob") -> None:
        if attr_target not in ("log_prob", "prob"):
            raise ArgumentError(f"attr_target must be 'log_prob' or 'prob', got {attr_target!r}")
        super().__init__(attr_method, tokenizer)
        self.attr_method = copy(attr_method)
        self.attr_method.forward_func = self._forward_func
        self.include_per_token_attr = isinstance(attr_method, self.SUPPORTED_PER_TOKEN_ATTR_METHODS)
        self.attr_target = attr_target

    def attribute(  # type: ignore[override]
        self,
        inp: InterpretableInput,
        target: str | Tensor | ContrastiveTarget | None = None,
        num_trials: int = 1,
        gen_args: dict[str, Any] | None = None,
        use_cached_outputs: bool = True,
        _inspect_forward: Callable[..., None] | None = None,
        forward_in_tokens: bool = True,
        skip_tokens: list[int] | list[str] | None = None,
        step_attr: bool = False,
        **kwargs: Any,
    ) -> LLMAttributionResult:
        """Attribute ``target`` (generated with ``gen_args`` when None) to ``inp``.

        Args:
            num_trials: repeat the wrapped method this many times and average (for sampling
                methods and random baselines).
            use_cached_outputs, forward_in_tokens: accepted for Captum compatibility; the
                numbers do not depend on them.
            skip_tokens: Captum 0.8's spelling of ``TextTokenInput(skip_tokens=...)``.
            step_attr: also perturb the target's own tokens (teacher-forced context) and
                return the per-step matrix ``result.step_attr``: each target token attributed
                to the prompt and to the earlier target tokens. Needs a ``TextTokenInput``
                and a per-token method. Not in Captum.
            **kwargs: passed to the wrapped method's ``attribute``.
        """
        inp = self._with_skip_tokens(inp, skip_tokens)
        self._check_input(inp)
        if isinstance(num_trials, bool) or not isinstance(num_trials, int) or num_trials < 1:
            raise ArgumentError(f"num_trials must be a positive int, got {num_trials!r}")
        if step_attr:
            return self._steps(inp, target, gen_args, num_trials, _inspect_forward, kwargs)
        job = self._job(inp, target, gen_args, _inspect_forward)
        rows = 1 if job.contrast or not self.include_per_token_attr else 1 + len(job.targets[0])
        total: Tensor | int = 0
        for _ in range(num_trials):
            attr = self.attr_method.attribute(
                inp.to_tensor().to(self.device), additional_forward_args=(job,), **kwargs
            )
            total = total + attr.reshape(rows, -1)
        assert isinstance(total, Tensor)
        attr = inp.format_attr(total / num_trials)
        per_token = rows > 1
        probs = None
        if not job.contrast:
            probs = self._scores(replace(job, inspect=None), inp.to_tensor().to(self.device))
            probs = probs.exp() if self.attr_target == "log_prob" else probs
        return LLMAttributionResult(
            seq_attr=attr[0],
            token_attr=attr[1:] if per_token else None,
            output_probs=None if probs is None else probs[0, 1:],
            input_tokens=inp.values,
            output_tokens=pretty_tokens(job.targets[0], self.tokenizer),
            inp=inp,
        )

    def _steps(
        self, inp: Any, target: Any, gen_args: Any, trials: int, inspect: Any, kwargs: Any
    ) -> LLMAttributionResult:
        """Per-step matrix: the target's tokens but the last are features too."""
        if not isinstance(inp, TextTokenInput) or not self.include_per_token_attr:
            raise ArgumentError(
                "step_attr=True needs a TextTokenInput and FeatureAblation, ShapleyValueSampling "
                f"or ShapleyValues; got {type(inp).__name__} and {type(self.attr_method).__name__}"
            )
        if isinstance(target, ContrastiveTarget):
            raise ArgumentError("step_attr=True explains one continuation, not a contrast")
        job = self._job(inp, target, gen_args, inspect)
        n_out = len(job.targets[0])
        job.inp, job.fed = _StepInput(inp, job.targets[0]), n_out - 1
        total: Tensor | int = 0
        for _ in range(trials):
            attr = self.attr_method.attribute(
                job.inp.to_tensor().to(self.device), additional_forward_args=(job,), **kwargs
            )
            total = total + attr.reshape(1 + n_out, -1)
        assert isinstance(total, Tensor)
        attr, n = total / trials, inp.n_itp_features
        steps = torch.cat([attr[1:], attr.new_zeros(n_out, 1)], dim=1)  # (T, n + T)
        return LLMAttributionResult(
            seq_attr=attr[0, :n],
            token_attr=attr[1:, :n],
            input_tokens=inp.values,
            output_tokens=pretty_tokens(job.targets[0], self.tokenizer),
            inp=inp,
            step_attr=steps,
        )

    def _job(self, inp: Any, target: Any, gen_args: Any, inspect: Any) -> _Job:
        if isinstance(target, ContrastiveTarget):
            if gen_args is not None:
                raise ArgumentError("gen_args is only used to generate a target, not a contrast")
            targets = [
                target_ids(self.tokenizer, target.target, "target"),
                target_ids(self.tokenizer, target.foil, "foil"),
            ]
        else:
            targets = [self._target_tokens(inp, target, gen_args)]
        original = inp.to_model_input()
        if isinstance(original, str):
            original = self.tokenizer.encode(original, return_tensors="pt")
        if isinstance(original, Tensor):
            original = original.to(self.device)
            prefix = self.lm.prefix_cache(original)
        else:
            original, prefix = None, None
        return _Job(inp, targets, isinstance(target, ContrastiveTarget), original, prefix, inspect)

    def _forward_func(self, perturbed: Tensor, job: _Job) -> Tensor:
        """``(k, n_itp)`` perturbed interpretable tensors to ``(k, rows)`` (or ``(k,)``)."""
        scores = self._scores(job, perturbed)
        if not job.contrast and not self.include_per_token_attr:
            return scores[:, 0]
        return scores

    def _scores(self, job: _Job, perturbed: Tensor) -> Tensor:
        """``(k, 1 + T)``: sequence then token scores; ``(k, 1)`` for a contrast."""
        inputs = job.inp.model_inputs(perturbed)
        logp = [self._log_probs(inputs, t, job) for t in job.targets]  # each (k, T_i)
        seq = [lp.sum(1, keepdim=True) for lp in logp]
        if self.attr_target == "prob":
            seq, logp = [s.exp() for s in seq], [lp.exp() for lp in logp]
        if job.inspect is not None:
            for inp_i, row in zip(inputs, torch.cat([seq[0], logp[0]], 1).tolist()):
                prompt = inp_i if isinstance(inp_i, str) else self.tokenizer.decode(inp_i[0])
                job.inspect(prompt, self.tokenizer.decode(job.targets[0]), row)
        if job.contrast:
            return seq[0] - seq[1]
        return torch.cat([seq[0], logp[0]], dim=1)

    def _log_probs(self, inputs: list[Any], target: Tensor, job: _Job) -> Tensor:
        """Per-token log-probabilities ``(k, T)`` of ``target`` after each model input."""
        rows: list[Tensor | None] = [None] * len(inputs)
        groups: dict[int, list[int]] = {}
        ids: list[Any] = []
        for i, value in enumerate(inputs):
            if isinstance(value, str):
                value = self.tokenizer.encode(value, return_tensors="pt")
            ids.append(value)
            if isinstance(value, Tensor):
                groups.setdefault(value.shape[-1], []).append(i)
            else:
                rows[i] = self._mapping_log_probs(value, target)
        with torch.no_grad():
            for members in groups.values():
                stack = torch.cat([ids[i].to(self.device) for i in members])
                prompts, fed = (
                    stack[:, : stack.shape[1] - job.fed],
                    stack[:, stack.shape[1] - job.fed :],
                )
                lp = target_log_probs(
                    self.lm, prompts, target, job.prefix, job.original, fed if job.fed else None
                )
                for i, row in zip(members, lp):
                    rows[i] = row
        return torch.stack([r for r in rows if r is not None])

    def _mapping_log_probs(self, model_inp: Mapping[str, Any], target: Tensor) -> Tensor:
        """A processor's output (e.g. a multimodal prompt): one full forward pass."""
        ids = model_inp["input_ids"].to(self.device)
        full = torch.cat([ids, target.to(ids.device).view(1, -1)], dim=1)
        kwargs = {**model_inp, "input_ids": full, "attention_mask": torch.ones_like(full)}
        with torch.no_grad():
            logits = logits_of(self.model(**kwargs))
        picked = logits[0, ids.shape[1] - 1 : full.shape[1] - 1]
        picked = picked.to(torch.promote_types(picked.dtype, torch.float32)).log_softmax(-1)
        return picked.gather(-1, target.to(ids.device).view(-1, 1)).squeeze(-1)


class _GradientForward(nn.Module):
    """Log-probability of target token ``step`` after the prompt and targets ``< step``."""

    def __init__(self, owner: LLMGradientAttribution) -> None:
        super().__init__()
        self.model = owner.model
        self.owner = owner

    def forward(self, perturbed: Tensor, inp: TextTokenInput, target: Tensor, step: int) -> Tensor:
        ids = inp.to_model_input(perturbed).to(perturbed.device)
        before = target[:step].to(ids.device).expand(ids.shape[0], -1)
        logits = self.owner.lm.logits(torch.cat([ids, before], dim=1))
        return logits[:, -1].log_softmax(-1)[:, int(target[step])]


class LLMGradientAttribution(_LLMBase):
    """Gradient attribution of an LLM's continuation to the prompt's tokens.

    The wrapped layer method (typically on the token embedding layer) explains the
    log-probability of each target token in turn, given the prompt and the earlier target
    tokens; attributions are summed over the layer's hidden dimension. ``seq_attr`` is the
    sum over target tokens; ``step_attr`` (not in Captum) keeps each step's attribution to
    the earlier target tokens too.

    Example:
        >>> import torch
        >>> from perspicio.attr import (LayerIntegratedGradients, LLMGradientAttribution,
        ...                             TextTokenInput)
        >>> from perspicio.testing.llm import TinyCausalLM, WordTokenizer
        >>> tok = WordTokenizer(["<unk>", "the", "cat", "sat", "on", "mat"])
        >>> model = TinyCausalLM(vocab=6)
        >>> llm = LLMGradientAttribution(LayerIntegratedGradients(model, model.embed), tok)
        >>> res = llm.attribute(TextTokenInput("the cat sat", tok), target="on the")
        >>> res.token_attr.shape, res.step_attr.shape
        (torch.Size([2, 3]), torch.Size([2, 5]))
    """

    SUPPORTED_METHODS = (LayerGradientShap, LayerGradientXActivation, LayerIntegratedGradients)
    SUPPORTED_INPUTS: tuple[type, ...] = (TextTokenInput,)

    def __init__(self, attr_method: Any, tokenizer: Any) -> None:
        super().__init__(attr_method, tokenizer)
        self.attr_method = copy(attr_method)
        self.attr_method.forward_func = _GradientForward(self)

    def attribute(  # type: ignore[override]
        self,
        inp: InterpretableInput,
        target: str | Tensor | None = None,
        gen_args: dict[str, Any] | None = None,
        skip_tokens: list[int] | list[str] | None = None,
        **kwargs: Any,
    ) -> LLMAttributionResult:
        """Attribute each token of ``target`` (generated when None) to ``inp``'s tokens.

        Args:
            skip_tokens: Captum 0.8's spelling of ``TextTokenInput(skip_tokens=...)``.
            **kwargs: passed to the wrapped method's ``attribute`` (e.g. ``n_steps``).
        """
        inp = self._with_skip_tokens(inp, skip_tokens)
        self._check_input(inp)
        assert isinstance(inp, TextTokenInput)
        target_tokens = self._target_tokens(inp, target, gen_args).to(self.device)
        length, n_out = inp.inp_tensor.shape[1], len(target_tokens)
        itp = inp.to_tensor().to(self.device)
        if isinstance(self.attr_method, LayerGradientShap):  # it adds noise to the inputs
            itp = itp.to(torch.get_default_dtype())
        rows = []
        for step in range(n_out):
            attr = self.attr_method.attribute(
                itp,
                additional_forward_args=(inp, target_tokens, step),
                **kwargs,
            )
            rows.append(attr.detach().reshape(length + step, -1).sum(-1))
        steps = torch.zeros(n_out, length + n_out, dtype=rows[0].dtype, device=rows[0].device)
        for step, row in enumerate(rows):
            steps[step, : length + step] = row
        prompt = steps[:, :length]
        if inp.itp_mask is not None:
            prompt = prompt[:, inp.itp_mask[0]]
        return LLMAttributionResult(
            seq_attr=prompt.sum(0),
            token_attr=prompt,
            input_tokens=inp.values,
            output_tokens=pretty_tokens(target_tokens, self.tokenizer),
            inp=inp,
            step_attr=torch.cat([prompt, steps[:, length:]], dim=1),
        )
