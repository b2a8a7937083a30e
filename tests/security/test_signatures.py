"""Issue 13 points 10 and 14 (and the signature attacks the ingest tests already cover): a
signature binds the whole body digest, and outsiders cannot tell unknown key ids from wrong
signatures."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from contracts.httpsig import Item, content_digest
from contracts.wire import TELEMETRY_SCHEMA_ID
from tests.ingest.conftest import Agent, Server
from tests.ingest.test_push import _flip_signature
from tests.security.conftest import assert_refused, audit_rows, stored

TELEMETRY = {"schema": TELEMETRY_SCHEMA_ID, "agent_version": "1.0.0", "node_count": 3}
GENUINE = gzip.compress(json.dumps(TELEMETRY).encode())
FORGED = gzip.compress(json.dumps({**TELEMETRY, "node_count": 999}).encode())
BASE = ("@method", "@authority", "@path", "@query", "content-type")


def _push_swapped(agent: Agent, digest_component: Item, digest_header: str) -> object:
    """Sign the genuine body with `digest_component` covering `digest_header`, then swap in a
    forged body and a Content-Digest whose sha-256 matches the forgery (a man in the middle)."""

    def swap(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        forged_digest = content_digest(FORGED).split("=", 1)[1]
        headers["Content-Digest"] = digest_header.replace(
            content_digest(GENUINE).split("=", 1)[1], forged_digest
        )
        return headers, FORGED

    return agent.request(
        "POST",
        f"/v1/clusters/{agent.cluster_id}/telemetry",
        GENUINE,
        extra_headers={"Content-Encoding": "gzip", "Content-Digest": digest_header},
        sign_kwargs={"components": (*BASE, digest_component)},
        tamper=swap,
    )


def test_signature_over_one_foreign_digest_member_does_not_bind_the_body(server: Server) -> None:
    agent = server.register_cluster()
    header = f"{content_digest(GENUINE)}, x-id=:AAAA:"
    response = _push_swapped(agent, Item("content-digest", {"key": "x-id"}), header)
    problem = assert_refused(response, 401, "missing_component")
    assert "detail" not in problem
    assert stored(server, agent.cluster_id) == {"snapshots": 0, "pings": 0}


@pytest.mark.parametrize(
    "component",
    [
        Item("content-digest"),
        Item("content-digest", {"key": "sha-256"}),
        Item("content-digest", {"sf": True}),
    ],
    ids=["whole-field", "verified-member", "structured"],
)
def test_accepted_digest_coverage_still_refuses_a_swapped_body(
    server: Server, component: Item
) -> None:
    agent = server.register_cluster()
    response = _push_swapped(agent, component, content_digest(GENUINE))
    assert_refused(response, 401, "bad_signature")
    assert stored(server, agent.cluster_id) == {"snapshots": 0, "pings": 0}


@pytest.mark.parametrize(
    "component",
    [
        Item("content-digest"),
        Item("content-digest", {"key": "sha-256"}),
        Item("content-digest", {"sf": True}),
    ],
    ids=["whole-field", "verified-member", "structured"],
)
def test_accepted_digest_coverage_accepts_the_genuine_body(server: Server, component: Item) -> None:
    agent = server.register_cluster()
    response = agent.request(
        "POST",
        f"/v1/clusters/{agent.cluster_id}/telemetry",
        GENUINE,
        extra_headers={"Content-Encoding": "gzip"},
        sign_kwargs={"components": (*BASE, component)},
    )
    assert response.status_code == 202, response.text
    assert stored(server, agent.cluster_id) == {"snapshots": 0, "pings": 1}


def test_unknown_key_and_wrong_signature_look_the_same_to_outsiders(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    agent = server.register_cluster()
    stranger = Agent(agent.base_url, agent.key, "nobody-here", cluster_id=agent.cluster_id)

    with caplog.at_level(logging.WARNING, logger="k8smon.ingest"):
        unknown = stranger.push("telemetry", TELEMETRY)
        wrong = agent.push("telemetry", TELEMETRY, tamper=_flip_signature)
    unknown_problem = assert_refused(unknown, 401, "bad_signature")
    wrong_problem = assert_refused(wrong, 401, "bad_signature")
    assert unknown_problem == wrong_problem
    assert unknown.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"]
    # The precise reason is kept for operators: in the server log and in the audit log.
    refusals = [json.loads(r.getMessage()) for r in caplog.records if "request_refused" in r.msg]
    assert [(r["reason"], r["private_reason"]) for r in refusals] == [
        ("bad_signature", "unknown_key"),
        ("bad_signature", None),
    ]
    rows = [
        r
        for r in audit_rows(server, action="auth.refused")
        if r.details["key_id"] in ("nobody-here", agent.key_id)
    ]
    assert [(r.details["key_id"], r.details["reason"]) for r in rows] == [
        ("nobody-here", "unknown_key"),
        (agent.key_id, "bad_signature"),
    ]
    assert stored(server, agent.cluster_id) == {"snapshots": 0, "pings": 0}


def test_unknown_admin_key_is_a_bad_signature_too(server: Server) -> None:
    agent = server.register_cluster()
    as_admin = Agent(agent.base_url, agent.key, agent.key_id)
    assert_refused(as_admin.json("GET", "/v1/admin/clusters"), 401, "bad_signature")
    reasons = [
        r.details["reason"]
        for r in audit_rows(server, action="auth.refused")
        if r.details["key_id"] == agent.key_id
    ]
    assert reasons == ["unknown_key"]
