"""A rescan whose only changes are labels the cluster rules did not read takes their results
over from the state before (`scanning._label_only_reuse`) and finds what a full scan of the new
state finds; a changed label they read, or any other change, runs them again."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import select

from contracts.hashing import content_hash
from store import rule_cache
from store.models import Cluster, RuleResultCache
from tests.support.factories import make_exemption
from tests.workers.conftest import Pipeline
from workers.services import scanning

Objects = list[dict[str, Any]]


def _objects() -> Objects:
    pod_spec = {
        "containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 8080}]}]
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"team": "a"}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": copy.deepcopy(pod_spec),
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "api", "namespace": "shop", "labels": {"app": "api"}},
            # No ports: it serves because the Service selects it (KM-605).
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "api", "namespace": "shop", "labels": {"app": "api"}},
            "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "shop", "labels": {"app": "api"}},
            "data": {"mode": "fast"},
        },
    ]


def _find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _rescan(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, objects: Objects, *, name: str
) -> bool:
    """Push `objects` to the cluster "c" and rescan it incrementally; assert that its findings
    are a full scan's of the same objects (cluster `name`); return whether the cluster step
    was taken over."""
    reused: list[bool] = []
    reuse = scanning._label_only_reuse

    def spying(*args: Any, **kwargs: Any) -> Any:
        found = reuse(*args, **kwargs)
        reused.append(found is not None)
        return found

    monkeypatch.setattr(scanning, "_label_only_reuse", spying)
    pipeline.push_and_process("c", objects)
    assert pipeline.run.run("k8smon.rescan", "c")["counts"]["incremental"] == 1
    monkeypatch.setattr(scanning, "_label_only_reuse", reuse)
    pipeline.push_and_process(name, objects)
    assert pipeline.run.run("k8smon.rescan", name)["counts"]["incremental"] == 0
    assert pipeline.active_findings("c", exact=False) == pipeline.active_findings(name, exact=False)
    assert len(reused) == 1
    return reused[0]


@pytest.fixture
def scanned(any_pipeline: Pipeline) -> tuple[Pipeline, Objects]:
    objects = _objects()
    any_pipeline.push_and_process("c", objects)
    any_pipeline.run.run("k8smon.rescan", "c")
    return any_pipeline, objects


def test_labels_no_cluster_rule_read_reuse_the_cluster_step(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, objects = scanned
    first = _digest(pipeline, "c")
    for round_ in range(3):  # the others from the state the one before took over
        objects = copy.deepcopy(objects)
        for kind, name in (("Deployment", "web"), ("ConfigMap", "settings"), ("Pod", "api")):
            labels = _find(objects, kind, name)["metadata"]["labels"]
            labels["release"] = f"r{round_}"
        assert _rescan(pipeline, monkeypatch, objects, name=f"full-{round_}")
        # The taken-over state's row names the state whose row holds the results (the
        # first, every round) instead of holding a copy of them, and only the changed
        # objects' facts.
        (stored,) = pipeline.session.scalars(
            select(RuleResultCache.results).where(
                RuleResultCache.content_hash == rule_cache.cluster_state_key(_digest(pipeline, "c"))
            )
        )
        assert stored[0]["results_of"] == first
        assert "results" not in stored[0] and "meta" not in stored[0]
        assert set(stored[0]["meta_changes"]) == {
            "apps/v1|Deployment|shop|web",
            "v1|ConfigMap|shop|settings",
            "v1|Pod|shop|api",
        }


def _digest(pipeline: Pipeline, cluster_id: str) -> str:
    cluster = pipeline.session.get(Cluster, cluster_id)
    assert cluster is not None and cluster.current_digest
    return cluster.current_digest


def test_a_label_a_selector_reads_runs_the_cluster_rules_again(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Pod's `app` label is what the Service and the PodDisruptionBudget select it by:
    changed, the budget selects no pods and no Service serves the pod any more."""
    pipeline, objects = scanned
    before = pipeline.active_findings("c", exact=False)
    objects = copy.deepcopy(objects)
    _find(objects, "Pod", "api")["metadata"]["labels"]["app"] = "moved"
    assert not _rescan(pipeline, monkeypatch, objects, name="full")
    assert pipeline.active_findings("c", exact=False) != before


def test_a_changed_selector_runs_the_cluster_rules_again(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Service's selector (and its labels, so that only the selector is not a label)."""
    pipeline, objects = scanned
    before = pipeline.active_findings("c", exact=False)
    objects = copy.deepcopy(objects)
    service = _find(objects, "Service", "api")
    service["spec"]["selector"] = {"app": "none"}
    service["metadata"]["labels"]["release"] = "r1"
    assert not _rescan(pipeline, monkeypatch, objects, name="full")
    assert pipeline.active_findings("c", exact=False) != before


def test_a_label_only_some_objects_had_runs_the_cluster_rules_again(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PodDisruptionBudget had no labels map: given one, the rules run again (whether
    an absent map was read is not recorded)."""
    pipeline, objects = scanned
    objects = copy.deepcopy(objects)
    _find(objects, "PodDisruptionBudget", "api")["metadata"]["labels"] = {"release": "r1"}
    assert not _rescan(pipeline, monkeypatch, objects, name="full")


def test_a_label_an_exemption_selects_is_configured_anew(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster rules did not read it, but configuration does (the objects' facts): the
    taken-over step carries the changed objects' new labels, and their findings turn
    exempted as in a full scan, then back."""
    pipeline, objects = scanned
    make_exemption(
        pipeline.session,
        rule_ids=("KM-605", "KM-601", "KM-602", "KM-603", "KM-612"),
        selector={"labels": "waiver in (yes)"},
    )
    pipeline.session.commit()
    pipeline.run.run("k8smon.rescan", "c")  # the new exemption: a full reconciliation
    for round_, value in enumerate(("yes", "no")):
        objects = copy.deepcopy(objects)
        _find(objects, "Pod", "api")["metadata"]["labels"]["waiver"] = value
        assert _rescan(pipeline, monkeypatch, objects, name=f"full-{round_}")
        exempted = {f for f in pipeline.active_findings("c", exact=False) if f[3]}
        assert bool(exempted) == (value == "yes")


def test_an_exempted_finding_on_an_unchanged_object_stays_exempted(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taken-over step's records on objects that did not change are not looked at, but
    those of exempted findings are (every scan writes an exempted finding again): the Pod's
    exempted cluster-rule finding stays exempted while another object's label changes."""
    pipeline, objects = scanned
    make_exemption(
        pipeline.session,
        rule_ids=("KM-605", "KM-601", "KM-602", "KM-603", "KM-612"),
        selector={"labels": "waiver in (yes)"},
    )
    pipeline.session.commit()
    objects = copy.deepcopy(objects)
    _find(objects, "Pod", "api")["metadata"]["labels"]["waiver"] = "yes"
    pipeline.push_and_process("c", objects)
    pipeline.run.run("k8smon.rescan", "c")  # the new exemption: a full reconciliation
    exempted = {f for f in pipeline.active_findings("c", exact=False) if f[3]}
    assert any(f[5] is None for f in exempted), exempted  # a cluster rule's (no body hash)
    for round_ in range(2):
        objects = copy.deepcopy(objects)
        _find(objects, "ConfigMap", "settings")["metadata"]["labels"]["release"] = f"r{round_}"
        assert _rescan(pipeline, monkeypatch, objects, name=f"full-{round_}")
        assert {f for f in pipeline.active_findings("c", exact=False) if f[3]} == exempted


def test_a_spec_change_falls_back_before_the_whole_state_is_read(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change that is not label-only (the common case) is told from the changed objects'
    bodies: the unchanged objects' rows, which only the digest check of the state before
    needs, are not read."""
    pipeline, objects = scanned
    read: list[str] = []
    state_was = scanning._state_was

    def spying(*args: Any, **kwargs: Any) -> Any:
        read.append("state")
        return state_was(*args, **kwargs)

    monkeypatch.setattr(scanning, "_state_was", spying)
    objects = copy.deepcopy(objects)
    _find(objects, "Deployment", "web")["spec"]["replicas"] = 3
    assert not _rescan(pipeline, monkeypatch, objects, name="full")
    assert read == []
    objects = copy.deepcopy(objects)
    _find(objects, "ConfigMap", "settings")["metadata"]["labels"]["release"] = "r1"
    assert _rescan(pipeline, monkeypatch, objects, name="full-again")
    assert read == ["state"]


@pytest.mark.parametrize("replicas", [2.0, True], ids=["float", "bool"])
def test_a_change_python_calls_equal_is_not_label_only(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch, replicas: object
) -> None:
    """`2.0 == 2` and `True == 1` in Python, but a schema tells them apart (a float or a
    boolean where an integer belongs is invalid): such a change beside a label is not
    label-only, and the rescan finds what a full scan finds (the Deployment invalid)."""
    pipeline, objects = scanned
    objects = copy.deepcopy(objects)
    deployment = _find(objects, "Deployment", "web")
    deployment["spec"]["replicas"] = replicas
    deployment["metadata"]["labels"]["release"] = "r1"
    assert not _rescan(pipeline, monkeypatch, objects, name="full")


def test_the_versions_before_are_not_read_whole(
    scanned: tuple[Pipeline, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether only labels changed is told from the new bodies and the labels before (the
    new body with those labels must hash to the version before): a label-only rescan reads
    the changed objects' new bodies whole, not their versions before."""
    pipeline, objects = scanned
    whole: list[str] = []
    for name in ("bodies_by_hash", "bodies_and_labels"):
        read = getattr(scanning, name)

        def spying(session: Any, hashes: Any, *args: Any, read: Any = read, **kw: Any) -> Any:
            whole.extend(hashes)
            return read(session, hashes, *args, **kw)

        monkeypatch.setattr(scanning, name, spying)
    objects = copy.deepcopy(objects)
    before = {content_hash(o) for o in objects}
    for kind, name in (("Deployment", "web"), ("ConfigMap", "settings")):
        _find(objects, kind, name)["metadata"]["labels"]["release"] = "r1"
    pipeline.push_and_process("c", objects)
    assert pipeline.run.run("k8smon.rescan", "c")["counts"]["incremental"] == 1
    after = {content_hash(o) for o in objects}
    assert set(whole) == after - before  # the new versions only


def test_a_float_beside_a_label_change_is_still_label_only(
    any_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new body with the labels before is hashed as the ingest hashes it: a float that
    orjson spells otherwise than the canonical JSON (`1e-05`) does not make a label-only
    change look like more."""
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "shop", "labels": {"app": "w"}},
        "spec": {"ratio": 1e-05, "size": 2.5},
    }
    objects = [*_objects(), widget]
    any_pipeline.push_and_process("c", objects)
    any_pipeline.run.run("k8smon.rescan", "c")
    objects = copy.deepcopy(objects)
    _find(objects, "Widget", "w")["metadata"]["labels"]["release"] = "r1"
    assert _rescan(any_pipeline, monkeypatch, objects, name="full")
