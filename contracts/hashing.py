"""Canonical JSON, content hashes and state digests that agent and server must agree on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON: sorted keys, no insignificant whitespace."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_hash(manifest: Any) -> str:
    """SHA-256 hex of a manifest's canonical JSON: the key bodies are stored under."""
    return hash_of_canonical(canonical_json(manifest))


def hash_of_canonical(encoded: bytes) -> str:
    """`content_hash` of the manifest whose canonical JSON is `encoded`."""
    return hashlib.sha256(encoded).hexdigest()


def state_digest(entries: Iterable[tuple[str, str]]) -> str:
    """Digest of a whole cluster state from (ResourceRef.key, content_hash) pairs, in any order."""
    digest = hashlib.sha256()
    for key, chash in sorted(entries):
        digest.update(key.encode("utf-8"))
        digest.update(b"\x00")
        digest.update(chash.encode("ascii"))
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()


def strip_server_noise(manifest: dict[str, Any]) -> dict[str, Any]:
    """Copy of a manifest without managedFields and the last-applied annotation.

    Both the agent (before hashing) and the ingest (before storing) apply this, so a body that
    arrives with that noise is stored exactly as one that arrived without it.
    """
    meta = manifest.get("metadata")
    if not isinstance(meta, dict):
        return manifest
    annotations = meta.get("annotations")
    if "managedFields" not in meta and not (
        isinstance(annotations, dict) and LAST_APPLIED_ANNOTATION in annotations
    ):
        return manifest
    clean_meta = {k: v for k, v in meta.items() if k != "managedFields"}
    if isinstance(annotations, dict) and LAST_APPLIED_ANNOTATION in annotations:
        rest = {k: v for k, v in annotations.items() if k != LAST_APPLIED_ANNOTATION}
        if rest:
            clean_meta["annotations"] = rest
        else:
            clean_meta.pop("annotations", None)
    return {**manifest, "metadata": clean_meta}
