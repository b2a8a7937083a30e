"""A fast, conservative pre-check of snapshot envelopes.

`snapshot_surely_valid` returns True only for documents that satisfy the wire schema (with
its size limits, `contracts.wire`); anything else (including valid documents it is unsure
about) returns False and goes through jsonschema, which then names the offending field. It
exists because a 5,000-object snapshot takes jsonschema about half a second to walk.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from contracts.wire import (
    MAX_API_VERSION_LENGTH,
    MAX_KIND_LENGTH,
    MAX_NAME_LENGTH,
    MAX_NAMESPACE_LENGTH,
    MAX_TIMESTAMP_LENGTH,
    MAX_UID_LENGTH,
    MAX_VERSION_LENGTH,
    SNAPSHOT_SCHEMA_ID,
    name_rule,
)

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ENVELOPE_KEYS = frozenset(
    {
        "schema",
        "type",
        "digest",
        "base_digest",
        "collected_at",
        "agent_version",
        "objects",
        "removed",
    }
)


_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@lru_cache(maxsize=64)
def _name_pattern(kind: str) -> tuple[re.Pattern[str], int]:
    pattern, longest, _ = name_rule(kind)
    return re.compile(pattern), longest


def _kube_name(kind: str, name: str) -> bool:
    """A Kubernetes name for its kind (`fullmatch`: no trailing line break slips through)."""
    pattern, longest = _name_pattern(kind)
    return len(name) <= longest and pattern.fullmatch(name) is not None


def _kube_namespace(value: Any) -> bool:
    return type(value) is str and (
        value == ""
        or (len(value) <= MAX_NAMESPACE_LENGTH and _NAMESPACE.fullmatch(value) is not None)
    )


def _text(value: Any, *, low: int, high: int) -> bool:
    return type(value) is str and low <= len(value) <= high


def _digest(value: Any) -> bool:
    return type(value) is str and _DIGEST.fullmatch(value) is not None


def _manifest(obj: Any) -> bool:
    if type(obj) is not dict:
        return False
    meta = obj.get("metadata")
    if not (
        _text(obj.get("apiVersion"), low=1, high=MAX_API_VERSION_LENGTH)
        and _text(obj.get("kind"), low=1, high=MAX_KIND_LENGTH)
        and type(meta) is dict
        and _text(meta.get("name"), low=1, high=MAX_NAME_LENGTH)
        and _kube_name(obj["kind"], meta["name"])
    ):
        return False
    if "namespace" in meta and not _kube_namespace(meta["namespace"]):
        return False
    return "uid" not in meta or _text(meta["uid"], low=0, high=MAX_UID_LENGTH)


def _ref(ref: Any) -> bool:
    if type(ref) is not dict:
        return False
    namespace = ref.get("namespace")
    return (
        _text(ref.get("apiVersion"), low=1, high=MAX_API_VERSION_LENGTH)
        and _text(ref.get("kind"), low=1, high=MAX_KIND_LENGTH)
        and _text(ref.get("name"), low=1, high=MAX_NAME_LENGTH)
        and _kube_name(ref["kind"], ref["name"])
        and (namespace is None or _kube_namespace(namespace))
    )


def snapshot_surely_valid(document: Any) -> bool:  # noqa: PLR0911 - one exit per rule
    if type(document) is not dict or not document.keys() <= _ENVELOPE_KEYS:
        return False
    kind = document.get("type")
    if document.get("schema") != SNAPSHOT_SCHEMA_ID or kind not in ("full", "delta"):
        return False
    if not _digest(document.get("digest")):
        return False
    if "base_digest" in document and not (
        document["base_digest"] is None or _digest(document["base_digest"])
    ):
        return False
    if kind == "delta" and not _digest(document.get("base_digest")):
        return False
    collected_at = document.get("collected_at", "")
    if not _text(collected_at, low=0, high=MAX_TIMESTAMP_LENGTH):
        return False
    if not _text(document.get("agent_version", ""), low=0, high=MAX_VERSION_LENGTH):
        return False
    objects = document.get("objects")
    if type(objects) is not list or not all(_manifest(o) for o in objects):
        return False
    removed = document.get("removed", [])
    return type(removed) is list and all(_ref(r) for r in removed)
