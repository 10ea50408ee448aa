"""The result object (opt-in): attributions with scores, names, arguments, plots and storage."""

from __future__ import annotations

from perspicio.result.explanation import Explanation, explain

__all__ = ["Explanation", "explain"]
