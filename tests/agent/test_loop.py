"""The push cycle against the emulated cluster and a signature-checking receiver."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

import jsonschema
import pytest

from agent.config import AgentConfig
from agent.kube import KubeClient
from agent.loop import Agent
from agent.signing import AgentKey
from agent.transport import Sender
from contracts.hashing import content_hash, state_digest
from contracts.resources import ResourceRef
from contracts.wire import TELEMETRY_JSON_SCHEMA
from tests.agent.conftest import FakeTime
from tests.agent.receiver import Receiver, Reply
from tests.fakes.kube_api import FakeCluster
from tests.fakes.kube_objects import config_map


def _expected_state(cluster: FakeCluster, agent: Agent) -> set[str]:
    return {
        ResourceRef.of(o).key
        for o in cluster.all_objects()
        if o["kind"] not in {"Secret", "Event", "Lease"}
    }


def test_full_then_delta_then_nothing(
    agent: Agent, receiver: Receiver, cluster: FakeCluster
) -> None:
    first = agent.push_cycle()
    assert first is not None and first.ok
    push = receiver.snapshots()[-1]
    assert push.verdict == "verified"
    assert push.path == "/v1/clusters/prod-eu/snapshots"
    assert push.headers["Content-Encoding"] == "gzip"
    assert push.headers["User-Agent"] == "k8s-monitor-agent/0.1.0"
    full = push.document
    assert full["type"] == "full"
    assert {ResourceRef.of(o).key for o in full["objects"]} == _expected_state(cluster, agent)
    assert full["digest"] == state_digest(
        (ResourceRef.of(o).key, content_hash(o)) for o in full["objects"]
    )

    cluster.add(config_map("new-one", namespace="shop"))
    cluster.delete("v1", "Service", "shop", "web")
    second = agent.push_cycle()
    assert second is not None and second.ok
    delta = receiver.snapshots()[-1].document
    assert delta["type"] == "delta"
    assert delta["base_digest"] == full["digest"]
    assert [o["metadata"]["name"] for o in delta["objects"]] == ["new-one"]
    assert delta["removed"] == [
        {"apiVersion": "v1", "kind": "Service", "namespace": "shop", "name": "web"}
    ]

    assert agent.push_cycle() is None  # unchanged: nothing to send
    assert len(receiver.snapshots()) == 2
    assert agent.last_push["result"] == "unchanged"


def test_a_409_on_a_delta_triggers_a_full_push(
    agent: Agent, receiver: Receiver, cluster: FakeCluster
) -> None:
    agent.push_cycle()
    cluster.add(config_map("another", namespace="shop"))
    receiver.script.append(Reply(409, body={"title": "unknown base digest"}))
    outcome = agent.push_cycle()
    assert outcome is not None and outcome.ok
    kinds = [p.document["type"] for p in receiver.snapshots()]
    assert kinds == ["full", "delta", "full"]
    assert receiver.snapshots()[-1].document["digest"] == agent.acked.digest


def test_full_push_again_after_the_full_push_interval(
    agent: Agent, receiver: Receiver, cluster: FakeCluster, fake_time: FakeTime
) -> None:
    agent.push_cycle()
    cluster.add(config_map("x", namespace="shop"))
    fake_time.now += 60
    agent.push_cycle()
    cluster.add(config_map("y", namespace="shop"))
    fake_time.now += agent.config.full_push_interval_s
    agent.push_cycle()
    assert [p.document["type"] for p in receiver.snapshots()] == ["full", "delta", "full"]


def test_an_undeliverable_push_is_replaced_by_the_next_one(
    agent: Agent, receiver: Receiver, cluster: FakeCluster, fake_time: FakeTime
) -> None:
    agent.push_cycle()
    base = agent.acked
    receiver.default = Reply(503, headers={"Retry-After": "7"})
    cluster.add(config_map("first-change", namespace="shop"))
    outcome = agent.push_cycle()
    assert outcome is not None and outcome.status == 503
    assert agent.acked == base  # nothing acknowledged, nothing queued
    assert fake_time.sleeps and min(fake_time.sleeps) >= 7  # Retry-After honoured
    assert sum(fake_time.sleeps) <= agent.config.push_interval_s
    failed_attempts = len(receiver.snapshots()) - 1

    receiver.default = Reply(202)
    cluster.add(config_map("second-change", namespace="shop"))
    assert agent.push_cycle().ok
    last = receiver.snapshots()[-1].document
    assert len(receiver.snapshots()) == 1 + failed_attempts + 1
    assert last["type"] == "delta" and last["base_digest"] == base.digest
    assert sorted(o["metadata"]["name"] for o in last["objects"]) == [
        "first-change",
        "second-change",
    ]


def test_a_refused_push_is_not_retried(agent: Agent, receiver: Receiver) -> None:
    receiver.default = Reply(401, body={"type": "about:blank", "detail": "unknown_key"})
    outcome = agent.push_cycle()
    assert outcome is not None and outcome.status == 401
    assert len(receiver.snapshots()) == 1
    assert agent.last_push["result"] == "failed"
    assert agent.last_push["detail"] == "unknown_key"
    assert agent.acked is None


def test_telemetry_ping(agent: Agent, receiver: Receiver, emulator) -> None:
    emulator.forbid("clusterroles.rbac.authorization.k8s.io")
    agent.push_cycle()
    assert agent.ping().ok
    ping = receiver.telemetry()[-1]
    assert ping.verdict == "verified"
    body = ping.document
    jsonschema.validate(body, TELEMETRY_JSON_SCHEMA)
    assert body["platform"] == "EKS"
    assert body["kubernetes_version"] == "v1.29.3-eks-adc7111"
    assert body["node_count"] == 2
    assert body["namespace_count"] == 3
    assert body["object_counts"]["Pod"] == 2
    assert "ClusterRole" not in body["object_counts"]
    assert body["errors"]["clusterroles.rbac.authorization.k8s.io"].startswith("forbidden")
    assert body["last_push"]["result"] == "accepted"
    assert body["last_push"]["type"] == "full"
    assert body["details"]["key_fingerprint"] == agent.key_fingerprint
    assert body["collection_duration_s"] >= 0


def test_run_loop_stops_when_told(
    config: AgentConfig, kube: KubeClient, agent_key: AgentKey, receiver: Receiver
) -> None:
    sender = Sender(
        server_url=config.server_url,
        cluster_id=config.cluster_id,
        key=agent_key,
        key_id="k1",
        timeout_s=10,
    )
    stop = threading.Event()
    agent = Agent(
        config=replace(config, push_interval_s=3600),
        kube=kube,
        sender=sender,
        key_fingerprint=agent_key.fingerprint,
        stop=stop,
    )
    thread = threading.Thread(target=agent.run)
    thread.start()
    assert receiver.wait_for(lambda r: r.telemetry(), timeout=30)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [p.document["type"] for p in receiver.snapshots()] == ["full"]


def test_a_stop_during_collection_pushes_nothing(
    agent: Agent, receiver: Receiver, emulator
) -> None:
    calls = []
    original = agent.kube.get

    def get_then_stop(path: str, *, query=None):
        calls.append(path)
        if query:  # the first list request: SIGTERM arrives mid-collection
            agent.stop.set()
        return original(path, query=query)

    agent.kube.get = get_then_stop  # type: ignore[method-assign]
    assert agent.push_cycle() is None
    assert receiver.snapshots() == []
    lists = [r for r in emulator.requests if "limit" in r.query]
    # It finished paging the type in hand, then listed nothing more.
    assert lists and len({r.path for r in lists}) == 1


def test_an_unexpected_error_in_a_cycle_is_logged_not_fatal(
    agent: Agent, receiver: Receiver, caplog
) -> None:
    def boom(_body: bytes):
        raise RuntimeError("sender exploded")

    agent.sender.snapshot = boom  # type: ignore[method-assign]
    agent.log.addHandler(caplog.handler)  # the agent logger may not propagate (own handler)
    try:
        agent._guarded(agent.push_cycle)
    finally:
        agent.log.removeHandler(caplog.handler)
    assert any(r.getMessage() == "cycle.error" for r in caplog.records)
    assert agent.ping().ok  # the agent is still usable


def test_a_due_full_push_is_deferred_while_a_type_fails_to_list(
    agent: Agent, receiver: Receiver, cluster: FakeCluster, emulator, fake_time: FakeTime
) -> None:
    agent.push_cycle()
    emulator.fail_discovery("cert-manager.io/v1")
    cluster.add(config_map("z", namespace="shop"))
    fake_time.now += agent.config.full_push_interval_s + 1
    assert agent.push_cycle().ok
    delta = receiver.snapshots()[-1].document
    assert delta["type"] == "delta"
    assert delta["removed"] == []  # the Certificate was carried over, not deleted
    assert "cert-manager.io/v1|Certificate|shop|web" in agent.acked.hashes

    emulator.behaviour.failing_group_versions.clear()
    assert agent.push_cycle().ok
    assert receiver.snapshots()[-1].document["type"] == "full"


def test_a_long_retry_after_delays_the_next_cycle(
    agent: Agent, receiver: Receiver, fake_time: FakeTime
) -> None:
    receiver.default = Reply(429, headers={"Retry-After": "900"}, body={"reason": "rate_limited"})
    outcome = agent.push_cycle()
    assert outcome is not None and outcome.status == 429
    assert len(receiver.snapshots()) == 1  # 900 s is past the push interval: no retry now
    assert agent.hold_until == fake_time.now + 900
    assert agent.last_push["detail"] == "rate_limited"


def test_the_loop_waits_out_a_long_retry_after(
    config: AgentConfig, kube: KubeClient, agent_key: AgentKey, receiver: Receiver
) -> None:
    receiver.default = Reply(429, headers={"Retry-After": "900"})
    receiver.telemetry_reply = Reply(202)
    time_ = FakeTime()
    pauses: list[float] = []

    def wait(seconds: float) -> bool:
        pauses.append(seconds)
        time_.now += seconds
        return True  # stop at the first wait

    sender = Sender(
        server_url=config.server_url,
        cluster_id=config.cluster_id,
        key=agent_key,
        key_id="k",
        timeout_s=10,
    )
    agent = Agent(
        config=replace(config, ping_interval_s=5000),
        kube=kube,
        sender=sender,
        key_fingerprint="f",
        clock=time_.clock,
        wait=wait,
        rng=random.Random(0),
    )
    agent.run()
    # The push gave up at once (900 s is past its deadline), the ping was accepted, and the
    # loop's idle wait runs until the Retry-After has passed, not just the push interval.
    assert len(receiver.snapshots()) == 1 and len(receiver.telemetry()) == 1
    assert pauses == [pytest.approx(900, abs=1)]


def test_a_delta_the_server_finds_invalid_is_followed_by_a_full_push(
    agent: Agent, receiver: Receiver, cluster: FakeCluster
) -> None:
    agent.push_cycle()
    cluster.add(config_map("one", namespace="shop"))
    receiver.script.append(Reply(400, body={"reason": "invalid_snapshot"}))
    assert agent.push_cycle().status == 400
    cluster.add(config_map("two", namespace="shop"))
    assert agent.push_cycle().ok
    assert [p.document["type"] for p in receiver.snapshots()] == ["full", "delta", "full"]
