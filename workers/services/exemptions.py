"""Match exemptions stored in the database (CLI/admin pages) against scan results."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from store.models import Exemption


def _globs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _labels_match(wanted: Any, labels: Mapping[str, str]) -> bool:
    if isinstance(wanted, str):
        pairs = dict(p.split("=", 1) for p in wanted.split(",") if "=" in p)
    else:
        pairs = {str(k): str(v) for k, v in dict(wanted or {}).items()}
    return all(labels.get(k.strip()) == v.strip() for k, v in pairs.items())


def exemption_matches(
    exemption: Exemption,
    record: Mapping[str, Any],
    *,
    labels: Mapping[str, str],
    now: datetime,
) -> bool:
    """True when an active exemption covers the record's rule and resource."""
    if exemption.revoked_at is not None:
        return False
    if exemption.expires_at is not None and exemption.expires_at <= now:
        return False
    rule_ids = set(exemption.rule_ids or [])
    if "*" not in rule_ids and record["rule_id"] not in rule_ids:
        return False
    resource = record["resource"]
    selector = exemption.selector or {}
    checks = (
        ("kind", resource.get("kind") or ""),
        ("namespace", resource.get("namespace") or ""),
        ("name", resource.get("name") or ""),
        ("container", record.get("container") or ""),
    )
    for key, actual in checks:
        patterns = _globs(selector.get(key))
        if patterns and not any(fnmatch.fnmatchcase(actual, p) for p in patterns):
            return False
    return not (selector.get("labels") and not _labels_match(selector["labels"], labels))


def needs_labels(exemptions: Sequence[Exemption]) -> bool:
    return any((e.selector or {}).get("labels") for e in exemptions)


def first_match(
    exemptions: Sequence[Exemption],
    record: Mapping[str, Any],
    *,
    labels: Mapping[str, str],
    now: datetime,
) -> Exemption | None:
    for exemption in exemptions:
        if exemption_matches(exemption, record, labels=labels, now=now):
            return exemption
    return None
