"""Dependencies point one way: design_studio -> pipelines, brand_guard; never back. The UI imports no torch."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {n.split(".")[0] for n in names}


def offenders(package: str, forbidden: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_modules(path) & forbidden
        if bad:
            found.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    return found


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("pipelines", {"design_studio", "brand_guard", "gradio", "sqlalchemy"}),
        ("brand_guard", {"design_studio", "pipelines", "torch", "gradio", "diffusers", "transformers"}),
        ("design_studio/ui", {"torch", "diffusers", "transformers"}),
    ],
)
def test_no_import_against_the_arrow(package, forbidden):
    assert (ROOT / package).is_dir()
    assert offenders(package, forbidden) == []


def test_the_checker_sees_a_wrong_arrow(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom design_studio.store import Store\ndef f():\n    import torch\n")
    assert imported_modules(bad) == {"os", "design_studio", "torch"}
