"""Normalisation: an unchanged object keeps its hash across pushes, a real change does not."""

from __future__ import annotations

import copy
import json

from agent.collect import CollectOptions, collect
from agent.kube import KubeClient
from agent.normalise import normalise
from contracts.hashing import LAST_APPLIED_ANNOTATION, content_hash
from tests.fakes.kube_api import FakeCluster
from tests.fakes.kube_objects import churn, deployment, node, pod


def test_same_cluster_twice_gives_the_same_hashes(
    kube: KubeClient, options: CollectOptions
) -> None:
    first = collect(kube, options).hashes()
    second = collect(kube, options).hashes()
    assert first == second
    assert len(first) == 18


def test_volatile_churn_keeps_every_hash(
    kube: KubeClient, cluster: FakeCluster, options: CollectOptions
) -> None:
    before = collect(kube, options).hashes()
    assert churn(cluster) > 0
    after = collect(kube, options).hashes()
    assert after == before


def test_a_real_change_changes_only_that_hash(
    kube: KubeClient, cluster: FakeCluster, options: CollectOptions
) -> None:
    before = collect(kube, options).hashes()

    def new_image(obj: dict) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "shop/web:1.5"

    cluster.edit(lambda o: o["kind"] == "Deployment", new_image)
    after = collect(kube, options).hashes()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"apps/v1|Deployment|shop|web"}


def test_noise_is_dropped_and_the_input_left_alone() -> None:
    raw = deployment("web", namespace="shop")
    raw["metadata"].update(
        resourceVersion="42", generation=7, selfLink="/x", managedFields=[{"manager": "kubectl"}]
    )
    raw["metadata"]["annotations"]["control-plane.alpha.kubernetes.io/leader"] = "{}"
    original = copy.deepcopy(raw)
    clean = normalise(raw)
    assert raw == original
    meta = clean["metadata"]
    for gone in ("resourceVersion", "generation", "selfLink", "managedFields"):
        assert gone not in meta
    assert LAST_APPLIED_ANNOTATION not in meta["annotations"]
    assert "control-plane.alpha.kubernetes.io/leader" not in meta["annotations"]
    assert meta["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert "status" not in clean  # replica counts and conditions churn
    assert clean["spec"] == raw["spec"]


def test_pod_status_keeps_the_images_actually_running() -> None:
    raw = pod("web-1", namespace="shop", image="shop/web:1.4", restarts=3)
    clean = normalise(raw)
    assert clean["status"] == {
        "phase": "Running",
        "qosClass": "Burstable",
        "containerStatuses": [
            {
                "name": "main",
                "image": "shop/web:1.4",
                "imageID": "docker.io/library/nginx@sha256:" + "ab" * 32,
            }
        ],
    }
    restarted = pod("web-1", namespace="shop", image="shop/web:1.4", restarts=9)
    assert content_hash(normalise(restarted)) == content_hash(clean)
    swapped = pod("web-1", namespace="shop", image="evil/miner:latest", restarts=3)
    assert content_hash(normalise(swapped)) != content_hash(clean)


def test_node_heartbeats_do_not_change_the_hash() -> None:
    a = normalise(node("n1", heartbeat="2026-01-01T00:00:00Z"))
    b = normalise(node("n1", heartbeat="2026-01-01T00:05:00Z"))
    assert content_hash(a) == content_hash(b)
    assert a["status"]["nodeInfo"]["kubeletVersion"] == "v1.29.3"
    assert "conditions" not in a["status"] and "images" not in a["status"]


def test_collected_hashes_are_the_contract_content_hash(
    kube: KubeClient, options: CollectOptions
) -> None:
    collection = collect(kube, options)
    for entry in collection.entries.values():
        assert entry.content_hash == content_hash(json.loads(entry.body))


def test_an_issued_certificate_is_kept_but_csr_conditions_are_not() -> None:
    csr = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "alice"},
        "spec": {"request": "LS0t", "signerName": "kubernetes.io/kube-apiserver-client"},
        "status": {
            "certificate": "LS0tLS1CRUdJTi",
            "conditions": [{"type": "Approved", "lastUpdateTime": "2026-01-05T10:00:00Z"}],
        },
    }
    assert normalise(csr)["status"] == {"certificate": "LS0tLS1CRUdJTi"}
