"""docs/operations.md stays true: every fault test its table names by `file::test` exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAMED = re.compile(r"`(tests/faults/test_\w+\.py)::(test_\w+)`")


def test_the_fault_table_names_tests_that_exist() -> None:
    doc = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    named = NAMED.findall(doc)
    assert len(named) >= 6
    for path, name in named:
        source = (REPO / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{path}::{name}"
