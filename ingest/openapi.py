"""The OpenAPI 3.1 document of the ingest service (a test keeps it equal to the URL map)."""

from __future__ import annotations

import copy
from typing import Any

from contracts.timeline import TIMELINE_GROUPS
from contracts.wire import (
    SNAPSHOT_JSON_SCHEMA,
    SNAPSHOT_PATH,
    TELEMETRY_JSON_SCHEMA,
    TELEMETRY_PATH,
)
from reports.formats import FORMATS, SERVED_FORMATS
from store.timeline import MAX_PAGE

# Blueprints that are not part of the machine API: the browser admin pages (HTML behind a
# sign-in, CSRF-protected forms). Everything else the app serves is described here.
UNDOCUMENTED_BLUEPRINTS = ("web",)

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_SIGNED: list[dict[str, list[str]]] = [{"httpMessageSignature": []}]
_CLUSTER_ID = {
    "name": "cluster_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"},
}
_KEY_ID = {
    "name": "key_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}
_EXEMPTION_ID = {
    "name": "exemption_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
_GROUP = "(" + "|".join(TIMELINE_GROUPS) + ")"
TIMELINE_TYPES_PATTERN = f"^{_GROUP}(,{_GROUP})*$"
_ADVISORY_ID = {
    "name": "advisory_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 100},
}
# One advisory record, a list of them, or {"advisories": [...]} (contracts.advisories).
ADVISORY_RECORD = {
    "type": "object",
    "required": ["id", "severity", "affected"],
    "properties": {
        "id": {"type": "string"},
        "severity": {"enum": ["critical", "high", "medium", "low", "info"]},
        "summary": {"type": "string"},
        "url": {"type": "string"},
        "aliases": {"type": "array", "items": {"type": "string"}},
        "affected": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["repository"],
                "properties": {
                    "repository": {"type": "string"},
                    "introduced": {"type": "string"},
                    "fixed": {"type": "string"},
                    "last_affected": {"type": "string"},
                },
            },
        },
    },
}
_DELIVERY_ID = {
    "name": "delivery_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
_SIGNATURE_HEADERS = [
    {
        "name": "Signature-Input",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "RFC 9421 signature parameters (see docs/protocol.md)",
    },
    {"name": "Signature", "in": "header", "required": True, "schema": {"type": "string"}},
]


def _json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _schema(document: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(document)
    schema.pop("$schema", None)
    return schema


def _op(
    summary: str,
    *,
    ok: str = "200",
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    signed: bool = True,
    refusals: tuple[str, ...] = ("400", "401", "403", "404"),
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [*(params or []), *(_SIGNATURE_HEADERS if signed else [])],
        "responses": {
            ok: {
                "description": "success",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    }
    if body is not None:
        operation["requestBody"] = body
    if signed:
        operation["security"] = _SIGNED
        for status in refusals:
            operation["responses"][status] = _PROBLEM
    return operation


def _query(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"}}


def openapi_document() -> dict[str, Any]:
    """The service description, built fresh on each call."""
    from ingest.admin import (  # noqa: PLC0415 - the schemas live beside their endpoints
        _KEY,
        CLUSTER_CREATE_SCHEMA,
        CLUSTER_UPDATE_SCHEMA,
        EXEMPTION_SCHEMA,
        RESCAN_SCHEMA,
        SEARCH_SCHEMA,
    )

    push_refusals = ("400", "401", "403", "404", "409", "413", "415", "422", "429")
    snapshot_path = SNAPSHOT_PATH
    telemetry_path = TELEMETRY_PATH
    paths: dict[str, Any] = {
        snapshot_path: {
            "post": _op(
                "Push a full or delta snapshot (202 once committed)",
                ok="202",
                params=[_CLUSTER_ID],
                body=_json_body(_schema(SNAPSHOT_JSON_SCHEMA)),
                refusals=push_refusals,
            )
        },
        telemetry_path: {
            "post": _op(
                "Push a telemetry ping",
                ok="202",
                params=[_CLUSTER_ID],
                body=_json_body(_schema(TELEMETRY_JSON_SCHEMA)),
                refusals=push_refusals,
            )
        },
        "/v1/admin/clusters": {
            "get": _op(
                "List clusters", params=[_query("status", {"enum": ["active", "disabled"]})]
            ),
            "post": _op(
                "Register a cluster (optionally with its keys)",
                ok="201",
                body=_json_body(CLUSTER_CREATE_SCHEMA),
                refusals=("400", "401", "403", "409"),
            ),
        },
        "/v1/admin/clusters/{cluster_id}": {
            "get": _op("Show a cluster", params=[_CLUSTER_ID]),
            "patch": _op(
                "Update a cluster's owner, channel, labels or status",
                params=[_CLUSTER_ID],
                body=_json_body(CLUSTER_UPDATE_SCHEMA),
            ),
        },
        "/v1/admin/clusters/{cluster_id}/disable": {
            "post": _op("Disable a cluster (its pushes get 403)", params=[_CLUSTER_ID])
        },
        "/v1/admin/clusters/{cluster_id}/keys": {
            "post": _op(
                "Add an agent key (at most two active)",
                ok="201",
                params=[_CLUSTER_ID],
                body=_json_body(_KEY),
                refusals=("400", "401", "403", "404", "409"),
            )
        },
        "/v1/admin/clusters/{cluster_id}/keys/{key_id}": {
            "delete": _op("Revoke an agent key (refused at once)", params=[_CLUSTER_ID, _KEY_ID])
        },
        "/v1/admin/clusters/{cluster_id}/report": {
            "get": {
                **_op(
                    "A cluster's report from its stored findings",
                    params=[
                        _CLUSTER_ID,
                        _query("format", {"enum": list(SERVED_FORMATS)}),
                    ],
                ),
                "responses": {
                    "200": {
                        "description": "the report",
                        "content": {
                            FORMATS[name].media_type: {"schema": {}} for name in SERVED_FORMATS
                        },
                    },
                    **{code: _PROBLEM for code in ("400", "401", "403", "404")},
                },
            }
        },
        "/v1/admin/clusters/{cluster_id}/timeline": {
            "get": _op(
                "A cluster's timeline, newest first (keyset pages: pass next_cursor as before): "
                "resources created, changed and deleted, findings opened and resolved with the "
                "manifest change that did it, scans; kind and name narrow it to one resource "
                "(with each change's diff)",
                params=[
                    _CLUSTER_ID,
                    _query("kind"),
                    _query("name"),
                    _query("namespace"),
                    _query("api_version"),
                    _query("types", {"type": "string", "pattern": TIMELINE_TYPES_PATTERN}),
                    _query("before", {"type": "string", "pattern": r"^\d+\.\d\.\d+$"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                    _query("diffs", {"enum": ["0", "1", "true", "false"]}),
                ],
            )
        },
        "/v1/admin/scans": {
            "get": _op(
                "Recent scans, newest first",
                params=[
                    _query("cluster"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
            )
        },
        "/v1/admin/telemetry": {
            "get": _op(
                "Latest telemetry of every cluster, with staleness and the agent's "
                "report on its last push"
            )
        },
        "/v1/admin/search": {
            "post": _op(
                "JSON-path search over current manifests: the matching objects, or "
                "with distinct each value once with its occurrences and clusters "
                "(counted over every match; limit caps the values returned); with at "
                "or between (ISO 8601, Z or offset) over the versions current then, each "
                "match with valid_from/valid_until",
                body=_json_body(SEARCH_SCHEMA),
            )
        },
        "/v1/admin/findings": {
            "get": _op(
                "Query findings",
                params=[
                    _query("cluster"),
                    _query("rule"),
                    _query("status"),
                    _query("severity"),
                    _query("kind"),
                    _query("namespace"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
                ],
            )
        },
        "/v1/admin/exemptions": {
            "get": _op(
                "List exemptions",
                params=[_query("cluster"), _query("all", {"enum": ["1", "true"]})],
            ),
            "post": _op("Create an exemption", ok="201", body=_json_body(EXEMPTION_SCHEMA)),
        },
        "/v1/admin/exemptions/{exemption_id}": {
            "delete": _op("Revoke an exemption", params=[_EXEMPTION_ID])
        },
        "/v1/admin/rescan": {
            "post": _op(
                "Trigger a rescan of one or every cluster",
                ok="202",
                body=_json_body(RESCAN_SCHEMA, required=False),
            )
        },
        "/v1/admin/deliveries": {
            "get": _op(
                "Report deliveries, newest first (state=dead: the dead letters, with their "
                "last error)",
                params=[
                    _query("state", {"enum": ["pending", "sent", "dead"]}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
            )
        },
        "/v1/admin/deliveries/{delivery_id}/resend": {
            "post": _op(
                "Re-send a dead-lettered delivery (due at once, a fresh retry window, the "
                "same idempotency key)",
                ok="202",
                params=[_DELIVERY_ID],
                refusals=("400", "401", "403", "404", "409"),
            )
        },
        "/v1/admin/audit": {
            "get": _op(
                "Recent audit log entries, newest first",
                params=[
                    _query("actor"),
                    _query("action"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
                ],
            )
        },
        "/v1/admin/images": {
            "get": _op(
                "Every image in the fleet's workloads (Pods and pod templates, all container "
                "kinds), each counted once per workload, with its clusters",
                params=[
                    _query("cluster"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100000}),
                ],
            )
        },
        "/v1/admin/images/inventory": {
            "get": _op(
                "Every (workload, container, image) the fleet runs: repository, tag, digest, "
                "cluster, namespace, workload, since when (stored history)",
                params=[
                    _query("cluster"),
                    _query("repository"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100000}),
                ],
            )
        },
        "/v1/admin/advisories": {
            "get": _op("Loaded image advisories"),
            "post": _op(
                "Load advisories (replacing those with the same id); the fleet is re-evaluated "
                "at once",
                ok="201",
                body=_json_body(
                    {
                        "oneOf": [
                            ADVISORY_RECORD,
                            {"type": "array", "items": ADVISORY_RECORD},
                            {
                                "type": "object",
                                "required": ["advisories"],
                                "properties": {
                                    "advisories": {"type": "array", "items": ADVISORY_RECORD}
                                },
                            },
                        ]
                    }
                ),
            ),
        },
        "/v1/admin/advisories/{advisory_id}": {
            "delete": _op("Delete an advisory; its findings resolve", params=[_ADVISORY_ID])
        },
        "/v1/admin/keys": {
            "get": _op(
                "Admin keys (active; all=1 adds revoked ones)",
                params=[_query("all", {"enum": ["1", "true"]})],
            )
        },
        "/v1/admin/keys/{key_id}": {
            "delete": _op(
                "Revoke an admin key (refused at once; never the last active admin key)",
                params=[_KEY_ID],
                refusals=("400", "401", "403", "404", "409"),
            )
        },
        "/": {
            "get": {
                "summary": "Redirect to the admin pages",
                "responses": {"302": {"description": "to /admin/"}},
            }
        },
        "/healthz": {"get": _op("Liveness", signed=False)},
        "/readyz": {
            "get": {
                **_op("Readiness: database and Redis", signed=False),
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "text exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {"get": _op("This document", signed=False)},
        "/chatops/slack": {
            "post": {
                "summary": "Slack slash command (verified with the Slack signing secret)",
                "parameters": [
                    {
                        "name": "X-Slack-Request-Timestamp",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "X-Slack-Signature",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}}
                    },
                },
                "responses": {
                    "200": {"description": "the command's reply"},
                    "401": {"description": "bad Slack signature"},
                    "404": {"description": "chat-ops disabled"},
                },
            }
        },
        "/chatops/reports/{token}": {
            "get": {
                "summary": "A report shared from chat-ops through a signed, expiring link",
                "parameters": [
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "HTML report",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "404": {"description": "unknown or expired link"},
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "k8s-monitor ingest",
            "version": "1",
            "description": "Signed pushes from cluster agents and the signed admin API. "
            "Every request under /v1 carries an RFC 9421 signature "
            "(Ed25519); see docs/protocol.md.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "httpMessageSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Signature",
                    "description": "RFC 9421 HTTP Message Signature, alg ed25519, covering "
                    "@method @authority @path content-type content-digest with "
                    "created, keyid and nonce",
                }
            },
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details",
                    "content": {
                        "application/problem+json": {
                            "schema": {
                                "type": "object",
                                "required": ["type", "title", "status", "reason"],
                                "properties": {
                                    "type": {"type": "string"},
                                    "title": {"type": "string"},
                                    "status": {"type": "integer"},
                                    "reason": {"type": "string"},
                                    "detail": {"type": "string"},
                                    "instance": {"type": "string"},
                                    "field": {"type": "string"},
                                },
                            }
                        }
                    },
                }
            },
        },
    }
