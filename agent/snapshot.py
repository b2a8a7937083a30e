"""Full and delta snapshots: what to send against the last acknowledged state, and its encoding."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any, Literal

from agent.collect import Collection, unpack
from contracts.hashing import canonical_json, state_digest
from contracts.resources import ResourceRef
from contracts.wire import SNAPSHOT_SCHEMA_ID


@dataclass(frozen=True)
class AckedState:
    """The cluster state the server last acknowledged: its digest and (key → content hash)."""

    digest: str
    hashes: dict[str, str]


@dataclass(frozen=True)
class PushPlan:
    """One snapshot to send: its type, resulting digest, packed bodies and removed refs."""

    type: Literal["full", "delta"]
    digest: str
    base_digest: str | None
    hashes: dict[str, str]
    packed_bodies: list[bytes]
    removed: list[str]

    def acked(self) -> AckedState:
        return AckedState(self.digest, self.hashes)


def full_plan(collection: Collection) -> PushPlan:
    """Every collected object."""
    hashes = collection.hashes()
    return PushPlan(
        type="full",
        digest=state_digest(hashes.items()),
        base_digest=None,
        hashes=hashes,
        packed_bodies=[entry.packed for entry in collection.entries.values()],
        removed=[],
    )


def delta_plan(collection: Collection, base: AckedState) -> PushPlan:
    """Added and changed objects plus removed refs, relative to `base`.

    Objects of kinds whose listing failed this round (a transient error, not a 403) are carried
    over from `base` unchanged rather than reported as removed.
    """
    current = collection.hashes()
    for key, chash in base.hashes.items():
        if key not in current and collection.failed(key):
            current[key] = chash
    packed = [
        entry.packed
        for key, entry in collection.entries.items()
        if base.hashes.get(key) != entry.content_hash
    ]
    removed = sorted(key for key in base.hashes if key not in current)
    return PushPlan(
        type="delta",
        digest=state_digest(current.items()),
        base_digest=base.digest,
        hashes=current,
        packed_bodies=packed,
        removed=removed,
    )


def encode(plan: PushPlan, *, collected_at: str, agent_version: str) -> bytes:
    """The gzip-compressed JSON envelope, streamed from the stored canonical bodies."""
    header: dict[str, Any] = {
        "agent_version": agent_version,
        "base_digest": plan.base_digest,
        "collected_at": collected_at,
        "digest": plan.digest,
        "schema": SNAPSHOT_SCHEMA_ID,
        "type": plan.type,
    }
    if plan.type == "delta":
        header["removed"] = [ResourceRef.from_key(key).to_dict() for key in plan.removed]
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    chunks = [compressor.compress(canonical_json(header)[:-1] + b',"objects":[')]
    for index, packed in enumerate(plan.packed_bodies):
        body = unpack(packed)
        chunks.append(compressor.compress(b"," + body if index else body))
    chunks.append(compressor.compress(b"]}"))
    chunks.append(compressor.flush())
    return b"".join(chunks)


def encode_json(document: dict[str, object]) -> bytes:
    """Gzip-compressed JSON of a small document (telemetry)."""
    return zlib.compress(json.dumps(document, sort_keys=True).encode("utf-8"), 6, 31)
