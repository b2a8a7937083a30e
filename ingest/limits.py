"""The one storage bound a JSON Schema cannot state: a telemetry ping's per-kind object
counts are stored summed, as one 32-bit integer, so their total must fit.

Every other size limit (column lengths, 32-bit counts) is part of the wire schema itself
(`contracts.wire`), checked when the envelope is validated.
"""

from __future__ import annotations

from typing import Any

from contracts.wire import INT32_MAX
from ingest.problems import SCHEMA_VIOLATION, Problem


def check_telemetry_totals(payload: dict[str, Any]) -> None:
    """The stored object total is the sum of the per-kind counts: it must fit too."""
    total = sum((payload.get("object_counts") or {}).values())
    if total > INT32_MAX:
        raise Problem(
            400,
            SCHEMA_VIOLATION,
            "Bad request",
            f"$.object_counts: the counts add up to more than {INT32_MAX}",
            extra={"field": "$.object_counts"},
        )
