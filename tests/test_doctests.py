"""Every docstring ``Example:`` in the package runs as a doctest.

Modules of an optional extra that is not installed are skipped, not failed: their examples
need the extra (the insights examples need the web stack).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import sys

import pytest

import perspicio

SKIP = ("perspicio.__main__", "perspicio.demo.__main__", "perspicio.insights.example")

NEEDS = {"perspicio.insights": ("fastapi", "pydantic", "starlette")}
"""Packages whose examples need an optional extra: the extra's import names."""


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(perspicio.__path__, "perspicio.")]
    return sorted(n for n in names if not n.startswith(SKIP))


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def missing_extra(module: str) -> str | None:
    """The first import an optional extra of ``module`` needs and cannot make, else None."""
    for prefix, needs in NEEDS.items():
        if module == prefix or module.startswith(prefix + "."):
            for need in needs:
                if not _importable(need):
                    return need
    return None


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    missing = missing_extra(name)
    if missing is not None:
        pytest.skip(f"{name} needs {missing} (an optional extra)")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"


def test_examples_of_a_missing_extra_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now fails
    assert missing_extra("perspicio.insights.api") == "fastapi"
    assert missing_extra("perspicio.insights") == "fastapi"
    assert missing_extra("perspicio.attr") is None
    assert missing_extra("perspicio.insightsx") is None
