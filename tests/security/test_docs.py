"""docs/security.md stays true: every test it cites exists, and every test module of the
attack matrix is cited."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
_CITE = re.compile(r"`((?:tests/[\w/]+/)?test_\w+\.py)(?:::(\w+))?`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_every_cited_test_exists() -> None:
    cited = _CITE.findall(DOC)
    assert len(cited) > 40
    missing = []
    for module, name in cited:
        path = REPO / module if module.startswith("tests/") else REPO / "tests/security" / module
        if not path.is_file():
            missing.append(module)
        elif name and name not in _tests_in(path):
            missing.append(f"{module}::{name}")
    assert not missing, missing


def test_every_attack_module_is_cited() -> None:
    modules = {p.name for p in (REPO / "tests" / "security").glob("test_*.py")} - {"test_docs.py"}
    assert {m for m in modules if f"`{m}" not in DOC} == set()
