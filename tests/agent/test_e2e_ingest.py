"""End to end: emulated cluster → agent → real ingest server on PostgreSQL → stored state.

The cluster and its key are registered through the signed admin API (without a key id, so the
server derives one and the agent must derive the same); the agent pushes a full snapshot, a
delta after changes, recovers from a 409, and pings telemetry; after the worker's apply step the
live manifests in PostgreSQL equal what the emulated cluster holds, normalised.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import redis
import requests
from nacl.signing import SigningKey
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from agent.config import AgentConfig
from agent.kube import KubeClient
from agent.loop import Agent
from agent.normalise import normalise
from agent.signing import AgentKey, default_key_id
from agent.snapshot import AckedState
from agent.transport import Sender
from contracts.hashing import content_hash
from contracts.httpsig import HttpRequest, sign_request
from contracts.resources import ResourceRef
from ingest.app import create_app
from settings import Settings
from store import admin_keys
from store.db import make_session_factory
from store.manifests import current_manifests
from store.models import TelemetryPing
from store.snapshots import apply_pending
from store.telemetry import collection_gaps
from tests.fakes.kube_api import FakeCluster, KubeApiEmulator
from tests.fakes.kube_objects import config_map, deployment, pod

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@dataclass
class Ingest:
    url: str
    sessions: sessionmaker[Session]
    tasks: list[str]


@pytest.fixture
def ingest(
    pg_engine: Engine, test_settings: Settings, redis_url: str, redis_key_prefix: str
) -> Iterator[Ingest]:
    sessions = make_session_factory(pg_engine)
    tasks: list[str] = []

    def dispatch(task_name: str, *, args: Any = None, kwargs: Any = None) -> None:
        tasks.append(task_name)

    client = redis.Redis.from_url(redis_url)
    settings = test_settings.replace(redis_url=redis_url, rate_limit_per_minute=1000)
    app = create_app(
        settings,
        store=sessions,
        dispatch=dispatch,
        redis_client=client,
        redis_prefix=redis_key_prefix,
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Ingest(f"http://127.0.0.1:{server.server_port}", sessions, tasks)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        client.close()


def _register(ingest: Ingest, cluster_id: str, agent_key: AgentKey) -> dict[str, Any]:
    """Register the cluster and the agent's public key (PEM, no key id) via the admin API."""
    admin = SigningKey.generate()
    name = f"admin-{uuid.uuid4().hex[:8]}"
    with ingest.sessions() as session:
        admin_keys.create_admin_key(
            session, name, role="admin", key_id=f"{name}-key", public_key=bytes(admin.verify_key)
        )
        session.commit()
    body = json.dumps({"id": cluster_id, "keys": [{"public_key": agent_key.public_key_pem}]})
    url = f"{ingest.url}/v1/admin/clusters"
    headers = [("Content-Type", "application/json")]
    added = sign_request(
        HttpRequest("POST", url, headers, body.encode()),
        key_id=f"{name}-key",
        sign=lambda b: admin.sign(b).signature,
        components=("@method", "@authority", "@path", "@query", "content-type", "content-digest"),
    )
    response = requests.post(url, data=body, headers={**dict(headers), **added}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def _stored_state(ingest: Ingest, cluster_id: str) -> dict[str, str]:
    with ingest.sessions() as session:
        apply_pending(session, cluster_id)  # what the worker does after the push is enqueued
        session.commit()
        return {
            m.ref.key: m.content_hash for m in current_manifests(session, cluster_id=cluster_id)
        }


def _emulated_state(cluster: FakeCluster) -> dict[str, str]:
    return {
        ResourceRef.of(o).key: content_hash(normalise(o))
        for o in cluster.all_objects()
        if o["kind"] not in {"Secret", "Event", "Lease"}
    }


def test_agent_pushes_into_the_real_ingest_and_the_stored_state_equals_the_cluster(
    ingest: Ingest,
    cluster: FakeCluster,
    kube: KubeClient,
    agent_key: AgentKey,
    config: AgentConfig,
) -> None:
    cluster_id = f"e2e-{uuid.uuid4().hex[:8]}"
    registered = _register(ingest, cluster_id, agent_key)
    key_id = default_key_id(cluster_id, agent_key.public_key)
    assert [k["key_id"] for k in registered["keys"]] == [key_id]

    cluster.add_all(pod(f"batch-{i}", namespace="shop", image=f"shop/batch:{i}") for i in range(30))
    sender = Sender(
        server_url=ingest.url, cluster_id=cluster_id, key=agent_key, key_id=key_id, timeout_s=30
    )
    agent = Agent(
        config=replace(config, server_url=ingest.url, cluster_id=cluster_id),
        kube=kube,
        sender=sender,
        key_fingerprint=agent_key.fingerprint,
        rng=random.Random(0),
        wait=lambda _s: False,
    )

    first = agent.push_cycle()
    assert first is not None and first.status == 202, first
    assert _stored_state(ingest, cluster_id) == _emulated_state(cluster)
    with ingest.sessions() as session:
        stored_pod = next(m for m in current_manifests(session, cluster_id=cluster_id, kind="Pod"))
    assert "managedFields" not in stored_pod.body["metadata"]
    assert stored_pod.body["status"]["containerStatuses"][0]["image"].startswith("shop/")

    # Changes in the cluster arrive as a delta.
    cluster.add(config_map("feature-flags", namespace="shop"))
    cluster.add(deployment("web", namespace="shop", image="shop/web:2.0"))
    cluster.delete("v1", "Pod", "shop", "batch-7")
    second = agent.push_cycle()
    assert second is not None and second.status == 202, second
    assert agent.last_push["type"] == "delta"
    assert _stored_state(ingest, cluster_id) == _emulated_state(cluster)

    # An agent whose base the server does not know (a restore, a lost ack) gets 409 → full.
    agent.acked = AckedState("sha256:" + "0" * 64, dict(agent.acked.hashes))
    cluster.add(config_map("after-409", namespace="shop"))
    third = agent.push_cycle()
    assert third is not None and third.status == 202
    assert agent.last_push["type"] == "full"
    assert _stored_state(ingest, cluster_id) == _emulated_state(cluster)

    assert agent.ping().status == 202
    with ingest.sessions() as session:
        ping = session.scalars(
            select(TelemetryPing).where(TelemetryPing.cluster_id == cluster_id)
        ).one()
    assert ping.platform == "EKS"
    assert ping.kubernetes_version == "v1.29.3-eks-adc7111"
    assert ping.node_count == 2 and ping.namespace_count == 3
    assert sum(ping.object_counts.values()) == len(_emulated_state(cluster))
    assert ping.agent_version == "0.1.0"
    assert ingest.tasks  # processing was enqueued after each commit


def test_a_forbidden_type_keeps_its_stored_objects_and_shows_in_telemetry(
    ingest: Ingest,
    cluster: FakeCluster,
    emulator: KubeApiEmulator,
    kube: KubeClient,
    agent_key: AgentKey,
    config: AgentConfig,
) -> None:
    cluster_id = f"e2e-{uuid.uuid4().hex[:8]}"
    _register(ingest, cluster_id, agent_key)
    key_id = default_key_id(cluster_id, agent_key.public_key)
    sender = Sender(
        server_url=ingest.url, cluster_id=cluster_id, key=agent_key, key_id=key_id, timeout_s=30
    )
    agent = Agent(
        config=replace(config, server_url=ingest.url, cluster_id=cluster_id),
        kube=kube,
        sender=sender,
        key_fingerprint=agent_key.fingerprint,
        rng=random.Random(0),
        wait=lambda _s: False,
    )
    assert agent.push_cycle().status == 202
    before = _stored_state(ingest, cluster_id)
    assert any("|ConfigMap|" in key for key in before)

    emulator.forbid("configmaps")  # RBAC for ConfigMaps removed
    cluster.delete("v1", "Pod", "shop", "web-5d9c-a1b2c")
    assert agent.push_cycle().status == 202
    after = _stored_state(ingest, cluster_id)
    # The Pod is gone; the ConfigMaps, unknown this round, are kept as they were.
    assert after == {k: v for k, v in before.items() if not k.endswith("|web-5d9c-a1b2c")}

    assert agent.ping().status == 202
    with ingest.sessions() as session:
        ping = session.scalars(
            select(TelemetryPing).where(TelemetryPing.cluster_id == cluster_id)
        ).one()
        assert collection_gaps(ping)["not_collected"] == {"configmaps": "forbidden"}


def test_pings_buffered_while_ingest_was_unreachable_are_stored_with_their_own_time(
    ingest: Ingest, kube: KubeClient, agent_key: AgentKey, config: AgentConfig
) -> None:
    cluster_id = f"e2e-{uuid.uuid4().hex[:8]}"
    _register(ingest, cluster_id, agent_key)
    key_id = default_key_id(cluster_id, agent_key.public_key)
    now = [1_800_000_000.0]

    def wait(seconds: float) -> bool:
        now[0] += seconds
        return False

    agent = Agent(
        config=replace(config, server_url=ingest.url, cluster_id=cluster_id, ping_interval_s=5),
        kube=kube,
        sender=Sender(  # nothing listens on port 1: connection refused
            server_url="http://127.0.0.1:1",
            cluster_id=cluster_id,
            key=agent_key,
            key_id=key_id,
            timeout_s=5,
        ),
        key_fingerprint=agent_key.fingerprint,
        clock=lambda: now[0],
        wall=lambda: now[0],
        wait=wait,
        rng=random.Random(0),
    )
    made = []
    for minute in range(3):
        now[0] = 1_800_000_000.0 + 60 * minute
        made.append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now[0])))
        assert agent.ping().status == 0
    assert len(agent.unsent) == 3

    agent.sender = Sender(
        server_url=ingest.url, cluster_id=cluster_id, key=agent_key, key_id=key_id, timeout_s=30
    )
    now[0] = 1_800_000_000.0 + 600
    made.append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now[0])))
    assert agent.ping().status == 202
    assert len(agent.unsent) == 0
    with ingest.sessions() as session:
        pings = session.scalars(
            select(TelemetryPing)
            .where(TelemetryPing.cluster_id == cluster_id)
            .order_by(TelemetryPing.id)
        ).all()
    # Stored in the order they were made, each with the time it was made.
    assert [p.details["sent_at"] for p in pings] == made
    assert [p.details["details"]["seq"] for p in pings] == [1, 2, 3, 4]
