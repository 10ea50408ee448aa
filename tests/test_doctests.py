"""Every docstring ``Example:`` in the package runs as a doctest."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import perspicio

SKIP = ("perspicio.__main__", "perspicio.demo.__main__", "perspicio.insights.example")


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(perspicio.__path__, "perspicio.")]
    return sorted(n for n in names if not n.startswith(SKIP))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
