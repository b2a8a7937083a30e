"""Attack matrix against a running ingest server: every refusal, and a valid push after each."""

from __future__ import annotations

import base64
import gzip
import json
import time
from typing import Any

import pytest
import redis as redis_lib
import requests
from nacl.signing import SigningKey
from sqlalchemy import func, select

from contracts.hashing import content_hash, strip_server_noise
from contracts.tasks import PROCESS_SNAPSHOT
from contracts.wire import TELEMETRY_SCHEMA_ID
from ingest.app import create_app
from store import clusters
from store.models import KubeObject, ManifestBody, Snapshot, SnapshotDocument, TelemetryPing
from store.snapshots import apply_pending, decode_document
from tests.ingest.conftest import Agent, Server, start_server
from tests.support.manifests import cluster_objects, delta_envelope, full_envelope

TELEMETRY = {
    "schema": TELEMETRY_SCHEMA_ID,
    "agent_version": "1.0.0",
    "node_count": 3,
    "object_counts": {"Pod": 12},
}


def _stored(server: Server, cluster_id: str) -> dict[str, int]:
    with server.sessions() as session:
        snapshots = session.scalar(
            select(func.count()).select_from(Snapshot).where(Snapshot.cluster_id == cluster_id)
        )
        pings = session.scalar(
            select(func.count())
            .select_from(TelemetryPing)
            .where(TelemetryPing.cluster_id == cluster_id)
        )
    return {"snapshots": snapshots or 0, "pings": pings or 0}


def _assert_refused(response: Any, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert problem["reason"] == reason
    assert problem["type"].endswith(reason.replace("_", "-"))


def _still_works(server: Server, agent: Agent, before: dict[str, int]) -> None:
    """Nothing partial was stored by the hostile request, and a valid push is accepted."""
    assert _stored(server, agent.cluster_id) == before
    response = agent.push("telemetry", TELEMETRY)
    assert response.status_code == 202, response.text
    after = _stored(server, agent.cluster_id)
    assert after == {**before, "pings": before["pings"] + 1}


def test_valid_snapshot_is_committed_then_enqueued(server: Server) -> None:
    agent = server.register_cluster()
    envelope = full_envelope(cluster_objects(20))
    response = agent.push("snapshots", envelope)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted" and body["duplicate"] is False
    assert body["digest"] == envelope["digest"]
    with server.sessions() as session:
        snapshot = session.get(Snapshot, body["snapshot_id"])
        assert snapshot is not None and snapshot.state == "pending"
        assert snapshot.object_count == 20
        # The verified document itself, committed before the 202 (the worker splits it).
        staged = session.get(SnapshotDocument, snapshot.id)
        assert staged is not None and staged.floats is False
        assert decode_document(staged.document) == envelope
    assert server.dispatcher.calls == [(PROCESS_SNAPSHOT, [], {"snapshot_id": body["snapshot_id"]})]


def test_same_digest_twice_is_stored_once_and_acknowledged_both_times(server: Server) -> None:
    agent = server.register_cluster()
    envelope = full_envelope(cluster_objects(5))
    first = agent.push("snapshots", envelope)
    second = agent.push("snapshots", envelope)
    assert first.status_code == second.status_code == 202
    assert second.json()["duplicate"] is True
    assert second.json()["snapshot_id"] == first.json()["snapshot_id"]
    assert _stored(server, agent.cluster_id)["snapshots"] == 1
    assert len(server.dispatcher.calls) == 1


def test_delta_against_unknown_base_gets_409(server: Server) -> None:
    agent = server.register_cluster()
    base = cluster_objects(4)
    delta, _ = delta_envelope(base=base, changed=[cluster_objects(5)[4]])
    before = _stored(server, agent.cluster_id)
    _assert_refused(agent.push("snapshots", delta), 409, "unknown_base_snapshot")
    _still_works(server, agent, before)
    # With the base stored, the same delta is accepted.
    assert agent.push("snapshots", full_envelope(base)).status_code == 202
    assert agent.push("snapshots", delta).status_code == 202


def test_managed_fields_and_last_applied_are_dropped(server: Server) -> None:
    agent = server.register_cluster()
    objects = cluster_objects(2)
    noisy = json.loads(json.dumps(objects))
    noisy[0]["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    noisy[0]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        "keep": "me",
    }
    envelope = full_envelope(noisy)
    response = agent.push("snapshots", envelope)
    assert response.status_code == 202, response.text
    with server.sessions() as session:
        assert apply_pending(session, agent.cluster_id).applied == [response.json()["snapshot_id"]]
        session.commit()
        bodies = session.scalars(
            select(ManifestBody.body)
            .join(KubeObject, KubeObject.current_hash == ManifestBody.content_hash)
            .where(KubeObject.cluster_id == agent.cluster_id)
        ).all()
    assert len(bodies) == 2
    first = next(b for b in bodies if b["metadata"]["name"] == objects[0]["metadata"]["name"])
    assert "managedFields" not in first["metadata"]
    assert first["metadata"]["annotations"] == {"keep": "me"}


def test_secret_objects_are_refused_and_never_stored(server: Server) -> None:
    agent = server.register_cluster()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "default"},
        "data": {"pw": "aHVudGVyMg=="},
    }
    before = _stored(server, agent.cluster_id)
    response = agent.push("snapshots", full_envelope([*cluster_objects(2), secret]))
    _assert_refused(response, 422, "forbidden_kind")
    assert response.json()["field"] == "$.objects[2].kind"
    with server.sessions() as session:
        leaked = session.scalar(
            select(func.count())
            .select_from(ManifestBody)
            .where(ManifestBody.body["kind"].as_string() == "Secret")
        )
    assert leaked == 0
    _still_works(server, agent, before)


# ---- signature refusals ------------------------------------------------------------------


def _drop(*names: str):
    def tamper(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        return {k: v for k, v in headers.items() if k not in names}, body

    return tamper


def _replace_header(name: str, value: str):
    def tamper(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        return {**headers, name: value}, body

    return tamper


def _flip_body(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    data = json.loads(gzip.decompress(body))
    data["agent_version"] = "evil"
    return headers, gzip.compress(json.dumps(data).encode())


def _flip_signature(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    label, value = headers["Signature"].split("=", 1)
    raw = bytearray(base64.b64decode(value.strip(":")))
    raw[0] ^= 1
    flipped = base64.b64encode(bytes(raw)).decode()
    return {**headers, "Signature": f"{label}=:{flipped}:"}, body


SIGNATURE_CASES = {
    "no_signature": ({"tamper": _drop("Signature", "Signature-Input")}, "missing_signature"),
    "malformed_input": (
        {"tamper": _replace_header("Signature-Input", "sig1=(((")},
        "malformed_signature",
    ),
    "malformed_signature": (
        {"tamper": _replace_header("Signature", "sig1=:not base64!:")},
        "malformed_signature",
    ),
    "bad_signature": ({"tamper": _flip_signature}, "bad_signature"),
    "digest_mismatch": ({"tamper": _flip_body}, "digest_mismatch"),
    "missing_component": (
        {"sign_kwargs": {"components": ("@method", "@path", "content-digest")}},
        "missing_component",
    ),
    "no_nonce": ({"sign_kwargs": {"nonce": ""}}, "missing_parameter"),
    # Offsets from the server's clock, resolved when the request is signed (never at import).
    "too_old": ({"created_offset": -301}, "stale_signature"),
    "from_the_future": ({"created_offset": 400}, "stale_signature"),
    "unsupported_alg": ({"sign_kwargs": {"alg": "hmac-sha256"}}, "unsupported_algorithm"),
    # An unknown key id answers like a wrong signature (no key-id oracle, issue 13 point 14).
    "unknown_key": ({"sign_kwargs": {"key_id": "nobody"}}, "bad_signature"),
}


@pytest.mark.parametrize("case", sorted(SIGNATURE_CASES))
def test_signature_refusals(server: Server, case: str) -> None:
    agent = server.register_cluster()
    options, reason = SIGNATURE_CASES[case]
    options = dict(options)
    sign_kwargs = dict(options.pop("sign_kwargs", {}))
    if "created_offset" in options:
        sign_kwargs["created"] = int(server.clock()) + options.pop("created_offset")
    if "key_id" in sign_kwargs:
        key_id = sign_kwargs.pop("key_id")
        stranger = Agent(agent.base_url, agent.key, key_id, cluster_id=agent.cluster_id)
        response = stranger.push("telemetry", TELEMETRY, sign_kwargs=sign_kwargs, **options)
    else:
        response = agent.push("telemetry", TELEMETRY, sign_kwargs=sign_kwargs, **options)
    before = {"snapshots": 0, "pings": 0}
    _assert_refused(response, 401, reason)
    problem = response.json()
    assert problem["title"] == "Unauthorised"
    assert "detail" not in problem  # an unauthenticated caller learns the reason code only
    _still_works(server, agent, before)


def test_signature_is_judged_by_the_servers_clock(server: Server) -> None:
    """The window is measured on the app's injected clock: a signature made now is stale for a
    server whose clock runs 400 s ahead, and fine again once the clocks agree."""
    agent = server.register_cluster()
    created = int(time.time())
    server.clock.advance(400)
    _assert_refused(
        agent.push("telemetry", TELEMETRY, sign_kwargs={"created": created}), 401, "stale_signature"
    )
    server.clock.advance(-400)
    _still_works(server, agent, {"snapshots": 0, "pings": 0})


def test_replayed_request_is_refused(server: Server) -> None:
    agent = server.register_cluster()
    captured: dict[str, Any] = {}

    def capture(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        captured.update(headers=headers, body=body)
        return headers, body

    first = agent.push("telemetry", TELEMETRY, tamper=capture)
    assert first.status_code == 202
    replay = agent.push(
        "telemetry", TELEMETRY, tamper=lambda h, b: (captured["headers"], captured["body"])
    )
    _assert_refused(replay, 401, "replayed_nonce")
    _still_works(server, agent, {"snapshots": 0, "pings": 1})


def test_cluster_a_key_on_cluster_b_url_is_refused(server: Server) -> None:
    a = server.register_cluster()
    b = server.register_cluster()
    intruder = Agent(a.base_url, a.key, a.key_id, cluster_id=b.cluster_id)
    _assert_refused(intruder.push("telemetry", TELEMETRY), 401, "wrong_cluster")
    _assert_refused(
        intruder.push("snapshots", full_envelope(cluster_objects(1))), 401, "wrong_cluster"
    )
    assert _stored(server, b.cluster_id) == {"snapshots": 0, "pings": 0}
    _still_works(server, b, {"snapshots": 0, "pings": 0})


def test_revoked_key_is_refused_at_once_and_rotation_keeps_two_keys(server: Server) -> None:
    agent = server.register_cluster(keys=1)
    new_key = SigningKey.generate()
    with server.sessions() as session:
        clusters.add_cluster_key(
            session,
            agent.cluster_id,
            key_id=f"{agent.cluster_id}-new",
            public_key=bytes(new_key.verify_key),
        )
        session.commit()
    rotated = Agent(agent.base_url, new_key, f"{agent.cluster_id}-new", cluster_id=agent.cluster_id)
    assert agent.push("telemetry", TELEMETRY).status_code == 202
    assert rotated.push("telemetry", TELEMETRY).status_code == 202
    with server.sessions() as session:
        clusters.revoke_cluster_key(session, agent.cluster_id, agent.key_id)
        session.commit()
    _assert_refused(agent.push("telemetry", TELEMETRY), 401, "revoked_key")
    assert rotated.push("telemetry", TELEMETRY).status_code == 202


def test_disabled_cluster_gets_403(server: Server) -> None:
    agent = server.register_cluster(status="disabled")
    _assert_refused(agent.push("telemetry", TELEMETRY), 403, "cluster_disabled")
    assert _stored(server, agent.cluster_id) == {"snapshots": 0, "pings": 0}


# ---- hostile bodies ------------------------------------------------------------------------


def test_gzip_bomb_is_refused_not_inflated(server: Server) -> None:
    agent = server.register_cluster()
    limit = server.settings.max_decompressed_bytes
    bomb = gzip.compress(b" " * (limit + 1024 * 1024), compresslevel=9)
    assert len(bomb) < server.settings.max_body_bytes
    response = agent.push(
        "telemetry", bomb, compress=False, extra_headers={"Content-Encoding": "gzip"}
    )
    _assert_refused(response, 413, "decompressed_too_large")
    _still_works(server, agent, {"snapshots": 0, "pings": 0})


def test_oversize_body_is_413(server: Server) -> None:
    agent = server.register_cluster()
    huge = b"x" * (server.settings.max_body_bytes + 1)
    response = agent.push("telemetry", huge, compress=False)
    _assert_refused(response, 413, "body_too_large")
    _still_works(server, agent, {"snapshots": 0, "pings": 0})


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"schema": ', 400, "invalid_json"),
        (b'{"schema": "k8s-monitor/telemetry/v1", "agent_version": NaN}', 400, "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "too_deeply_nested"),
        (
            b'{"schema": "k8s-monitor/telemetry/v1", "agent_version": "\xff\xfe"}',
            400,
            "invalid_utf8",
        ),
        (
            b'{"schema": "k8s-monitor/telemetry/v1", "agent_version": "\\ud800"}',
            400,
            "invalid_unicode",
        ),
        (
            b'{"schema": "k8s-monitor/telemetry/v1", "agent_version": "a\\u0000b"}',
            400,
            "invalid_unicode",
        ),
        (b'{"schema": "k8s-monitor/telemetry/v1", "agent_version": 7}', 400, "schema_violation"),
        (
            b'{"schema": "k8s-monitor/telemetry/v1", "agent_version": "1", "node_count": "3"}',
            400,
            "schema_violation",
        ),
        (b'{"schema": "k8s-monitor/telemetry/v1"}', 400, "schema_violation"),
        (b"[]", 400, "schema_violation"),
        (
            b'{"schema": "k8s-monitor/telemetry/v1", "agent_version": "1", '
            b'"node_count": 123456789012345678901234567890}',
            400,
            "invalid_json",
        ),
    ],
    ids=[
        "truncated",
        "nan",
        "deep",
        "utf8",
        "surrogate",
        "nul",
        "type",
        "type2",
        "missing",
        "array",
        "int-beyond-64-bits",
    ],
)
def test_malformed_bodies(server: Server, body: bytes, status: int, reason: str) -> None:
    agent = server.register_cluster()
    _assert_refused(agent.push("telemetry", body), status, reason)
    _still_works(server, agent, {"snapshots": 0, "pings": 0})


def test_integer_beyond_64_bits_is_refused_with_a_reason(server: Server) -> None:
    agent = server.register_cluster()
    envelope = full_envelope(cluster_objects(3))
    envelope["objects"][0]["metadata"].setdefault("annotations", {})["a"] = "1" * 30
    text = json.dumps(envelope).replace(
        '"annotations": {', '"annotations": {"n": 1' + "0" * 25 + ", ", 1
    )
    response = agent.push("snapshots", text.encode())
    _assert_refused(response, 400, "invalid_json")
    assert "64-bit" in response.json()["detail"]
    _still_works(server, agent, {"snapshots": 0, "pings": 0})


def test_long_digit_strings_and_64_bit_integers_are_accepted(server: Server) -> None:
    agent = server.register_cluster()
    objects = cluster_objects(3)
    objects[0]["metadata"]["annotations"] = {"id": "1" * 30}
    objects[1]["spec"] = {**objects[1].get("spec", {}), "big": 2**64 - 1, "small": -(2**63)}
    response = agent.push("snapshots", full_envelope(objects))
    assert response.status_code == 202, response.text


def test_schema_violation_names_the_field(server: Server) -> None:
    agent = server.register_cluster()
    envelope = full_envelope(cluster_objects(3))
    del envelope["objects"][1]["metadata"]["name"]
    response = agent.push("snapshots", envelope)
    _assert_refused(response, 400, "schema_violation")
    assert response.json()["field"] == "$.objects[1].metadata"
    assert "name" in response.json()["detail"]
    _still_works(server, agent, {"snapshots": 0, "pings": 0})


def test_truncated_gzip_is_400(server: Server) -> None:
    agent = server.register_cluster()
    stream = gzip.compress(json.dumps(TELEMETRY).encode())[:-12]
    response = agent.push(
        "telemetry", stream, compress=False, extra_headers={"Content-Encoding": "gzip"}
    )
    _assert_refused(response, 400, "invalid_gzip")
    _still_works(server, agent, {"snapshots": 0, "pings": 0})


def test_unknown_cluster_url(server: Server) -> None:
    agent = server.register_cluster()
    stranger = Agent(agent.base_url, agent.key, agent.key_id, cluster_id="no-such-cluster")
    _assert_refused(stranger.push("telemetry", TELEMETRY), 401, "wrong_cluster")
    bad_id = Agent(agent.base_url, agent.key, agent.key_id, cluster_id="Bad_ID")
    _assert_refused(bad_id.push("telemetry", TELEMETRY), 404, "not_found")


def test_rate_limit_gives_429_with_retry_after(
    server: Server, pg_engine, redis_url, redis_key_prefix
) -> None:
    settings = server.settings.replace(rate_limit_per_minute=3)
    client = redis_lib.Redis.from_url(redis_url)
    app = create_app(
        settings,
        store=server.sessions,
        dispatch=server.dispatcher,
        redis_client=client,
        redis_prefix=redis_key_prefix + "rl:",
    )
    http, thread, base_url = start_server(app)
    try:
        agent = server.register_cluster()
        agent.base_url = base_url
        statuses = [agent.push("telemetry", TELEMETRY).status_code for _ in range(4)]
        assert statuses[:3] == [202, 202, 202]
        limited = agent.push("telemetry", TELEMETRY)
        _assert_refused(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        other = server.register_cluster()
        other.base_url = base_url
        assert other.push("telemetry", TELEMETRY).status_code == 202  # per cluster
    finally:
        http.shutdown()
        thread.join(timeout=5)
        client.close()


def test_broker_down_still_acknowledges_after_commit(server: Server) -> None:
    server.dispatcher.fail = True
    agent = server.register_cluster()
    response = agent.push("snapshots", full_envelope(cluster_objects(3)))
    assert response.status_code == 202, response.text
    assert response.json()["enqueued"] is False
    with server.sessions() as session:
        snapshot = session.get(Snapshot, response.json()["snapshot_id"])
        assert snapshot is not None and snapshot.state == "pending"  # the sweep will find it
    metrics = requests.get(server.base_url + "/metrics", timeout=5).text
    assert "k8smon_enqueue_failures_total 1.0" in metrics


def test_chunked_upload_is_capped_and_accepted_when_small(server: Server) -> None:
    agent = server.register_cluster()
    small = gzip.compress(json.dumps(TELEMETRY).encode())

    def chunked(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], Any]:
        return headers, iter([body[:10], body[10:]])  # no Content-Length: chunked encoding

    assert (
        agent.push(
            "telemetry",
            small,
            compress=False,
            tamper=chunked,
            extra_headers={"Content-Encoding": "gzip"},
        ).status_code
        == 202
    )
    huge = b"x" * (server.settings.max_body_bytes + 1)

    def chunked_huge(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], Any]:
        return headers, (body[i : i + 65536] for i in range(0, len(body), 65536))

    response = agent.push("telemetry", huge, compress=False, tamper=chunked_huge)
    _assert_refused(response, 413, "body_too_large")
    _still_works(server, agent, {"snapshots": 0, "pings": 1})


def test_unauthenticated_bodies_are_not_read(server: Server) -> None:
    agent = server.register_cluster()
    junk = b"x" * (server.settings.max_body_bytes - 10)
    refused = agent.push(
        "telemetry", junk, compress=False, tamper=_drop("Signature", "Signature-Input")
    )
    _assert_refused(refused, 401, "missing_signature")
    forged = agent.push("telemetry", junk, compress=False, tamper=_flip_signature)
    _assert_refused(forged, 401, "bad_signature")
    metrics = requests.get(server.base_url + "/metrics", timeout=5).text
    assert 'k8smon_push_bytes_in_total{kind="telemetry"}' not in metrics  # nothing read
    _still_works(server, agent, {"snapshots": 0, "pings": 0})


def test_redis_down_pushes_still_accepted_and_replays_still_refused(server: Server) -> None:
    # As create_app builds its own client: REDIS_URL set, nothing listening there.
    app = create_app(
        server.settings.replace(redis_url="redis://127.0.0.1:1/0"),
        store=server.sessions,
        dispatch=server.dispatcher,
    )
    http, thread, base_url = start_server(app)
    try:
        agent = server.register_cluster()
        agent.base_url = base_url
        captured: dict[str, Any] = {}

        def capture(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
            captured.update(headers=headers, body=body)
            return headers, body

        first = agent.push("snapshots", full_envelope(cluster_objects(3)), tamper=capture)
        assert first.status_code == 202, first.text  # durability first
        replay = agent.push(
            "snapshots", b"", tamper=lambda h, b: (captured["headers"], captured["body"])
        )
        _assert_refused(replay, 401, "replayed_nonce")  # the process-local fallback
        assert requests.get(base_url + "/readyz", timeout=5).status_code == 503
    finally:
        http.shutdown()
        thread.join(timeout=5)


def test_floats_and_unusual_strings_are_hashed_as_the_agent_hashes_them(server: Server) -> None:
    """The server hashes float-free snapshots with orjson and the others with the standard
    library; either way each stored body's hash is the agent's (the digest check agrees)."""
    agent = server.register_cluster()
    floats = cluster_objects(3)
    floats[0]["spec"] = {**floats[0].get("spec", {}), "tiny": 1e-05, "huge": 1e16, "z": -0.0}
    plain = cluster_objects(3)
    plain[0]["metadata"]["annotations"] = {"é\u2028": '\x1b\x7f"\\ \U0001f600', "ä": "", "Z": "1"}
    for objects in (floats, plain):
        response = agent.push("snapshots", full_envelope(objects))
        assert response.status_code == 202, response.text
        with server.sessions() as session:
            # The worker reads the staged document again: the hashes must come out the same.
            assert apply_pending(session, agent.cluster_id).applied == [
                response.json()["snapshot_id"]
            ]
            session.commit()
            stored = set(session.scalars(select(ManifestBody.content_hash)))
        assert {content_hash(strip_server_noise(o)) for o in objects} <= stored
