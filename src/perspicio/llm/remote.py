"""Perturbation attribution against a hosted model that reports log-probabilities."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError
from perspicio.llm.attribution import DEFAULT_GEN_ARGS, LLMAttribution, _Job
from perspicio.llm.inputs import InterpretableInput


class RemoteLLMProvider(ABC):
    """A hosted LLM: text generation and the log-probabilities of a given continuation."""

    @abstractmethod
    def generate(self, prompt: str, **gen_args: Any) -> str:
        """The model's continuation of ``prompt``."""

    @abstractmethod
    def get_logprobs(
        self, input_prompt: str, target_str: str, tokenizer: Any = None
    ) -> list[float]:
        """``log p`` of each token of ``target_str`` after ``input_prompt`` (one per token)."""


class VLLMProvider(RemoteLLMProvider):
    """A vLLM server through its OpenAI-compatible API (needs the ``openai`` package).

    Args:
        api_url: the server's base URL (``http://host:8000/v1``).
        model_name: the served model; the server's first model when None.
    """

    def __init__(self, api_url: str, model_name: str | None = None) -> None:
        if not isinstance(api_url, str) or not api_url.strip():
            raise ArgumentError(f"api_url must be a non-empty URL, got {api_url!r}")
        try:
            from openai import OpenAI
        except ImportError as err:
            raise ImportError(
                "VLLMProvider needs the 'openai' package: pip install openai"
            ) from err
        self.api_url = api_url
        self.client = OpenAI(base_url=api_url, api_key=os.getenv("OPENAI_API_KEY", "EMPTY"))
        if model_name is None:
            models = self.client.models.list().data
            if not models:
                raise ArgumentError(f"the server at {api_url} lists no models")
            model_name = models[0].id
        self.model_name = model_name

    def generate(self, prompt: str, **gen_args: Any) -> str:
        args = {k: v for k, v in gen_args.items() if k != "do_sample" and v is not None}
        args.setdefault("max_tokens", args.pop("max_new_tokens", 25))
        response = self.client.completions.create(model=self.model_name, prompt=prompt, **args)
        if not response.choices:
            raise KeyError("the completion response has no choices")
        return str(response.choices[0].text)

    def get_logprobs(
        self, input_prompt: str, target_str: str, tokenizer: Any = None
    ) -> list[float]:
        if tokenizer is None:
            raise ArgumentError("VLLMProvider.get_logprobs needs the tokenizer")
        if not target_str:
            raise ArgumentError("target_str is empty")
        n = len(tokenizer.encode(target_str, add_special_tokens=False))
        response = self.client.completions.create(
            model=self.model_name, prompt=input_prompt + target_str, temperature=0.0,
            max_tokens=1, extra_body={"prompt_logprobs": 0},
        )  # fmt: skip
        per_position = (
            getattr(response.choices[0], "prompt_logprobs", None) if response.choices else None
        )
        if not per_position:
            raise KeyError("the completion response has no prompt_logprobs")
        out = [float(next(iter(p.values()))["logprob"]) for p in per_position[-n:]]
        if len(out) != n:
            raise ArgumentError(f"expected {n} log-probabilities, the server gave {len(out)}")
        return out


class RemoteLLMAttribution(LLMAttribution):
    """:class:`~perspicio.attr.LLMAttribution` scored by a :class:`RemoteLLMProvider`.

    Each perturbed prompt is sent as text; the provider returns the target tokens'
    log-probabilities. ``attr_method`` may be built on any placeholder forward function.

    Example:
        >>> from perspicio.attr import FeatureAblation, TextTemplateInput
        >>> from perspicio.llm.remote import RemoteLLMAttribution, RemoteLLMProvider
        >>> from perspicio.testing.llm import WordTokenizer
        >>> class Echo(RemoteLLMProvider):  # likes prompts that mention cats
        ...     def generate(self, prompt, **gen_args):
        ...         return "yes"
        ...     def get_logprobs(self, input_prompt, target_str, tokenizer=None):
        ...         return [0.0 if "cat" in input_prompt else -2.0]
        >>> tok = WordTokenizer(["<unk>", "yes"])
        >>> llm = RemoteLLMAttribution(FeatureAblation(lambda x: x), tok, Echo())
        >>> inp = TextTemplateInput("{} and {}", ["cat", "dog"])
        >>> llm.attribute(inp, target="yes").seq_attr
        tensor([2., 0.])
    """

    def __init__(
        self,
        attr_method: Any,
        tokenizer: Any,
        provider: RemoteLLMProvider,
        attr_target: str = "log_prob",
    ) -> None:
        if not isinstance(provider, RemoteLLMProvider):
            raise TypeError(f"provider must be a RemoteLLMProvider, got {type(provider).__name__}")
        super().__init__(attr_method, tokenizer, attr_target)
        self.provider = provider
        self.device = torch.device("cpu")

    def _target_tokens(self, inp: InterpretableInput, target: Any, gen_args: Any) -> Tensor:
        if target is not None:
            return super()._target_tokens(inp, target, gen_args)
        text = self.provider.generate(
            self._prompt(inp.to_model_input()), **(gen_args or DEFAULT_GEN_ARGS)
        )
        return super()._target_tokens(inp, text, None)

    def _prompt(self, model_input: Any) -> str:
        if isinstance(model_input, Tensor):
            return str(self.tokenizer.decode(model_input.reshape(-1)))
        if isinstance(model_input, str):
            return model_input
        raise TypeError(f"a remote prompt must be text or token ids, got {type(model_input)}")

    def _job(self, inp: Any, target: Any, gen_args: Any, inspect: Any) -> _Job:
        job = super()._job(inp, target, gen_args, inspect)
        job.prefix = None
        return job

    def _log_probs(self, inputs: list[Any], target: Tensor, job: _Job) -> Tensor:
        text = str(self.tokenizer.decode(target))
        rows = []
        for value in inputs:
            got = self.provider.get_logprobs(self._prompt(value), text, self.tokenizer)
            if len(got) != len(target):
                raise ArgumentError(
                    f"the provider gave {len(got)} log-probabilities for {len(target)} target tokens"
                )
            rows.append(torch.tensor(got))
        return torch.stack(rows)
