"""The storage bounds a JSON Schema cannot state: a telemetry ping's per-kind object counts
are stored summed, as one 32-bit integer, so their total must fit; and each free-form field
(`details`, `last_push`, `errors`) is stored at most MAX_FREEFORM_BYTES long.

Every other limit (column lengths, 32-bit counts, nesting and width of the free-form fields)
is part of the wire schema itself (`contracts.wire`), checked when the envelope is validated.
"""

from __future__ import annotations

import json
from typing import Any

from contracts.wire import INT32_MAX, MAX_FREEFORM_BYTES
from ingest.problems import SCHEMA_VIOLATION, Problem


def check_telemetry_totals(payload: dict[str, Any]) -> None:
    """The stored object total (the sum of the per-kind counts) must fit in 32 bits, and each
    free-form field must serialise to at most MAX_FREEFORM_BYTES."""
    total = sum((payload.get("object_counts") or {}).values())
    if total > INT32_MAX:
        raise Problem(
            400,
            SCHEMA_VIOLATION,
            "Bad request",
            f"$.object_counts: the counts add up to more than {INT32_MAX}",
            extra={"field": "$.object_counts"},
        )
    for name in ("details", "last_push", "errors"):
        if name in payload:
            size = len(json.dumps(payload[name], separators=(",", ":")).encode())
            if size > MAX_FREEFORM_BYTES:
                raise Problem(
                    400,
                    SCHEMA_VIOLATION,
                    "Bad request",
                    f"$.{name}: {size} bytes as JSON; at most {MAX_FREEFORM_BYTES}",
                    extra={"field": f"$.{name}"},
                )
