"""Telemetry pings: platform detection and the envelope built from the last collection."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.collect import Collection
from contracts.wire import TELEMETRY_SCHEMA_ID, TelemetryEnvelope

_PROVIDER_PLATFORMS = {"aws://": "EKS", "gce://": "GKE", "azure://": "AKS"}


def detect_platform(kubernetes_version: str, provider_schemes: Iterable[str]) -> str:
    """EKS, GKE, AKS or other: from the version string first, then node provider ids."""
    version = kubernetes_version.lower()
    if "-eks-" in version or "eks." in version:
        return "EKS"
    if "-gke." in version:
        return "GKE"
    platforms = {_PROVIDER_PLATFORMS.get(scheme) for scheme in provider_schemes} - {None}
    if len(platforms) == 1:
        return str(platforms.pop())
    return "other"


@dataclass
class CollectionStats:
    """What telemetry keeps of a collection (no object bodies)."""

    kubernetes_version: str = ""
    platform: str = "other"
    node_count: int | None = None
    namespace_count: int | None = None
    object_counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    forbidden: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    not_collected: dict[str, str] = field(default_factory=dict)
    unserved: list[str] = field(default_factory=list)
    list_restarts: int = 0
    duration_s: float = 0.0

    @classmethod
    def of(cls, collection: Collection) -> CollectionStats:
        return cls(
            kubernetes_version=collection.kubernetes_version,
            platform=detect_platform(collection.kubernetes_version, collection.provider_ids),
            node_count=collection.node_count,
            namespace_count=collection.namespace_count,
            object_counts=dict(collection.object_counts),
            errors=dict(collection.errors),
            malformed=dict(collection.malformed),
            forbidden=list(collection.forbidden),
            vanished=list(collection.vanished),
            not_collected=collection.not_collected,
            unserved=list(collection.unserved_types),
            list_restarts=collection.list_restarts,
            duration_s=round(collection.duration_s, 3),
        )


def envelope(
    stats: CollectionStats | None,
    *,
    agent_version: str,
    last_push: dict[str, Any],
    key_fingerprint: str,
    now: float | None = None,
    seq: int | None = None,
    pings_dropped: int = 0,
) -> TelemetryEnvelope:
    """The telemetry body; fields unknown before the first collection are left out.

    `sent_at` is when the ping was made: a ping re-sent from the buffer keeps it unchanged.
    `seq` numbers the process's pings; `pings_dropped` counts pings the buffer let go.
    """
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    body: TelemetryEnvelope = {
        "schema": TELEMETRY_SCHEMA_ID,
        "sent_at": sent_at,
        "agent_version": agent_version,
        "last_push": last_push,
    }
    details: dict[str, Any] = {"key_fingerprint": key_fingerprint}
    if seq is not None:
        details["seq"] = seq
    if pings_dropped:
        details["pings_dropped"] = pings_dropped
    if stats is not None:
        body["kubernetes_version"] = stats.kubernetes_version[:64]
        body["platform"] = stats.platform
        if stats.node_count is not None:
            body["node_count"] = stats.node_count
        if stats.namespace_count is not None:
            body["namespace_count"] = stats.namespace_count
        body["object_counts"] = stats.object_counts
        body["collection_duration_s"] = stats.duration_s
        body["errors"] = stats.errors
        details.update(
            malformed_objects=stats.malformed,
            forbidden_types=stats.forbidden,
            vanished_types=stats.vanished,
            # Types whose objects are unknown this round (kept as last pushed), and why.
            not_collected=stats.not_collected,
            # Include entries that discovery served at no version.
            unserved_types=stats.unserved,
            list_restarts=stats.list_restarts,
        )
    body["details"] = details
    return body


class PingBuffer:
    """Encoded telemetry pings not yet accepted, oldest first; at most `limit` are kept.

    When full, the oldest ping is dropped (and counted) to make room for the newest.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a ping buffer holds at least one ping")
        self.limit = limit
        self.pending: deque[bytes] = deque()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, body: bytes) -> int:
        """Queue a ping; return how many of the oldest were dropped to make room."""
        evicted = 0
        while len(self.pending) >= self.limit:
            self.pending.popleft()
            evicted += 1
        self.pending.append(body)
        self.dropped += evicted
        return evicted

    def oldest(self) -> bytes | None:
        return self.pending[0] if self.pending else None

    def sent(self) -> None:
        """The oldest ping was answered (accepted, or refused for good): forget it."""
        self.pending.popleft()
