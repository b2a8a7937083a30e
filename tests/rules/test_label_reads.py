"""`LabelReads`: which labels cluster rules read, and which label changes they cannot see."""

from __future__ import annotations

import copy
from typing import Any

from rules import Engine
from rules.cluster import (
    READ_ALL,
    READ_BOOL,
    READ_LEN,
    ClusterContext,
    LabelReads,
    label_change_unread,
    label_reads_index,
)
from rules.view import ObjectView


def _pod(name: str, labels: dict[str, Any], namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }


def _record(manifests: list[dict[str, Any]], use: Any) -> tuple[dict[str, Any], list[ObjectView]]:
    views = [ObjectView(m) for m in manifests]
    reads = LabelReads()
    context = ClusterContext(views, label_reads=reads)
    use(context)
    return label_reads_index(reads.restore()), views


def _unread(record: dict[str, Any], manifest: dict[str, Any], labels: dict[str, Any]) -> bool:
    after = copy.deepcopy(manifest)
    after["metadata"]["labels"] = labels
    return label_change_unread(record, ObjectView(after), manifest["metadata"]["labels"], labels)


def test_look_ups_are_noted_per_object_and_restored() -> None:
    pod = _pod("a", {"app": "web", "tier": "front"})
    record, views = _record([pod], lambda c: c.get("Pod", "shop", "a").labels.get("app"))
    assert record["keys"] == {"v1|Pod|shop|a": ["app"]}
    assert type(views[0].labels) is dict and type(pod["metadata"]["labels"]) is dict
    assert not _unread(record, pod, {"app": "api", "tier": "front"})
    assert _unread(record, pod, {"app": "web", "tier": "back", "new": "1"})


def test_reading_the_whole_map_its_size_or_emptiness_is_noted() -> None:
    pod = _pod("a", {"app": "web"})
    for use, noted in (
        (lambda labels: {**labels}, READ_ALL),
        (lambda labels: sorted(labels.items()), READ_ALL),
        (lambda labels: labels == {"app": "web"}, READ_ALL),
        (lambda labels: f"{labels}", READ_ALL),
        (len, READ_LEN),
        (lambda labels: labels or None, READ_BOOL),
    ):
        record, _views = _record(
            [copy.deepcopy(pod)], lambda c, use=use: use(c.get("Pod", "shop", "a").labels)
        )
        assert noted in record["keys"]["v1|Pod|shop|a"]
    record, _ = _record([pod], lambda c: len(c.get("Pod", "shop", "a").labels))
    assert not _unread(record, pod, {"app": "web", "more": "1"})  # the size changed
    assert _unread(record, pod, {"app": "other"})  # the same size
    record, _ = _record([pod], lambda c: bool(c.get("Pod", "shop", "a").labels))
    assert _unread(record, pod, {"app": "web", "more": "1"})
    assert not _unread(record, pod, {})


def test_index_look_ups_cover_objects_they_did_not_return() -> None:
    """`select` by an equality looks in the label index: a Pod that gains the selected
    value was not returned, yet the change is one the rule would see."""
    selected, other = _pod("a", {"app": "web"}), _pod("b", {"app": "batch"})
    record, _ = _record([selected, other], lambda c: c.select("Pod", "shop", {"app": "web"}))
    assert ["Pod", "shop", "app"] in record["index"]
    assert not _unread(record, other, {"app": "web"})
    assert _unread(record, other, {"app": "batch", "team": "x"})
    assert _unread(record, _pod("c", {"app": "batch"}, namespace="else"), {"app": "web"})


def test_pod_template_look_ups_cover_pods() -> None:
    pods = [_pod("a", {"app": "web"}), _pod("b", {"app": "batch"})]
    record, _ = _record(pods, lambda c: c.pod_templates("shop", ("app", "web")))
    assert ["shop", "app"] in record["templates"]
    assert not _unread(record, pods[1], {"app": "web"})
    assert _unread(record, pods[1], {"app": "batch", "team": "x"})


def test_the_rules_find_the_same_while_recording() -> None:
    from bench.corpus import generate  # noqa: PLC0415 - the benchmark's corpus

    engine = Engine.from_config()
    manifests = generate(400, seed=7)
    plain = engine.evaluate_cluster(ClusterContext(copy.deepcopy(manifests)))
    reads = LabelReads()
    recorded = engine.evaluate_cluster(ClusterContext(manifests, label_reads=reads))
    record = reads.restore()
    assert recorded == plain
    assert record["keys"] or record["index"] or record["templates"]
    assert all(type(m["metadata"].get("labels", {})) is dict for m in manifests)


def test_cluster_scoped_look_ups_are_recorded() -> None:
    """A ClusterRole aggregation selects cluster-scoped objects (namespace None) next to
    namespaced look-ups."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "view-extra", "labels": {"aggregate": "yes"}},
    }
    pod = _pod("a", {"app": "web"})

    def use(context: ClusterContext) -> None:
        context.select("ClusterRole", None, {"aggregate": "yes"})
        context.select("Pod", "shop", {"app": "web"})

    record, _ = _record([role, pod], use)
    assert ["ClusterRole", None, "aggregate"] in record["index"]
    assert not _unread(record, role, {"aggregate": "no"})
