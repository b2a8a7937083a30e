"""The push wire format: snapshot and telemetry envelopes, as JSON Schemas and constants.

The schemas carry the size limits of the wire too (maxLength, maximum): what the server stores
an identifier or a count in (128/253/64-character columns, 32-bit integers) bounds what an
agent may send, so an oversized field is a 400 naming it, never a database error.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

SNAPSHOT_SCHEMA_ID = "k8s-monitor/snapshot/v1"
TELEMETRY_SCHEMA_ID = "k8s-monitor/telemetry/v1"

SNAPSHOT_PATH = "/v1/clusters/{cluster_id}/snapshots"
TELEMETRY_PATH = "/v1/clusters/{cluster_id}/telemetry"

# Kinds the server refuses outright and never stores.
FORBIDDEN_KINDS = frozenset({"Secret"})

# Wire limits (see the module docstring).
MAX_API_VERSION_LENGTH = 128
MAX_KIND_LENGTH = 128
MAX_NAME_LENGTH = 253  # a DNS subdomain, Kubernetes' longest object name
MAX_NAMESPACE_LENGTH = 253
MAX_UID_LENGTH = 64
MAX_TIMESTAMP_LENGTH = 40  # collected_at
MAX_SENT_AT_LENGTH = 64
MAX_VERSION_LENGTH = 64  # agent_version, kubernetes_version
MAX_PLATFORM_LENGTH = 32
INT32_MAX = 2**31 - 1  # counts are stored as 32-bit integers
MAX_COUNTED_KINDS = 10_000  # entries of a telemetry ping's object_counts
MAX_COLLECTION_DURATION_S = 1e9


class RemovedRef(TypedDict):
    apiVersion: str
    kind: str
    namespace: str | None
    name: str


class SnapshotEnvelope(TypedDict, total=False):
    """Body of POST /v1/clusters/<id>/snapshots.

    `digest` is `contracts.hashing.state_digest` of the cluster state *after* applying this
    snapshot; a delta names the `base_digest` it applies to and lists added/changed `objects`
    and `removed` refs. A full snapshot lists every object and no `removed`.
    """

    schema: str
    type: Literal["full", "delta"]
    digest: str
    base_digest: str | None
    collected_at: str
    agent_version: str
    objects: list[dict[str, Any]]
    removed: list[RemovedRef]


class TelemetryEnvelope(TypedDict, total=False):
    """Body of POST /v1/clusters/<id>/telemetry."""

    schema: str
    sent_at: str
    agent_version: str
    kubernetes_version: str
    platform: str
    node_count: int
    namespace_count: int
    object_counts: dict[str, int]
    collection_duration_s: float
    errors: dict[str, str]
    last_push: dict[str, Any]
    details: dict[str, Any]


_DIGEST = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
_API_VERSION = {"type": "string", "minLength": 1, "maxLength": MAX_API_VERSION_LENGTH}
_KIND = {"type": "string", "minLength": 1, "maxLength": MAX_KIND_LENGTH}
_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH}
_COUNT = {"type": "integer", "minimum": 0, "maximum": INT32_MAX}
_REF = {
    "type": "object",
    "required": ["apiVersion", "kind", "name"],
    "properties": {
        "apiVersion": _API_VERSION,
        "kind": _KIND,
        "namespace": {"type": ["string", "null"], "maxLength": MAX_NAMESPACE_LENGTH},
        "name": _NAME,
    },
}
_MANIFEST = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": _API_VERSION,
        "kind": _KIND,
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _NAME,
                "namespace": {"type": "string", "maxLength": MAX_NAMESPACE_LENGTH},
                "uid": {"type": "string", "maxLength": MAX_UID_LENGTH},
            },
        },
    },
}

SNAPSHOT_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Snapshot push",
    "type": "object",
    "required": ["schema", "type", "digest", "objects"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SNAPSHOT_SCHEMA_ID},
        "type": {"enum": ["full", "delta"]},
        "digest": _DIGEST,
        "base_digest": {"anyOf": [_DIGEST, {"type": "null"}]},
        "collected_at": {
            "type": "string",
            "format": "date-time",
            "maxLength": MAX_TIMESTAMP_LENGTH,
        },
        "agent_version": {"type": "string", "maxLength": MAX_VERSION_LENGTH},
        "objects": {"type": "array", "items": _MANIFEST},
        "removed": {"type": "array", "items": _REF},
    },
    "if": {"properties": {"type": {"const": "delta"}}},
    "then": {"required": ["base_digest"], "properties": {"base_digest": _DIGEST}},
}

TELEMETRY_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Telemetry ping",
    "type": "object",
    "required": ["schema", "agent_version"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": TELEMETRY_SCHEMA_ID},
        "sent_at": {"type": "string", "maxLength": MAX_SENT_AT_LENGTH},
        "agent_version": {"type": "string", "maxLength": MAX_VERSION_LENGTH},
        "kubernetes_version": {"type": "string", "maxLength": MAX_VERSION_LENGTH},
        "platform": {"type": "string", "maxLength": MAX_PLATFORM_LENGTH},
        "node_count": _COUNT,
        "namespace_count": _COUNT,
        # Their sum is stored as one 32-bit count too (a receiver checks the total).
        "object_counts": {
            "type": "object",
            "additionalProperties": _COUNT,
            "maxProperties": MAX_COUNTED_KINDS,
        },
        "collection_duration_s": {
            "type": "number",
            "minimum": 0,
            "maximum": MAX_COLLECTION_DURATION_S,
        },
        "errors": {"type": "object", "additionalProperties": {"type": "string"}},
        "last_push": {"type": "object"},
        "details": {"type": "object"},
    },
}
