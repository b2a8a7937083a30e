"""The push wire format: snapshot and telemetry envelopes, as JSON Schemas and constants."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

SNAPSHOT_SCHEMA_ID = "k8s-monitor/snapshot/v1"
TELEMETRY_SCHEMA_ID = "k8s-monitor/telemetry/v1"

SNAPSHOT_PATH = "/v1/clusters/{cluster_id}/snapshots"
TELEMETRY_PATH = "/v1/clusters/{cluster_id}/telemetry"

# Kinds the server refuses outright and never stores.
FORBIDDEN_KINDS = frozenset({"Secret"})


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
_REF = {
    "type": "object",
    "required": ["apiVersion", "kind", "name"],
    "properties": {
        "apiVersion": {"type": "string", "minLength": 1},
        "kind": {"type": "string", "minLength": 1},
        "namespace": {"type": ["string", "null"]},
        "name": {"type": "string", "minLength": 1},
    },
}
_MANIFEST = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"type": "string", "minLength": 1},
        "kind": {"type": "string", "minLength": 1},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "namespace": {"type": "string"},
                "uid": {"type": "string"},
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
        "collected_at": {"type": "string", "format": "date-time"},
        "agent_version": {"type": "string", "maxLength": 64},
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
        "sent_at": {"type": "string"},
        "agent_version": {"type": "string", "maxLength": 64},
        "kubernetes_version": {"type": "string", "maxLength": 64},
        "platform": {"type": "string", "maxLength": 32},
        "node_count": {"type": "integer", "minimum": 0},
        "namespace_count": {"type": "integer", "minimum": 0},
        "object_counts": {
            "type": "object",
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "collection_duration_s": {"type": "number", "minimum": 0},
        "errors": {"type": "object", "additionalProperties": {"type": "string"}},
        "last_push": {"type": "object"},
        "details": {"type": "object"},
    },
}
