"""docs/deploy.md lists every reason code the ingest service can refuse a request with."""

from __future__ import annotations

import re
from pathlib import Path

from contracts.httpsig import Reason
from ingest import problems

REPO = Path(__file__).resolve().parents[2]
# Reasons made from werkzeug's own exceptions by the app's handler (name, lower-cased).
WERKZEUG_REASONS = {"not_found", "method_not_allowed"}
_LITERAL = re.compile(r'(?:Problem\(\s*\d{3},\s*|bad_request\(\s*|unauthorised\(\s*)"([a-z_]+)"')


def emitted_reasons() -> set[str]:
    """Reason codes: the named constants, the signature reasons, and literals in ingest/."""
    named = {
        value
        for name, value in vars(problems).items()
        if name.isupper() and isinstance(value, str) and name != "PROBLEM_TYPE_BASE"
    }
    literals = set()
    for source in (REPO / "ingest").rglob("*.py"):
        literals |= set(_LITERAL.findall(source.read_text(encoding="utf-8")))
    return named | {r.value for r in Reason} | literals | WERKZEUG_REASONS


def test_every_reason_code_is_documented() -> None:
    reasons = emitted_reasons()
    assert {
        "unavailable",
        "internal_error",
        "invalid_json_path",
        "chatops_disabled",
        "replayed_nonce",
    } <= reasons  # the collection itself works
    section = (
        (REPO / "docs" / "deploy.md").read_text(encoding="utf-8").split("### Reason codes", 1)[1]
    )
    missing = sorted(r for r in reasons if f"`{r}`" not in section)
    assert not missing, f"reason codes missing from docs/deploy.md: {missing}"
    assert "`<action>.refused`" in section
