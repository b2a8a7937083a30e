"""Incomplete collections (issue 19, defects 1-3): never a full snapshot, 403 = unknown,
included types served only at a non-preferred version.

Against the emulated API server; tests/k8s runs the same scenarios against a real one.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema

from agent.collect import FORBIDDEN, CollectOptions, collect
from agent.kube import KubeClient, KubeError
from agent.loop import Agent
from contracts.resources import ResourceRef
from contracts.wire import TELEMETRY_JSON_SCHEMA
from tests.agent.conftest import FakeTime
from tests.agent.receiver import Receiver, Reply
from tests.agent.test_process import REPO, _env, _events
from tests.fakes.kube_api import FakeCluster, FakeGroup, KubeApiEmulator
from tests.fakes.kube_objects import config_map


def _keys(cluster: FakeCluster, kind: str) -> set[str]:
    return {ResourceRef.of(o).key for o in cluster.all_objects() if o["kind"] == kind}


def _unreachable_after_lists(agent: Agent, lists: int) -> None:
    """The API server goes away after `lists` list requests (mid-collection): every later
    request fails as KubeClient reports a refused connection."""
    original = agent.kube.get
    seen = 0

    def get(path: str, *, query: Any = None) -> dict[str, Any]:
        nonlocal seen
        if query:
            seen += 1
        if seen > lists:
            raise KubeError(0, "MaxRetryError", "Connection refused")
        return original(path, query=query)

    agent.kube.get = get  # type: ignore[method-assign]


# -- defect 1: an incomplete collection is never a full snapshot ----------------------------------


def test_an_api_server_lost_mid_first_collection_pushes_nothing(
    agent: Agent, receiver: Receiver, emulator: KubeApiEmulator
) -> None:
    _unreachable_after_lists(agent, 3)
    assert agent.push_cycle() is None
    assert receiver.snapshots() == []
    assert agent.acked is None
    assert agent.last_push["result"] == "incomplete"
    assert len(agent.last_push["not_collected"]) > 3  # every type after the third list
    assert agent.ping().ok
    details = receiver.telemetry()[-1].document["details"]
    assert set(details["not_collected"].values()) == {"failed"}


def test_the_first_full_push_waits_for_a_complete_collection(
    agent: Agent, receiver: Receiver, cluster: FakeCluster, emulator: KubeApiEmulator
) -> None:
    emulator.fail_discovery("cert-manager.io/v1")
    assert agent.push_cycle() is None
    assert agent.last_push["not_collected"] == ["discovery /apis/cert-manager.io/v1"]
    assert receiver.snapshots() == []

    emulator.behaviour.failing_group_versions.clear()
    assert agent.push_cycle().ok
    full = receiver.snapshots()[-1].document
    assert full["type"] == "full"
    pushed = {ResourceRef.of(o).key for o in full["objects"]}
    assert _keys(cluster, "Certificate") <= pushed


def test_a_conflict_while_incomplete_never_falls_back_to_a_full_push(
    agent: Agent, receiver: Receiver, cluster: FakeCluster, emulator: KubeApiEmulator
) -> None:
    assert agent.push_cycle().ok
    emulator.fail_discovery("cert-manager.io/v1")
    cluster.add(config_map("new", namespace="shop"))
    receiver.script.append(Reply(409, body={"reason": "base_digest_mismatch"}))
    assert agent.push_cycle().status == 409
    assert [p.document["type"] for p in receiver.snapshots()] == ["full", "delta"]
    assert agent.acked is None  # starts afresh with the next complete collection

    assert agent.push_cycle() is None  # still incomplete: nothing to send
    emulator.behaviour.failing_group_versions.clear()
    assert agent.push_cycle().ok
    assert [p.document["type"] for p in receiver.snapshots()] == ["full", "delta", "full"]


def test_once_exits_non_zero_and_names_the_types_that_failed(
    receiver: Receiver, key_file: Path, kubeconfig: Path, emulator: KubeApiEmulator
) -> None:
    emulator.fail_discovery("cert-manager.io/v1")
    emulator.throttle("configmaps", times=1000)
    result = subprocess.run(
        [sys.executable, "-m", "agent", "once"],
        env=_env(receiver, key_file, kubeconfig),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert receiver.snapshots() == []
    events = {e["event"]: e for e in _events(result.stderr)}
    incomplete = events["once.incomplete"]
    assert incomplete["not_collected"] == ["configmaps", "discovery /apis/cert-manager.io/v1"]
    assert "configmaps" in incomplete["message"]
    ping = receiver.telemetry()[-1].document
    assert ping["last_push"]["result"] == "incomplete"
    assert ping["details"]["not_collected"] == {
        "configmaps": "failed",
        "discovery /apis/cert-manager.io/v1": "failed",
    }


# -- defect 2: a 403 on a type is "unknown", not "empty" ------------------------------------------


def test_a_type_that_turns_forbidden_keeps_its_objects(
    agent: Agent, receiver: Receiver, cluster: FakeCluster, emulator: KubeApiEmulator
) -> None:
    assert agent.push_cycle().ok
    config_maps = _keys(cluster, "ConfigMap")
    assert config_maps and config_maps <= set(agent.acked.hashes)

    emulator.forbid("configmaps")
    cluster.add(config_map("unseen", namespace="shop"))
    cluster.delete("v1", "Node", None, "node-2")
    assert agent.push_cycle().ok
    delta = receiver.snapshots()[-1].document
    assert delta["type"] == "delta"
    # Only the Node really went; every ConfigMap is carried over as last known.
    assert [r["kind"] for r in delta["removed"]] == ["Node"]
    assert config_maps <= set(agent.acked.hashes)

    assert agent.ping().ok
    ping = receiver.telemetry()[-1].document
    jsonschema.validate(ping, TELEMETRY_JSON_SCHEMA)
    assert ping["details"]["not_collected"] == {"configmaps": FORBIDDEN}
    assert ping["details"]["forbidden_types"] == ["configmaps"]

    emulator.behaviour.forbidden.clear()
    assert agent.push_cycle().ok
    back = receiver.snapshots()[-1].document
    assert {o["metadata"]["name"] for o in back["objects"]} == {"unseen"}
    assert back["removed"] == []


def test_a_due_full_push_is_deferred_while_a_held_type_is_forbidden(
    agent: Agent, receiver: Receiver, cluster: FakeCluster, emulator, fake_time: FakeTime
) -> None:
    assert agent.push_cycle().ok
    emulator.forbid("configmaps")
    cluster.add(config_map("z", namespace="default"))
    fake_time.now += agent.config.full_push_interval_s + 1
    agent.push_cycle()
    assert [p.document["type"] for p in receiver.snapshots()] == ["full"]  # nothing changed
    cluster.delete("v1", "Node", None, "node-2")
    assert agent.push_cycle().ok
    assert receiver.snapshots()[-1].document["type"] == "delta"

    emulator.behaviour.forbidden.clear()
    assert agent.push_cycle().ok
    assert receiver.snapshots()[-1].document["type"] == "full"


def test_a_forbidden_included_type_withholds_the_first_full_push(
    agent: Agent, receiver: Receiver, emulator: KubeApiEmulator
) -> None:
    agent.config = replace(agent.config, include_types=frozenset({"pods", "configmaps"}))
    emulator.forbid("configmaps")
    assert agent.push_cycle() is None
    assert agent.last_push == {
        "result": "incomplete",
        "not_collected": ["configmaps"],
        "at": agent.last_push["at"],
    }
    assert receiver.snapshots() == []


def test_a_forbidden_type_outside_an_include_list_does_not_block_the_first_push(
    agent: Agent, receiver: Receiver, emulator: KubeApiEmulator
) -> None:
    # No include list: a type RBAC never allowed is out of view, not a hole in what we hold.
    emulator.forbid("clusterroles.rbac.authorization.k8s.io")
    assert agent.push_cycle().ok
    assert receiver.snapshots()[-1].document["type"] == "full"
    assert agent.stats is not None
    assert agent.stats.not_collected == {"clusterroles.rbac.authorization.k8s.io": FORBIDDEN}


def test_a_namespace_that_turns_forbidden_keeps_only_its_objects(
    kube: KubeClient, cluster: FakeCluster, emulator: KubeApiEmulator
) -> None:
    options = CollectOptions(
        include_types=frozenset({"configmaps"}), include_namespaces=frozenset({"shop", "default"})
    )
    emulator.forbid("configmaps", namespace="shop")
    collection = collect(kube, options)
    assert collection.not_collected == {"configmaps in shop": FORBIDDEN}
    assert collection.failed("v1|ConfigMap|shop|web-config")
    assert not collection.failed("v1|ConfigMap|kube-system|coredns")
    assert collection.incomplete() == ["configmaps in shop"]


# -- defect 3: included types served only at a non-preferred version ------------------------------


def _serve_cron_jobs_only_at_v1beta1(cluster: FakeCluster) -> None:
    """batch/v1 is preferred but serves Jobs only; CronJobs are at batch/v1beta1 (Kubernetes
    1.20)."""
    cluster.resources = [
        replace(r, version="v1beta1") if (r.group, r.plural) == ("batch", "cronjobs") else r
        for r in cluster.resources
    ]
    cluster.groups = [
        FakeGroup("batch", ["v1", "v1beta1"], "v1") if g.name == "batch" else g
        for g in cluster.groups
    ]


def _cron_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1beta1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {}}}},
    }


def test_an_included_type_falls_back_to_a_served_version(
    kube: KubeClient, cluster: FakeCluster, emulator: KubeApiEmulator
) -> None:
    _serve_cron_jobs_only_at_v1beta1(cluster)
    cluster.add(_cron_job("nightly"))
    include = frozenset({"cronjobs.batch", "jobs.batch", "widgets.example.com", "secrets"})
    collection = collect(kube, CollectOptions(include_types=include))
    assert "batch/v1beta1|CronJob|shop|nightly" in collection.entries
    assert collection.unserved_types == ["widgets.example.com"]
    assert "/apis/batch/v1beta1/cronjobs" in emulator.paths()
    # Only the group an entry names is looked up at other versions.
    assert "/apis/cert-manager.io/v1alpha2" not in emulator.paths()


def test_without_an_include_list_non_preferred_versions_are_never_read(
    kube: KubeClient, cluster: FakeCluster, emulator: KubeApiEmulator
) -> None:
    _serve_cron_jobs_only_at_v1beta1(cluster)
    collection = collect(kube, CollectOptions())
    assert collection.unserved_types == []
    non_preferred = ("/apis/batch/v1beta1", "/apis/cert-manager.io/v1alpha2")
    assert not [p for p in emulator.paths() if p.startswith(non_preferred)]


def test_unserved_types_reach_telemetry(
    agent: Agent, receiver: Receiver, cluster: FakeCluster
) -> None:
    _serve_cron_jobs_only_at_v1beta1(cluster)
    cluster.add(_cron_job("nightly"))
    agent.config = replace(
        agent.config,
        include_types=frozenset(
            {"cronjobs.batch", "validatingadmissionpolicies.admissionregistration.k8s.io"}
        ),
    )
    assert agent.push_cycle().ok
    kinds = {o["kind"] for o in receiver.snapshots()[-1].document["objects"]}
    assert kinds == {"CronJob"}
    assert agent.ping().ok
    details = receiver.telemetry()[-1].document["details"]
    assert details["unserved_types"] == ["validatingadmissionpolicies.admissionregistration.k8s.io"]
