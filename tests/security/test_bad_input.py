"""Issue 13 points 2, 12 and 15: hostile or malformed input gets an exact 4xx, never a 500,
and nothing of it is stored."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from contracts.wire import MAX_MANIFEST_DEPTH, TELEMETRY_SCHEMA_ID
from store.models import Cluster, Exemption
from tests.ingest.conftest import Server
from tests.security.conftest import assert_refused, stored
from tests.support.manifests import config_map, deployment, full_envelope

TELEMETRY = {"schema": TELEMETRY_SCHEMA_ID, "agent_version": "1.0.0", "node_count": 3}
NOTHING = {"snapshots": 0, "pings": 0}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# ---- point 12: numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("snapshots", None),  # 1e400 inside a manifest
        ("telemetry", b'"collection_duration_s": 1e400'),
        ("telemetry", b'"details": {"x": -1e400}'),
        ("telemetry", b'"details": {"x": -9223372036854775809}'),  # just below -2^63
        ("telemetry", b'"details": {"x": 18446744073709551616}'),  # just above 2^64-1
    ],
)
def test_numbers_the_kubernetes_api_never_serves_are_refused(
    server: Server, kind: str, raw: bytes | None
) -> None:
    agent = server.register_cluster()
    if raw is None:
        body = json.dumps(full_envelope([deployment("web")])).replace(
            '"replicas": 2', '"replicas": 1e400'
        )
        assert "1e400" in body
        payload = body.encode()
    else:
        payload = json.dumps(TELEMETRY).encode()[:-1] + b", " + raw + b"}"
    problem = assert_refused(agent.push(kind, payload), 400, "invalid_json")
    assert "outside" in problem["detail"] or "beyond" in problem["detail"]
    assert stored(server, agent.cluster_id) == NOTHING


def test_the_64_bit_edges_themselves_are_accepted(server: Server) -> None:
    agent = server.register_cluster()
    payload = json.dumps(
        {**TELEMETRY, "details": {"low": -(2**63), "high": 2**64 - 1, "big": 1.7e308}}
    )
    assert agent.push("telemetry", payload.encode()).status_code == 202
    assert stored(server, agent.cluster_id) == {"snapshots": 0, "pings": 1}


# ---- point 2: free-form telemetry, objects per push, gzip bombs, parse budget -------------


@pytest.mark.parametrize(
    ("details", "field"),
    [
        ({"blob": "x" * 2001}, "$.details.blob"),  # one string over 2000 characters
        ({"d": _nested(5)}, "$.details.d"),  # deeper than 4 levels below details
        ({f"k{i}": "x" * 2000 for i in range(140)}, "$.details"),  # 280 KB > 256 KiB
    ],
    ids=["long-text", "too-deep", "too-big"],
)
def test_telemetry_details_are_bounded(server: Server, details: Any, field: str) -> None:
    agent = server.register_cluster()
    problem = assert_refused(
        agent.push("telemetry", {**TELEMETRY, "details": details}), 400, "schema_violation"
    )
    assert problem["field"].startswith(field)
    assert stored(server, agent.cluster_id) == NOTHING


def test_telemetry_details_within_bounds_are_accepted(server: Server) -> None:
    agent = server.register_cluster()
    details = {"d": _nested(4), "blob": "x" * 2000, "list": ["t"] * 1000}
    assert agent.push("telemetry", {**TELEMETRY, "details": details}).status_code == 202


def test_too_many_objects_in_one_push(server: Server) -> None:
    agent = server.register_cluster()
    limit = server.settings.max_objects_per_push
    body = (
        b'{"schema": "k8s-monitor/snapshot/v1", "objects": ['
        + b",".join([b"{}"] * (limit + 1))
        + b"]}"
    )
    problem = assert_refused(agent.push("snapshots", body), 413, "too_many_objects")
    assert problem["field"] == "$.objects"
    assert stored(server, agent.cluster_id) == NOTHING


def test_a_body_of_tiny_containers_is_refused_before_parsing(server: Server) -> None:
    agent = server.register_cluster()
    # 4.5 MB of empty objects: inside the byte caps, but about 200 MB once parsed.
    body = b'{"objects": [' + b"{}," * 1_500_000 + b"{}]}"
    assert len(body) < server.settings.max_decompressed_bytes
    assert_refused(agent.push("snapshots", body), 413, "too_complex")
    assert stored(server, agent.cluster_id) == NOTHING


def test_gzip_bomb_stops_at_the_inflation_cap(server: Server) -> None:
    agent = server.register_cluster()
    bomb = gzip.compress(b" " * (server.settings.max_decompressed_bytes + 1))
    response = agent.push(
        "snapshots", bomb, compress=False, extra_headers={"Content-Encoding": "gzip"}
    )
    assert_refused(response, 413, "decompressed_too_large")
    assert stored(server, agent.cluster_id) == NOTHING


# ---- point 12: manifest depth; point 15: names ---------------------------------------------


def test_a_manifest_deeper_than_kubernetes_types_is_refused(server: Server) -> None:
    agent = server.register_cluster()
    deep = config_map("deep")
    deep["data"] = _nested(MAX_MANIFEST_DEPTH)
    problem = assert_refused(
        agent.push("snapshots", full_envelope([deployment("web"), deep])), 400, "too_deeply_nested"
    )
    assert problem["field"] == "$.objects[1]"
    assert stored(server, agent.cluster_id) == NOTHING


@pytest.mark.parametrize(
    ("kind", "name", "namespace", "field"),
    [
        ("Deployment", "web\u200b", "default", "$.objects[0].metadata.name"),  # zero-width
        ("Deployment", "w\u0435b", "default", "$.objects[0].metadata.name"),  # Cyrillic e
        ("Deployment", "\u202eweb", "default", "$.objects[0].metadata.name"),  # RTL override
        ("Deployment", "Web", "default", "$.objects[0].metadata.name"),
        ("Deployment", "web\n", "default", "$.objects[0].metadata.name"),
        ("Deployment", "web", "Team_A", "$.objects[0].metadata.namespace"),
        ("Deployment", "web", "d" * 64, "$.objects[0].metadata.namespace"),
        ("Service", "1web", "default", "$.objects[0].metadata.name"),  # DNS-1035 label
        ("Namespace", "team.a", None, "$.objects[0].metadata.name"),  # DNS-1123 label
        ("ClusterRole", "a/b", None, "$.objects[0].metadata.name"),  # path segment
        ("ClusterRole", "..", None, "$.objects[0].metadata.name"),
    ],
)
def test_names_are_kubernetes_names(
    server: Server, kind: str, name: str, namespace: str | None, field: str
) -> None:
    agent = server.register_cluster()
    obj = deployment("web")
    obj["kind"] = kind
    obj["metadata"]["name"] = name
    if namespace is None:
        obj["metadata"].pop("namespace", None)
    else:
        obj["metadata"]["namespace"] = namespace
    problem = assert_refused(agent.push("snapshots", full_envelope([obj])), 400, "schema_violation")
    assert problem["field"] == field
    assert stored(server, agent.cluster_id) == NOTHING


def test_kubernetes_names_of_every_rule_are_accepted(server: Server) -> None:
    agent = server.register_cluster()
    objects = []
    for kind, name in (
        ("Deployment", "web.v2-a"),
        ("Service", "web"),
        ("Namespace", "team-a"),
        ("ClusterRole", "system:controller:job-controller"),
    ):
        obj = deployment("x")
        obj["kind"], obj["metadata"]["name"] = kind, name
        if kind in ("Namespace", "ClusterRole"):
            obj["metadata"].pop("namespace", None)
        objects.append(obj)
    assert agent.push("snapshots", full_envelope(objects)).status_code == 202


# ---- point 12: the admin API's text limits are the columns' ------------------------------


@pytest.mark.parametrize(("field", "limit"), [("team", 200), ("display_name", 200)])
def test_cluster_text_fields_at_and_past_the_column_length(
    server: Server, field: str, limit: int
) -> None:
    admin = server.admin()
    at = admin.json(
        "POST", "/v1/admin/clusters", {"id": f"edge-{field}".replace("_", "-"), field: "t" * limit}
    )
    assert at.status_code == 201, at.text
    past = admin.json(
        "POST",
        "/v1/admin/clusters",
        {"id": f"past-{field}".replace("_", "-"), field: "t" * (limit + 1)},
    )
    problem = assert_refused(past, 400, "schema_violation")
    assert problem["field"] == f"$.{field}"
    with server.sessions() as session:
        assert session.get(Cluster, f"past-{field}".replace("_", "-")) is None


def _exemptions(server: Server) -> int:
    with server.sessions() as session:
        return session.scalar(select(func.count()).select_from(Exemption)) or 0


@pytest.mark.parametrize(
    ("spec", "field_prefix"),
    [
        ({"cluster_id": ""}, "$.cluster_id"),
        ({"selector": {"name": 5}}, "$.selector"),
        ({"selector": {"labels": ["a"]}}, "$.selector"),
        ({"selector": {"owner": "x"}}, "$.selector"),
    ],
    ids=["empty-cluster", "number-name", "list-labels", "unknown-key"],
)
def test_exemption_input_is_validated_by_schema(
    server: Server, spec: dict[str, Any], field_prefix: str
) -> None:
    admin = server.admin()
    before = _exemptions(server)
    response = admin.json(
        "POST", "/v1/admin/exemptions", {"rule_ids": ["K8S-001"], "reason": "test", **spec}
    )
    problem = assert_refused(response, 400, "schema_violation")
    assert problem["field"].startswith(field_prefix)
    assert _exemptions(server) == before


@pytest.mark.parametrize(
    "labels",
    ["app in (web", "tier notin web", "=web", {"matchExpressions": "app"}],
    ids=["unclosed-set", "set-without-parens", "no-key", "expressions-not-a-list"],
)
def test_an_exemption_label_selector_the_scan_cannot_read_is_refused(
    server: Server, labels: Any
) -> None:
    """Stored exemptions are parsed by the same selector parser the scan matches with."""
    admin = server.admin()
    before = _exemptions(server)
    response = admin.json(
        "POST",
        "/v1/admin/exemptions",
        {"rule_ids": ["K8S-001"], "reason": "test", "selector": {"labels": labels}},
    )
    problem = assert_refused(response, 400, "schema_violation")
    assert "selector.labels" in problem["detail"]
    assert _exemptions(server) == before
