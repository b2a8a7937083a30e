"""Storage bounds the wire schema does not state: column sizes and integer ranges.

Applied after `contracts.wire` validation so an oversized field is a 400 naming it rather
than a database error. (They belong in the wire schema itself; kept here until it has them.)
"""

from __future__ import annotations

from typing import Any

from ingest.problems import SCHEMA_VIOLATION, Problem

INT32_MAX = 2**31 - 1

_REF_BOUNDS = {
    "apiVersion": {"maxLength": 128},
    "kind": {"maxLength": 128},
    "namespace": {"maxLength": 253},
    "name": {"maxLength": 253},
}

SNAPSHOT_LIMITS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "collected_at": {"maxLength": 40},
        "objects": {"items": {
            "properties": {
                "apiVersion": _REF_BOUNDS["apiVersion"],
                "kind": _REF_BOUNDS["kind"],
                "metadata": {"properties": {
                    "name": _REF_BOUNDS["name"],
                    "namespace": _REF_BOUNDS["namespace"],
                    "uid": {"maxLength": 64},
                }},
            },
        }},
        "removed": {"items": {"properties": _REF_BOUNDS}},
    },
}

TELEMETRY_LIMITS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "node_count": {"maximum": INT32_MAX},
        "namespace_count": {"maximum": INT32_MAX},
        "object_counts": {"additionalProperties": {"maximum": INT32_MAX},
                          "maxProperties": 10_000},
        "collection_duration_s": {"maximum": 1e9},
        "sent_at": {"maxLength": 64},
    },
}


def check_telemetry_totals(payload: dict[str, Any]) -> None:
    """The stored object total is the sum of the per-kind counts: it must fit too."""
    total = sum((payload.get("object_counts") or {}).values())
    if total > INT32_MAX:
        raise Problem(400, SCHEMA_VIOLATION, "Bad request",
                      f"$.object_counts: the counts add up to more than {INT32_MAX}",
                      extra={"field": "$.object_counts"})
