"""A label-only rescan (`scanning._label_only_reuse`) carries the cluster's cached image
inventory over to its new state (`store.images.carry_cluster_inventory`): the row it stores is
the one the uncached computation stores (the same uses, since values and watched versions),
so the fleet evaluation after it reads no body; when the history since the state before
moves a since value, or more than labels changed, the inventory is worked out again."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from store import images
from store.images import image_uses
from store.models import Cluster, RuleResultCache
from store.purge import purge_versions
from store.rule_cache import INVENTORY_CACHE, cluster_inventory_key
from store.snapshots import apply_pending
from store.types import utcnow
from tests.support.workloads import workloads
from tests.workers.conftest import Pipeline
from workers.services import scanning

Objects = list[dict[str, Any]]


def _find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _relabelled(objects: Objects, *names: tuple[str, str], label: str = "release") -> Objects:
    changed = copy.deepcopy(objects)
    for kind, name in names:
        metadata = _find(changed, kind, name)["metadata"]
        metadata["labels"] = {**(metadata.get("labels") or {}), label: "r2"}
    return changed


def _row(pipeline: Pipeline) -> tuple[str, Any]:
    """The cluster's inventory row (key, results); it has one."""
    (row,) = pipeline.session.execute(
        select(RuleResultCache.content_hash, RuleResultCache.results).where(
            RuleResultCache.catalogue_version == INVENTORY_CACHE + "c"
        )
    ).all()
    return row[0], row[1]


def _current_key(pipeline: Pipeline) -> str:
    cluster = pipeline.session.get(Cluster, "c")
    assert cluster is not None and cluster.current_digest and cluster.current_snapshot_id
    return cluster_inventory_key(
        "c", cluster.current_digest, snapshot_id=cluster.current_snapshot_id
    )


def _rescan(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, objects: Objects
) -> tuple[bool, list[bool]]:
    """Push `objects` and rescan; return whether the cluster step was taken over, and what
    each carrying over of the inventory returned. (The rescan's own fleet rules read the
    inventory after that: when it was not carried over, they work it out and cache it.)"""
    reused: list[bool] = []
    carried: list[bool] = []
    reuse, carry = scanning._label_only_reuse, scanning.carry_cluster_inventory

    def reusing(*args: Any, **kwargs: Any) -> Any:
        found = reuse(*args, **kwargs)
        reused.append(found is not None)
        return found

    def carrying(*args: Any, **kwargs: Any) -> bool:
        carried.append(carry(*args, **kwargs))
        return carried[-1]

    with monkeypatch.context() as patched:
        patched.setattr(scanning, "_label_only_reuse", reusing)
        patched.setattr(scanning, "carry_cluster_inventory", carrying)
        pipeline.push_and_process("c", objects)
        assert pipeline.run.run("k8smon.rescan", "c")["counts"]["incremental"] == 1
    return reused == [True], carried


def _cached_without_bodies(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The cluster's uses from its cached row: no body and no history is read."""

    def no_read(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the inventory was worked out again")

    with monkeypatch.context() as patched:
        for name in ("_postgres_cluster_rows", "_python_cluster_rows", "_version_images"):
            patched.setattr(images, name, no_read)
        return image_uses(pipeline.session, timeout_seconds=30, cluster_ids=["c"], cached=True)


def _recomputed(pipeline: Pipeline) -> tuple[str, Any]:
    """The row the uncached computation stores for the current state (the cluster's row
    deleted, then worked out from the bodies and the history)."""
    pipeline.session.execute(
        delete(RuleResultCache).where(RuleResultCache.catalogue_version == INVENTORY_CACHE + "c")
    )
    image_uses(pipeline.session, timeout_seconds=30, cluster_ids=["c"], cached=True)
    return _row(pipeline)


@pytest.fixture
def scanned(any_pipeline: Pipeline) -> tuple[Pipeline, Objects]:
    objects = workloads()
    for metadata in (o["metadata"] for o in objects):
        metadata.setdefault("labels", {"team": "ops"})  # a label-only change needs a map
    any_pipeline.push_and_process("c", objects)
    any_pipeline.run.run("k8smon.rescan", "c")
    return any_pipeline, objects


# The Deployment and the bare Pod are workloads of their own (their history is read); the
# Pod of a stored ReplicaSet and the ReplicaSet count for the Deployment (theirs is not).
CHANGED = (
    ("Deployment", "web"),
    ("Pod", "debug-me"),
    ("Pod", "web-bbb-0"),
    ("ReplicaSet", "web-aaa"),
)


def test_a_label_only_rescan_carries_the_inventory_over(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two label rounds, each carried over from the row the one before carried over: each
    row is the uncached computation's, byte for byte, and the uses read from it are the
    uncached `image_uses` (since values included)."""
    pipeline, objects = scanned
    first_key, first = _row(pipeline)
    assert first_key == _current_key(pipeline)  # cached by the first scan
    for round_ in range(2):
        objects = _relabelled(objects, *CHANGED, label=f"release-{round_}")
        assert _rescan(pipeline, monkeypatch, objects) == (True, [True])
        key, carried = _row(pipeline)
        assert key == _current_key(pipeline)
        fresh = image_uses(pipeline.session, timeout_seconds=30, cluster_ids=["c"])
        assert _cached_without_bodies(pipeline, monkeypatch) == fresh
        assert [u.since for u in fresh] and all(u.since is not None for u in fresh)
        # The uses are the state before's; the changed workloads' first versions are
        # watched now (no longer their newest: the purge may delete them).
        assert {k: v for k, v in carried[0].items() if k != "watched"} == {
            k: v for k, v in first[0].items() if k != "watched"
        }
        assert first[0]["watched"] == [] and len(carried[0]["watched"]) == 2
        assert _recomputed(pipeline) == (key, carried)


def test_the_carried_watched_versions_follow_the_purge(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The versions the changed workloads had before are watched by the carried row: once
    the purge deletes them, the since values move to the new versions, and the cached
    inventory says so as the uncached one does."""
    pipeline, objects = scanned
    before = {u.workload.name: u.since for u in _cached_without_bodies(pipeline, monkeypatch)}
    assert _rescan(pipeline, monkeypatch, _relabelled(objects, *CHANGED)) == (True, [True])
    carried_key, _carried = _row(pipeline)
    assert purge_versions(pipeline.session, cutoff=utcnow() + timedelta(days=1)) == len(CHANGED)
    cached = image_uses(pipeline.session, timeout_seconds=30, cluster_ids=["c"], cached=True)
    fresh = image_uses(pipeline.session, timeout_seconds=30, cluster_ids=["c"])
    assert cached == fresh
    since = {u.workload.name: u.since for u in fresh}
    assert since["web"] != before["web"] and since["debug-me"] != before["debug-me"]
    assert since["backup"] == before["backup"]  # not changed: its versions stay
    key, recomputed = _row(pipeline)
    assert key == carried_key  # the same state: its row worked out again
    assert _recomputed(pipeline) == (key, recomputed)


def test_an_image_changed_and_back_since_the_scan_is_worked_out_again(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the scans the Deployment ran another image and came back to its own (with
    labels): its state is label-only against the last scan's, but its since is the
    return's, which the state before's row does not hold: nothing is carried over, and the
    inventory is worked out from the bodies (here by the rescan's own fleet rules)."""
    pipeline, objects = scanned
    first_key, _first = _row(pipeline)
    other = copy.deepcopy(objects)
    _find(other, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "shop/web:3"
    )
    # Applied, not scanned: another image, then its own again (and a label: a state the
    # row of the state before is not one of); its since is the return's (the run starts
    # after the last scan, at a version that is not its newest after the rescan's push).
    for state in (other, _relabelled(objects, ("Deployment", "web"), label="step")):
        pipeline.push("c", state)
        apply_pending(pipeline.session, "c")
    assert _rescan(pipeline, monkeypatch, _relabelled(objects, *CHANGED)) == (True, [False])
    key, stored = _row(pipeline)  # worked out by the rescan's fleet rules
    assert key != first_key and key == _current_key(pipeline)
    fresh = image_uses(pipeline.session, timeout_seconds=30, cluster_ids=["c"])
    assert _cached_without_bodies(pipeline, monkeypatch) == fresh
    since = {u.workload.name: u.since for u in fresh}
    assert since["web"] > since["backup"]  # since its image came back
    assert _recomputed(pipeline) == (key, stored)


@pytest.mark.parametrize("change", ["owner", "pod-template-hash"])
def test_a_changed_owner_or_template_hash_is_the_uncached_inventory(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """A Pod given another controller changes more than labels (the inventory is worked
    out from the bodies); a changed pod-template-hash label is a label the inventory does
    not read. Either way the cached row is the uncached computation's."""
    pipeline, objects = scanned
    changed = copy.deepcopy(objects)
    metadata = _find(changed, "Pod", "web-bbb-1")["metadata"]
    if change == "owner":
        metadata["ownerReferences"][0]["name"] = "web-ccc"  # not stored: its own workload
    else:
        metadata["labels"]["pod-template-hash"] = "ccc"
    assert _rescan(pipeline, monkeypatch, changed) == (
        (False, []) if change == "owner" else (True, [True])
    )
    key, stored = _row(pipeline)
    assert key == _current_key(pipeline)
    fresh = image_uses(pipeline.session, timeout_seconds=30, cluster_ids=["c"])
    assert _cached_without_bodies(pipeline, monkeypatch) == fresh
    if change == "owner":
        assert "web-ccc" in {u.workload.name for u in fresh}
    assert _recomputed(pipeline) == (key, stored)
