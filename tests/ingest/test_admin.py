"""The signed admin API: roles, cluster and key management, telemetry, search, findings,
exemptions, rescans, and the audit trail of every action."""

from __future__ import annotations

import base64

import requests
from nacl.signing import SigningKey
from sqlalchemy import select

from contracts.tasks import RESCAN, SCAN_FLEET
from contracts.wire import TELEMETRY_SCHEMA_ID
from ingest.keys import public_key_pem
from store.models import AuditEntry, Finding, ScanRun
from store.snapshots import apply_pending
from tests.ingest.conftest import Agent, Server
from tests.support.manifests import cluster_objects, config_map, deployment, full_envelope


def _actions(server: Server, actor: str) -> list[str]:
    with server.sessions() as session:
        return list(
            session.scalars(
                select(AuditEntry.action).where(AuditEntry.actor == actor).order_by(AuditEntry.id)
            )
        )


def test_admin_requests_must_be_signed(server: Server) -> None:
    response = requests.get(server.base_url + "/v1/admin/clusters", timeout=5)
    assert response.status_code == 401
    assert response.json()["reason"] == "missing_signature"
    agent = server.register_cluster()  # an agent key is not an admin key
    refused = Agent(agent.base_url, agent.key, agent.key_id).json("GET", "/v1/admin/clusters")
    # Told apart from a wrong signature only in the server and audit logs (no key-id oracle).
    assert refused.status_code == 401 and refused.json()["reason"] == "bad_signature"


def test_register_cluster_with_key_then_agent_pushes(server: Server) -> None:
    admin = server.admin()
    name = admin.key_id.removesuffix("-key")
    agent_key = SigningKey.generate()
    cluster_id = "prod-" + admin.key_id[6:14]
    created = admin.json(
        "POST",
        "/v1/admin/clusters",
        {
            "id": cluster_id,
            "display_name": "Production",
            "team": "payments",
            "channel": "#payments-sec",
            "labels": {"env": "prod"},
            "keys": [
                {
                    "key_id": f"{cluster_id}-a",
                    "public_key": public_key_pem(bytes(agent_key.verify_key)),
                }
            ],
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["keys"][0]["key_id"] == f"{cluster_id}-a"
    agent = Agent(server.base_url, agent_key, f"{cluster_id}-a", cluster_id=cluster_id)
    assert (
        agent.push("telemetry", {"schema": TELEMETRY_SCHEMA_ID, "agent_version": "1"}).status_code
        == 202
    )

    again = admin.json("POST", "/v1/admin/clusters", {"id": cluster_id})
    assert again.status_code == 409

    shown = admin.json("GET", f"/v1/admin/clusters/{cluster_id}")
    assert shown.json()["team"] == "payments" and shown.json()["labels"] == {"env": "prod"}
    listed = admin.json("GET", "/v1/admin/clusters")
    assert cluster_id in [c["id"] for c in listed.json()["clusters"]]

    patched = admin.json("PATCH", f"/v1/admin/clusters/{cluster_id}", {"team": "core"})
    assert patched.status_code == 200 and patched.json()["team"] == "core"

    # Rotation: a second key, a third refused, revoke the first.
    second = SigningKey.generate()
    added = admin.json(
        "POST",
        f"/v1/admin/clusters/{cluster_id}/keys",
        {
            "key_id": f"{cluster_id}-b",
            "public_key": base64.b64encode(bytes(second.verify_key)).decode(),
        },
    )
    assert added.status_code == 201, added.text
    third = admin.json(
        "POST",
        f"/v1/admin/clusters/{cluster_id}/keys",
        {
            "key_id": f"{cluster_id}-c",
            "public_key": base64.b64encode(bytes(SigningKey.generate().verify_key)).decode(),
        },
    )
    assert third.status_code == 409
    revoked = admin.json("DELETE", f"/v1/admin/clusters/{cluster_id}/keys/{cluster_id}-a")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = agent.push("telemetry", {"schema": TELEMETRY_SCHEMA_ID, "agent_version": "1"})
    assert refused.status_code == 401 and refused.json()["reason"] == "revoked_key"

    disabled = admin.json("POST", f"/v1/admin/clusters/{cluster_id}/disable")
    assert disabled.json()["status"] == "disabled"
    rotated = Agent(server.base_url, second, f"{cluster_id}-b", cluster_id=cluster_id)
    blocked = rotated.push("telemetry", {"schema": TELEMETRY_SCHEMA_ID, "agent_version": "1"})
    assert blocked.status_code == 403

    assert _actions(server, name) == [
        "clusters.register",
        "clusters.register.refused",
        "clusters.show",
        "clusters.list",
        "clusters.update",
        "keys.add",
        "keys.add.refused",
        "keys.revoke",
        "clusters.disable",
    ]


def test_viewer_can_read_but_not_write(server: Server) -> None:
    viewer = server.admin(role="viewer")
    assert viewer.json("GET", "/v1/admin/clusters").status_code == 200
    refused = viewer.json("POST", "/v1/admin/clusters", {"id": "nope"})
    assert refused.status_code == 403 and refused.json()["reason"] == "forbidden_role"
    assert viewer.json("GET", "/v1/admin/audit").status_code == 403
    assert _actions(server, viewer.key_id.removesuffix("-key")) == [
        "clusters.list",
        "clusters.register.refused",
        "audit.read.refused",
    ]


def test_latest_telemetry_with_staleness(server: Server) -> None:
    agent = server.register_cluster()
    assert (
        agent.push(
            "telemetry", {"schema": TELEMETRY_SCHEMA_ID, "agent_version": "2.0", "node_count": 4}
        ).status_code
        == 202
    )
    rows = server.admin(role="viewer").json("GET", "/v1/admin/telemetry").json()["clusters"]
    mine = next(r for r in rows if r["cluster_id"] == agent.cluster_id)
    assert mine["agent_version"] == "2.0" and mine["node_count"] == 4
    assert 0 <= mine["staleness_seconds"] < 600
    assert mine["last_push"] is None  # this ping carried no report on a push


def test_latest_telemetry_carries_the_agents_last_push(server: Server) -> None:
    agent = server.register_cluster()
    report = {
        "result": "failed",
        "type": "delta",
        "digest": "sha256:" + "0" * 64,
        "objects": 3,
        "removed": 0,
        "at": "2026-11-27T08:00:00Z",
        "status": 409,
        "ok": False,
        "detail": "unknown_base_snapshot",
        "bytes": 512,
    }
    assert (
        agent.push(
            "telemetry",
            {"schema": TELEMETRY_SCHEMA_ID, "agent_version": "2.1", "last_push": report},
        ).status_code
        == 202
    )
    rows = server.admin(role="viewer").json("GET", "/v1/admin/telemetry").json()["clusters"]
    mine = next(r for r in rows if r["cluster_id"] == agent.cluster_id)
    assert mine["last_push"] == report


def test_json_path_search_over_current_manifests(server: Server) -> None:
    agent = server.register_cluster()
    objects = cluster_objects(6)
    assert agent.push("snapshots", full_envelope(objects)).status_code == 202
    with server.sessions() as session:
        apply_pending(session, agent.cluster_id)
        session.commit()
    viewer = server.admin(role="viewer")
    found = viewer.json(
        "POST",
        "/v1/admin/search",
        {"path": "$.spec.template.spec.containers[*].image", "clusters": [agent.cluster_id]},
    )
    assert found.status_code == 200, found.text
    images = sorted(v for m in found.json()["matches"] for v in m["values"])
    assert images == sorted(
        o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in objects
        if o["kind"] == "Deployment"
    )
    filtered = viewer.json(
        "POST",
        "/v1/admin/search",
        {"path": '$.data ? (@.key == "cfg-0")', "clusters": [agent.cluster_id]},
    )
    assert [m["resource"]["name"] for m in filtered.json()["matches"]] == ["cfg-0"]
    bad = viewer.json("POST", "/v1/admin/search", {"path": "$$$ not a path"})
    assert bad.status_code == 400 and bad.json()["reason"] == "invalid_json_path"


def _applied(server: Server, objects: list[dict]) -> Agent:
    agent = server.register_cluster()
    assert agent.push("snapshots", full_envelope(objects)).status_code == 202
    with server.sessions() as session:
        apply_pending(session, agent.cluster_id)
        session.commit()
    return agent


def test_distinct_search_counts_every_match_in_the_database(server: Server) -> None:
    first = _applied(
        server,
        [deployment(f"shop-{i}", image="registry/shop:1") for i in range(4)]
        + [deployment("edge", image="registry/edge:7"), config_map("cfg")],
    )
    second = _applied(server, [deployment("shop", image="registry/shop:1")])
    viewer = server.admin(role="viewer")
    path = "$.spec.template.spec.containers[*].image"
    both = [first.cluster_id, second.cluster_id]
    found = viewer.json(
        "POST", "/v1/admin/search", {"path": path, "clusters": both, "distinct": True}
    )
    assert found.status_code == 200, found.text
    assert found.json() == {
        "distinct": True,
        "count": 2,
        "truncated": False,
        "values": [
            {"value": "registry/shop:1", "occurrences": 5, "clusters": 2},
            {"value": "registry/edge:7", "occurrences": 1, "clusters": 1},
        ],
    }
    # `limit` caps the values listed, never the matches counted.
    top = viewer.json(
        "POST", "/v1/admin/search", {"path": path, "clusters": both, "distinct": True, "limit": 1}
    ).json()
    assert top["values"] == [{"value": "registry/shop:1", "occurrences": 5, "clusters": 2}]
    assert top["truncated"] is True
    one = viewer.json(
        "POST",
        "/v1/admin/search",
        {
            "path": path,
            "clusters": [second.cluster_id],
            "distinct": True,
            "kind": "Deployment",
            "namespace": "default",
        },
    ).json()
    assert one["values"] == [{"value": "registry/shop:1", "occurrences": 1, "clusters": 1}]
    many = viewer.json(
        "POST",
        "/v1/admin/search",
        {"path": path, "clusters": both, "distinct": True, "limit": 50_000},
    )
    assert many.status_code == 200
    capped = viewer.json("POST", "/v1/admin/search", {"path": path, "limit": 50_000})
    assert capped.status_code == 400 and capped.json()["reason"] == "schema_violation"
    bad = viewer.json("POST", "/v1/admin/search", {"path": "$$$ not a path", "distinct": True})
    assert bad.status_code == 400 and bad.json()["reason"] == "invalid_json_path"
    with server.sessions() as session:
        details = session.scalars(
            select(AuditEntry.details)
            .where(
                AuditEntry.action == "manifests.search",
                AuditEntry.actor == viewer.key_id.removesuffix("-key"),
            )
            .order_by(AuditEntry.id)
        ).first()
    assert details == {"path": path, "clusters": both, "distinct": True}


def test_findings_query_exemptions_and_rescan(server: Server) -> None:
    agent = server.register_cluster()
    with server.sessions() as session:
        session.add(
            Finding(
                cluster_id=agent.cluster_id,
                fingerprint="f" * 64,
                rule_id="K8S-001",
                api_version="v1",
                kind="Pod",
                namespace="default",
                name="web",
                severity="high",
                message="privileged container",
                status="open",
            )
        )
        session.commit()
    admin = server.admin()
    rows = admin.json("GET", f"/v1/admin/findings?cluster={agent.cluster_id}&severity=high")
    assert rows.status_code == 200
    assert [f["rule_id"] for f in rows.json()["findings"]] == ["K8S-001"]
    none = admin.json("GET", f"/v1/admin/findings?cluster={agent.cluster_id}&severity=low")
    assert none.json()["findings"] == []

    created = admin.json(
        "POST",
        "/v1/admin/exemptions",
        {
            "rule_ids": ["K8S-001"],
            "reason": "vendor agent needs it",
            "cluster_id": agent.cluster_id,
            "selector": {"namespace": "default", "name": "web"},
        },
    )
    assert created.status_code == 201, created.text
    exemption_id = created.json()["id"]
    assert created.json()["created_by"] == admin.key_id.removesuffix("-key")
    listed = admin.json("GET", f"/v1/admin/exemptions?cluster={agent.cluster_id}")
    assert exemption_id in [e["id"] for e in listed.json()["exemptions"]]
    no_reason = admin.json("POST", "/v1/admin/exemptions", {"rule_ids": ["X"], "reason": " "})
    assert no_reason.status_code == 400
    assert admin.json("DELETE", f"/v1/admin/exemptions/{exemption_id}").status_code == 200
    assert admin.json("DELETE", "/v1/admin/exemptions/999999999").status_code == 404

    triggered = admin.json("POST", "/v1/admin/rescan", {"cluster_id": agent.cluster_id})
    assert triggered.status_code == 202
    assert server.dispatcher.calls[-1] == (RESCAN, [], {"cluster_id": agent.cluster_id})
    fleet = admin.json("POST", "/v1/admin/rescan", {})
    assert fleet.status_code == 202
    assert server.dispatcher.calls[-1] == (SCAN_FLEET, [], {"trigger": "rescan"})
    actions = _actions(server, admin.key_id.removesuffix("-key"))
    assert actions[-1] == "scan.trigger"
    assert {"findings.query", "exemptions.create", "exemptions.list", "scan.trigger"} <= set(
        actions
    )


def test_tampered_admin_query_is_refused(server: Server) -> None:
    admin = server.admin(role="viewer")
    captured: dict[str, dict[str, str]] = {}

    def keep(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        captured["h"] = headers
        return headers, body

    assert admin.json("GET", "/v1/admin/findings?cluster=a", tamper=keep).status_code == 200
    # Same signature, different query: @query is covered, so it no longer verifies.
    moved = requests.get(
        server.base_url + "/v1/admin/findings?cluster=b", headers=captured["h"], timeout=5
    )
    assert moved.status_code == 401 and moved.json()["reason"] == "bad_signature"


def test_cluster_report_formats_and_scan_list(server: Server) -> None:
    agent = server.register_cluster()
    with server.sessions() as session:
        run = ScanRun(
            cluster_id=agent.cluster_id,
            trigger="rescan",
            state="done",
            object_count=12,
            counts={"open": 1},
        )
        session.add(run)
        session.flush()
        session.add(
            Finding(
                cluster_id=agent.cluster_id,
                fingerprint="e" * 64,
                rule_id="KM-101",
                api_version="v1",
                kind="Pod",
                namespace="default",
                name="web",
                severity="high",
                message="privileged container",
                status="open",
                last_scan_id=run.id,
                details={"title": "Privileged container", "cis": ["5.2.1"]},
            )
        )
        session.commit()
        run_id = run.id
    viewer = server.admin(role="viewer")
    scans = viewer.json("GET", f"/v1/admin/scans?cluster={agent.cluster_id}").json()["scans"]
    assert [s["id"] for s in scans] == [run_id] and scans[0]["state"] == "done"

    as_json = viewer.json("GET", f"/v1/admin/clusters/{agent.cluster_id}/report?format=json")
    assert as_json.status_code == 200, as_json.text
    report = as_json.json()
    assert [f["rule_id"] for f in report["findings"]] == ["KM-101"]
    assert report["summary"]["open"] == 1 and report["summary"]["objects"] == 12
    sarif = viewer.json("GET", f"/v1/admin/clusters/{agent.cluster_id}/report?format=sarif")
    assert sarif.headers["Content-Type"].startswith("application/sarif+json")
    log = sarif.json()
    assert log["runs"][0]["tool"]["driver"]["rules"][0]["id"] == "KM-101"
    assert log["runs"][0]["results"][0]["ruleId"] == "KM-101"
    policy = viewer.json("GET", f"/v1/admin/clusters/{agent.cluster_id}/report?format=policyreport")
    assert "KM-101" in policy.text
    html = viewer.json("GET", f"/v1/admin/clusters/{agent.cluster_id}/report?format=html")
    assert html.headers["Content-Type"].startswith("text/html") and "KM-101" in html.text
    bad = viewer.json("GET", f"/v1/admin/clusters/{agent.cluster_id}/report?format=pdf")
    assert bad.status_code == 400
    missing = viewer.json("GET", "/v1/admin/clusters/no-such/report")
    assert missing.status_code == 404
