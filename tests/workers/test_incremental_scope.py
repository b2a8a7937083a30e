"""An incremental rescan reconciles only what can change (`FindingScope`): random change sets
across the relations cluster rules follow leave the findings a full scan of the new state gives,
and the counts the unscoped incremental reconciliation gives."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.factories import make_exemption
from tests.workers.conftest import Pipeline
from workers.services import scanning

Objects = list[dict[str, Any]]

LIFECYCLE = ("new", "open", "exempted", "resolved", "reopened", "unexempted", "kept_unevaluated")


def _pick(objects: Objects, rng: random.Random, kind: str) -> int | None:
    found = [i for i, o in enumerate(objects) if o.get("kind") == kind]
    return rng.choice(found) if found else None


def _relabel_pod(objects: Objects, rng: random.Random) -> None:
    """A pod's selected-by labels change: services, PDBs and network policies select anew."""
    index = _pick(objects, rng, "Pod")
    if index is not None:
        objects[index]["metadata"]["labels"] = {"moved": str(rng.random())}


def _delete(kind: str) -> Callable[[Objects, random.Random], None]:
    def change(objects: Objects, rng: random.Random) -> None:
        index = _pick(objects, rng, kind)
        if index is not None:
            del objects[index]

    return change


def _new_network_policy(objects: Objects, rng: random.Random) -> None:
    namespaces = sorted({o["metadata"].get("namespace") or "default" for o in objects})
    objects.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": f"deny-{rng.randrange(10**6)}",
                "namespace": rng.choice(namespaces),
            },
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        }
    )


def _rebind(objects: Objects, rng: random.Random) -> None:
    """A RoleBinding now grants cluster-admin to its namespace's default service account."""
    index = _pick(objects, rng, "RoleBinding")
    if index is not None:
        binding = objects[index]
        binding["roleRef"] = {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        }
        namespace = binding["metadata"].get("namespace")
        binding["subjects"] = [
            {"kind": "ServiceAccount", "name": "default", "namespace": namespace}
        ]


def _aggregate(objects: Objects, rng: random.Random) -> None:
    """A ClusterRole's labels change what aggregates into others."""
    index = _pick(objects, rng, "ClusterRole")
    if index is not None:
        labels = objects[index]["metadata"].setdefault("labels", {})
        labels["rbac.authorization.k8s.io/aggregate-to-admin"] = "true"


def _one_replica(objects: Objects, rng: random.Random) -> None:
    index = _pick(objects, rng, "Deployment")
    if index is not None:
        objects[index].setdefault("spec", {})["replicas"] = 1


def _exempt_some(objects: Objects, rng: random.Random) -> None:
    """The label a stored exemption selects, on a few objects (their findings turn exempted)."""
    for obj in rng.sample(objects, max(1, len(objects) // 20)):
        meta = obj["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), "bench-rev": "1"}


def _unexempt_some(objects: Objects, rng: random.Random) -> None:
    for obj in objects:
        labels = obj["metadata"].get("labels")
        if isinstance(labels, dict) and "bench-rev" in labels and rng.random() < 0.5:
            obj["metadata"]["labels"] = {k: v for k, v in labels.items() if k != "bench-rev"}


CHANGES = (
    _relabel_pod,
    _delete("Service"),
    _new_network_policy,
    _delete("NetworkPolicy"),
    _rebind,
    _aggregate,
    _delete("PodDisruptionBudget"),
    _one_replica,
    _delete("Namespace"),
    _delete("Pod"),
    _exempt_some,
    _unexempt_some,
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_changes_rescan_incrementally_to_what_a_full_scan_gives(
    any_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    from bench.corpus import generate  # noqa: PLC0415 - the benchmark's corpus

    pipeline = any_pipeline
    make_exemption(
        pipeline.session,
        rule_ids=("KM-601", "KM-602", "KM-612", "KM-206", "KM-501", "KM-101"),
        selector={"labels": "bench-rev in (1)"},
    )
    pipeline.session.commit()
    rng = random.Random(seed)
    objects = [o for o in generate(300, seed=2000 + seed) if o.get("kind") != "Secret"]
    for cluster_id in ("scoped", "plain"):
        pipeline.push_and_process(cluster_id, objects)
        pipeline.run.run("k8smon.rescan", cluster_id)

    scopes: list[bool] = []
    reconcile_scope = scanning._reconcile_scope

    def spying(*args: Any, **kwargs: Any) -> Any:
        records, scope = reconcile_scope(*args, **kwargs)
        scopes.append(scope is not None)
        return records, scope

    monkeypatch.setattr(scanning, "_reconcile_scope", spying)
    default_limit = scanning.SCOPED_LIMIT
    for round_ in range(4):
        objects = copy.deepcopy(objects)
        for change in rng.sample(CHANGES, 4):
            change(objects, rng)
        counts = {}
        for cluster_id, limit in (("scoped", default_limit), ("plain", -1)):
            pipeline.push_and_process(cluster_id, objects)
            monkeypatch.setattr(scanning, "SCOPED_LIMIT", limit)
            scopes.clear()
            outcome = pipeline.run.run("k8smon.rescan", cluster_id)
            assert outcome["counts"]["incremental"] == 1
            assert scopes == [limit >= 0]
            counts[cluster_id] = {key: outcome["counts"][key] for key in LIFECYCLE}
        monkeypatch.setattr(scanning, "SCOPED_LIMIT", default_limit)
        full = f"full-{round_}"
        pipeline.push_and_process(full, objects)
        assert pipeline.run.run("k8smon.rescan", full)["counts"]["incremental"] == 0
        assert counts["scoped"] == counts["plain"]
        assert pipeline.active_findings("scoped") == pipeline.active_findings("plain")
        assert pipeline.active_findings("scoped", exact=False) == pipeline.active_findings(
            full, exact=False
        )
