"""Platform detection and the telemetry envelope before and after a collection."""

from __future__ import annotations

import jsonschema
import pytest

from agent.collect import CollectOptions, collect
from agent.kube import KubeClient
from agent.telemetry import CollectionStats, detect_platform, envelope
from contracts.wire import TELEMETRY_JSON_SCHEMA
from tests.fakes.kube_api import FakeCluster, KubeApiEmulator
from tests.fakes.kube_objects import node, small_cluster


@pytest.mark.parametrize(
    ("version", "providers", "platform"),
    [
        ("v1.29.3-eks-adc7111", set(), "EKS"),
        ("v1.28.7-gke.1026000", set(), "GKE"),
        ("v1.28.5", {"azure://"}, "AKS"),
        ("v1.28.5", {"aws://"}, "EKS"),
        ("v1.28.5", {"gce://"}, "GKE"),
        ("v1.29.2", set(), "other"),
        ("v1.29.2+k3s1", {"k3s://"}, "other"),
        ("v1.29.2", {"aws://", "azure://"}, "other"),
    ],
)
def test_detect_platform(version: str, providers: set[str], platform: str) -> None:
    assert detect_platform(version, providers) == platform


def test_aks_is_recognised_from_node_provider_ids(tmp_path) -> None:
    cluster = small_cluster(
        git_version="v1.28.5",
        provider_id="azure:///subscriptions/x/"
        "resourceGroups/mc_rg/providers/Microsoft.Compute/vms/aks-1",
    )
    cluster.add(node("node-3", provider_id="azure:///subscriptions/x/vms/aks-3"))
    with KubeApiEmulator(cluster) as api:
        client = KubeClient.connect(
            kubeconfig=str(api.write_kubeconfig(tmp_path / "kc")), timeout_s=10
        )
        stats = CollectionStats.of(collect(client, CollectOptions()))
    assert stats.platform == "AKS"
    assert stats.node_count == 3


def test_envelope_before_any_collection_is_valid() -> None:
    body = envelope(
        None, agent_version="0.1.0", last_push={"result": "none"}, key_fingerprint="SHA256:x", now=0
    )
    jsonschema.validate(body, TELEMETRY_JSON_SCHEMA)
    assert body["sent_at"] == "1970-01-01T00:00:00Z"
    assert "platform" not in body


def test_envelope_after_a_collection(
    kube: KubeClient, cluster: FakeCluster, options: CollectOptions
) -> None:
    stats = CollectionStats.of(collect(kube, options))
    body = envelope(stats, agent_version="0.1.0", last_push={}, key_fingerprint="SHA256:x")
    jsonschema.validate(body, TELEMETRY_JSON_SCHEMA)
    assert sum(body["object_counts"].values()) == 18


def test_node_and_namespace_counts_without_collecting_them(
    kube: KubeClient, emulator: KubeApiEmulator
) -> None:
    options = CollectOptions(include_types=frozenset({"pods"}))
    collection = collect(kube, options)
    assert set(collection.object_counts) == {"Pod"}
    assert not [k for k in collection.entries if "|Node|" in k or "|Namespace|" in k]
    assert collection.node_count == 2
    assert collection.namespace_count == 3
    assert collection.provider_ids == {"aws://"}


def test_counts_stay_unknown_when_forbidden(kube: KubeClient, emulator: KubeApiEmulator) -> None:
    emulator.forbid("nodes", "namespaces")
    collection = collect(kube, CollectOptions(include_types=frozenset({"pods"})))
    assert collection.node_count is None and collection.namespace_count is None
    assert collection.errors == {}  # not collected, so not an error either
