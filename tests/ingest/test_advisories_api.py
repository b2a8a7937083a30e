"""The admin API for image advisories and the running-image inventory: load (all or nothing,
400 naming the field), replace by id, list, delete; each change enqueues the fleet evaluation
after commit; viewers may read, not load."""

from __future__ import annotations

from contracts.tasks import EVALUATE_FLEET
from store.snapshots import apply_pending
from tests.ingest.conftest import Server
from tests.support.manifests import deployment, full_envelope

RECORD = {
    "id": "TEST-API-1",
    "severity": "high",
    "summary": "test advisory <b>not markup</b>",
    "url": "https://advisories.example/TEST-API-1",
    "affected": [{"repository": "*/log4j-app", "introduced": "2.0.0", "fixed": "2.15.0"}],
}


def _evaluations(server: Server) -> int:
    return sum(1 for name, _a, _k in server.dispatcher.calls if name == EVALUATE_FLEET)


def test_load_list_replace_delete_advisories(server: Server) -> None:
    admin, viewer = server.admin(), server.admin(role="viewer")
    loaded = admin.json("POST", "/v1/admin/advisories", {"advisories": [RECORD]})
    assert loaded.status_code == 201, loaded.text
    assert loaded.json() == {
        "created": ["TEST-API-1"],
        "replaced": [],
        "count": 1,
        "evaluation": "requested",
    }
    assert _evaluations(server) == 1
    listed = viewer.json("GET", "/v1/admin/advisories").json()["advisories"]
    assert [(a["id"], a["severity"], a["affected"][0]["fixed"]) for a in listed] == [
        ("TEST-API-1", "high", "2.15.0")
    ]
    again = admin.json("POST", "/v1/admin/advisories", {**RECORD, "severity": "critical"})
    assert again.status_code == 200 and again.json()["replaced"] == ["TEST-API-1"]
    listed = viewer.json("GET", "/v1/admin/advisories").json()["advisories"]
    assert [a["severity"] for a in listed] == ["critical"]

    # all or nothing: the second record's bad field refuses the whole body, naming it
    good = {**RECORD, "id": "TEST-API-2"}
    bad = {**RECORD, "id": "TEST-API-3", "affected": [{"repository": "x", "fixed": "soon"}]}
    refused = admin.json("POST", "/v1/admin/advisories", [good, bad])
    assert refused.status_code == 400
    assert refused.json()["reason"] == "invalid_advisory"
    assert refused.json()["detail"].startswith("advisories[1].affected[0].fixed:")
    for body in ({"id": "X"}, "text", [], {"advisories": "x"}, {**RECORD, "severity": 5}):
        answer = admin.json("POST", "/v1/admin/advisories", body)
        assert answer.status_code == 400, (body, answer.text)
    ids = [a["id"] for a in viewer.json("GET", "/v1/admin/advisories").json()["advisories"]]
    assert ids == ["TEST-API-1"]
    assert viewer.json("POST", "/v1/admin/advisories", good).status_code == 403
    assert _evaluations(server) == 2  # refused loads enqueue nothing

    deleted = admin.json("DELETE", "/v1/admin/advisories/TEST-API-1")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert _evaluations(server) == 3
    assert admin.json("DELETE", "/v1/admin/advisories/TEST-API-1").status_code == 404
    assert viewer.json("GET", "/v1/admin/advisories").json() == {"advisories": [], "count": 0}


def test_inventory_lists_where_each_image_runs(server: Server) -> None:
    agent = server.register_cluster()
    objects = [
        deployment("app", namespace="shop", image="registry.example/shop/log4j-app:2.14.1"),
        deployment("web", namespace="shop", image="nginx:latest"),
    ]
    assert agent.push("snapshots", full_envelope(objects)).status_code == 202
    with server.sessions() as session:
        apply_pending(session, agent.cluster_id)
        session.commit()
    viewer = server.admin(role="viewer")
    answer = viewer.json(
        "GET", f"/v1/admin/images/inventory?cluster={agent.cluster_id}&repository=*log4j*"
    ).json()
    assert answer["count"] == 1 and not answer["truncated"]
    row = answer["images"][0]
    assert {k: row[k] for k in ("repository", "tag", "version", "kind", "name", "container")} == {
        "repository": "registry.example/shop/log4j-app",
        "tag": "2.14.1",
        "version": "2.14.1",
        "kind": "Deployment",
        "name": "app",
        "container": "main",
    }
    assert row["cluster_id"] == agent.cluster_id and row["since"]
    everything = viewer.json("GET", f"/v1/admin/images/inventory?cluster={agent.cluster_id}")
    latest = [r for r in everything.json()["images"] if r["tag"] == "latest"]
    assert latest[0]["version"] is None and "not a version" in latest[0]["version_error"]
