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
MAX_NAMESPACE_LENGTH = 63  # a DNS-1123 label
MAX_UID_LENGTH = 64
MAX_TIMESTAMP_LENGTH = 40  # collected_at
MAX_SENT_AT_LENGTH = 64
MAX_VERSION_LENGTH = 64  # agent_version, kubernetes_version
MAX_PLATFORM_LENGTH = 32
INT32_MAX = 2**31 - 1  # counts are stored as 32-bit integers
MAX_COUNTED_KINDS = 10_000  # entries of a telemetry ping's object_counts
MAX_COLLECTION_DURATION_S = 1e9
# Free-form telemetry (`details`, `last_push`, `errors`): nesting, width, text and stored size.
MAX_FREEFORM_DEPTH = 4  # containers below the field itself
MAX_FREEFORM_WIDTH = 10_000  # members of one object or items of one array
MAX_FREEFORM_TEXT = 2000  # characters of one string or key
MAX_FREEFORM_BYTES = 256 * 1024  # one field, serialised as compact JSON
# Manifests may nest this deep (a Kubernetes built-in type nests under 20 levels; deeper
# custom resources are refused, so every page can render whatever the store holds).
MAX_MANIFEST_DEPTH = 100

# Kubernetes object name rules (k8s.io/apimachinery validation), ASCII only: zero-width,
# homoglyph and right-to-left-override characters never pass.
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # namespaces: 63 characters at most
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"  # services
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# RBAC objects take any path segment (`system:controller:job-controller`): printable ASCII
# without `/` or `%`, and not `.` or `..`.
PATH_SEGMENT = r"^(?!\.\.?$)[!-$&-.0-~]+$"
LABEL_KINDS = frozenset({"Namespace"})
DNS1035_KINDS = frozenset({"Service"})
PATH_SEGMENT_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})


def name_rule(kind: str) -> tuple[str, int, str]:
    """(pattern, longest, rule name) of an object name of `kind`."""
    if kind in LABEL_KINDS:
        return DNS1123_LABEL, 63, "a DNS-1123 label"
    if kind in DNS1035_KINDS:
        return DNS1035_LABEL, 63, "a DNS-1035 label"
    if kind in PATH_SEGMENT_KINDS:
        return PATH_SEGMENT, MAX_NAME_LENGTH, "a path segment name"
    return DNS1123_SUBDOMAIN, MAX_NAME_LENGTH, "a DNS-1123 subdomain"


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
# Printable ASCII only (a pattern's `$` would also accept a trailing line break).
_ASCII_ONLY = {"not": {"pattern": "[^!-~]"}}
_NAMESPACE = {
    "type": "string",
    "maxLength": MAX_NAMESPACE_LENGTH,
    "anyOf": [{"const": ""}, {"pattern": DNS1123_LABEL, **_ASCII_ONLY}],
}


def _name_rules(name_of: str) -> list[dict[str, Any]]:
    """`allOf` members checking the name at `name_of` (a property path) against its kind."""

    def nested(schema: dict[str, Any]) -> dict[str, Any]:
        for part in reversed(name_of.split(".")):
            schema = {"properties": {part: schema}}
        return schema

    rules: list[dict[str, Any]] = []
    for kinds in (LABEL_KINDS, DNS1035_KINDS, PATH_SEGMENT_KINDS):
        pattern, longest, _ = name_rule(next(iter(kinds)))
        rules.append(
            {
                "if": {"properties": {"kind": {"enum": sorted(kinds)}}, "required": ["kind"]},
                "then": nested({"type": "string", "pattern": pattern, "maxLength": longest}),
            }
        )
    special = sorted(LABEL_KINDS | DNS1035_KINDS | PATH_SEGMENT_KINDS)
    rules.append(
        {
            "if": {"properties": {"kind": {"not": {"enum": special}}}},
            "then": nested({"type": "string", "pattern": DNS1123_SUBDOMAIN}),
        }
    )
    return rules


def _freeform(depth: int) -> dict[str, Any]:
    """Any JSON value nested at most `depth` containers deep, of bounded width and text."""
    scalar = {"type": ["string", "number", "boolean", "null"], "maxLength": MAX_FREEFORM_TEXT}
    if depth == 0:
        return scalar
    inner = _freeform(depth - 1)
    return {
        "anyOf": [
            scalar,
            {
                "type": "object",
                "maxProperties": MAX_FREEFORM_WIDTH,
                "propertyNames": {"maxLength": MAX_FREEFORM_TEXT},
                "additionalProperties": inner,
            },
            {"type": "array", "maxItems": MAX_FREEFORM_WIDTH, "items": inner},
        ]
    }


def _freeform_object(depth: int) -> dict[str, Any]:
    return {
        "type": "object",
        "maxProperties": MAX_FREEFORM_WIDTH,
        "propertyNames": {"maxLength": MAX_FREEFORM_TEXT},
        "additionalProperties": _freeform(depth),
    }


_API_VERSION = {"type": "string", "minLength": 1, "maxLength": MAX_API_VERSION_LENGTH}
_KIND = {"type": "string", "minLength": 1, "maxLength": MAX_KIND_LENGTH}
_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH, **_ASCII_ONLY}
_COUNT = {"type": "integer", "minimum": 0, "maximum": INT32_MAX}
_REF = {
    "type": "object",
    "required": ["apiVersion", "kind", "name"],
    "properties": {
        "apiVersion": _API_VERSION,
        "kind": _KIND,
        "namespace": {"anyOf": [{"type": "null"}, _NAMESPACE]},
        "name": _NAME,
    },
    "allOf": _name_rules("name"),
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
                "namespace": _NAMESPACE,
                "uid": {"type": "string", "maxLength": MAX_UID_LENGTH},
            },
        },
    },
    "allOf": _name_rules("metadata.name"),
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
        "errors": {
            "type": "object",
            "maxProperties": MAX_FREEFORM_WIDTH,
            "propertyNames": {"maxLength": MAX_FREEFORM_TEXT},
            "additionalProperties": {"type": "string", "maxLength": MAX_FREEFORM_TEXT},
        },
        "last_push": _freeform_object(MAX_FREEFORM_DEPTH),
        "details": _freeform_object(MAX_FREEFORM_DEPTH),
    },
}
