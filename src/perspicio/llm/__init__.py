"""Attribution for large language models (Captum's LLM API, plus AttnLRP and contrasts)."""

# The wrappers take their methods from perspicio.attr, which re-exports them: import it first.
from perspicio import attr as _attr  # noqa: F401  # isort: skip

from perspicio.llm.attnlrp import AttnLRP, Relevance, attnlrp_rules
from perspicio.llm.attribution import (
    DEFAULT_GEN_ARGS,
    ContrastiveTarget,
    LLMAttribution,
    LLMGradientAttribution,
)
from perspicio.llm.inputs import (
    ImageMaskInput,
    InterpretableInput,
    ProductBaselines,
    TextTemplateInput,
    TextTokenInput,
)
from perspicio.llm.remote import RemoteLLMAttribution, RemoteLLMProvider, VLLMProvider
from perspicio.llm.result import LLMAttributionResult

__all__ = [
    "AttnLRP",
    "DEFAULT_GEN_ARGS",
    "ContrastiveTarget",
    "ImageMaskInput",
    "InterpretableInput",
    "LLMAttribution",
    "LLMAttributionResult",
    "LLMGradientAttribution",
    "ProductBaselines",
    "Relevance",
    "RemoteLLMAttribution",
    "RemoteLLMProvider",
    "TextTemplateInput",
    "TextTokenInput",
    "VLLMProvider",
    "attnlrp_rules",
]
