"""Algorithm families import only ``_core``, themselves and public modules.

A family is a package directly under ``src/perspicio`` (gradient, path, perturbation, metrics,
...). Reaching into another family's modules couples the two: shared pieces belong in
``_core``, and a family that needs another's algorithm uses its public name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import perspicio

ROOT = Path(perspicio.__file__).parent

NOT_FAMILIES = {"_core", "attr", "testing", "_utils", "__pycache__"}
"""``attr`` (and the Captum alias paths) re-export the families; ``testing`` is tiny models."""

PUBLIC = {
    "perspicio",
    "perspicio.attr",
    "perspicio.attr.visualization",
    "perspicio.lrp",
    "perspicio.models",
    "perspicio.metrics",
    "perspicio.insights",
    "perspicio.insights.features",
    "perspicio.robust",
    "perspicio.concept",
    "perspicio.influence",
    "perspicio.module",
    "perspicio.summary",
    "perspicio.result",
    "perspicio.scale",
}
"""Public modules any family may import (besides ``perspicio.testing`` and its modules)."""


def _families() -> list[str]:
    return sorted(
        p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()
        and p.name not in NOT_FAMILIES
    )  # fmt: skip


def _imports(source: str, package: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every perspicio import in ``source`` (relative ones resolved),
    anywhere in the module: late imports inside functions count too."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.append((node.lineno, base))
            if base == "perspicio":  # from perspicio import path: the package perspicio.path
                out += [(node.lineno, f"perspicio.{a.name}") for a in node.names]
    return [(line, m) for line, m in out if m == "perspicio" or m.startswith("perspicio.")]


def allowed(family: str, module: str) -> bool:
    """Whether code of ``family`` may import ``module``."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("_core", family, "testing"):
        return True
    return module in PUBLIC


def crossings(family: str, source: str, name: str = "x.py") -> list[str]:
    """The imports of ``source`` (module ``name`` of ``family``) that break the rule."""
    package = ".".join(("perspicio", family, *Path(name).parent.parts))
    return [
        f"{family}/{name}:{line} imports {module}"
        for line, module in _imports(source, package)
        if not allowed(family, module)
    ]


def _crossings(family: str) -> list[str]:
    found = []
    for path in sorted((ROOT / family).rglob("*.py")):
        name = str(path.relative_to(ROOT / family))
        found += crossings(family, path.read_text(encoding="utf-8"), name)
    return found


@pytest.mark.parametrize("family", _families())
def test_families_import_only_core_and_public_modules(family: str) -> None:
    assert _crossings(family) == []


@pytest.mark.parametrize(
    ("family", "module", "ok"),
    [
        ("metrics", "perspicio._core.sweep", True),
        ("metrics", "perspicio.metrics.sampling", True),
        ("metrics", "perspicio.attr", True),
        ("metrics", "perspicio.attr.visualization", True),
        ("metrics", "perspicio.testing.digits", True),
        ("metrics", "perspicio.perturbation.sweep", False),
        ("perturbation", "perspicio.path.gradient_shap", False),
        ("perturbation", "perspicio.path", False),
        ("insights", "perspicio.viz.scale", False),
        ("gradient", "perspicio.attr._core", False),
        ("gradient", "perspicio.propagation.guided", False),
    ],
)
def test_the_rule(family: str, module: str, ok: bool) -> None:
    assert allowed(family, module) is ok


def test_the_parser_sees_late_and_relative_imports() -> None:
    source = (
        "from perspicio._core.call import Call\n"
        "from perspicio.metrics.sampling import x\n"
        "from . import sampling\n"
        "def f():\n"
        "    from ..perturbation import sweep\n"
        "    import perspicio.path.integral\n"
        "    from perspicio import path, attr\n"
    )
    assert crossings("metrics", source, "probe.py") == [
        "metrics/probe.py:5 imports perspicio.perturbation",
        "metrics/probe.py:6 imports perspicio.path.integral",
        "metrics/probe.py:7 imports perspicio.path",
    ]
