"""Engine behaviour: crash isolation, controller dedup, cluster rules, catalogue version."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator

from contracts.severity import Severity
from rules import ClusterContext, Engine, ObjectView, ScanConfig, Violation, rule
from rules.model import Rule, rule_meta
from rules.registry import default_rules
from tests.rules.helpers import deployment, pod


@rule(
    id="KM-901",
    title="Explodes on pods named boom",
    severity=Severity.LOW,
    category="test",
    kinds=("Pod",),
)
def _explodes(obj: ObjectView) -> Iterator[Violation]:
    """Raises on one object."""
    if obj.name == "boom":
        raise KeyError("spec")
    yield Violation(f"pod {obj.name} seen", path="metadata.name")


@rule(
    id="KM-902",
    title="Namespaces without pods",
    severity=Severity.INFO,
    category="test",
    scope="cluster",
)
def _empty_namespaces(cluster: ClusterContext) -> Iterator[Violation]:
    """Cluster rule using indexed look-ups."""
    for ns in cluster.by_kind("Namespace"):
        if not cluster.in_namespace(ns.name, "Pod"):
            yield Violation(f"namespace {ns.name} runs no pods", subject=ns)


TEST_RULES = [Rule(rule_meta(f), f) for f in (_explodes, _empty_namespaces)]  # type: ignore[arg-type]


def test_a_raising_rule_yields_an_error_and_the_scan_carries_on() -> None:
    engine = Engine(TEST_RULES)
    outcome = engine.scan([pod("boom"), pod("fine")])
    assert [r.resource.name for r in outcome.results if r.rule_id == "KM-901"] == ["fine"]
    assert len(outcome.errors) == 1
    error = outcome.errors[0]
    assert error["type"] == "rule" and error["rule_id"] == "KM-901"
    assert error["resource"]["name"] == "boom"
    assert "KeyError" in error["message"]
    raw = engine.evaluate_object(pod("boom"))
    assert [r.status for r in raw] == ["error"]


def test_catalogue_rules_survive_hostile_manifests() -> None:
    engine = Engine.from_config(None)
    weird = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": None},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "b"},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "securityContext": "yes",
                        "ports": [None, {"hostPort": "x"}],
                        "livenessProbe": {"httpGet": None},
                    }
                ],
                "volumes": [None, {"name": "v"}],
                "securityContext": {"sysctls": [None]},
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "c"},
            "spec": {"template": {"spec": {"containers": "nope"}}},
        },
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    ]
    outcome = engine.scan(weird)
    # Structurally invalid objects are reported with the offending field and not scanned;
    # no rule ever raises.
    assert [e["type"] for e in outcome.errors] == ["invalid", "invalid"]
    assert [(e["resource"]["name"], e["path"]) for e in outcome.errors] == [
        ("b", "spec.containers[0].securityContext"),
        ("c", "spec.template.spec.containers"),
    ]
    assert outcome.objects == 4
    # The rules themselves still tolerate such garbage when called directly.
    for manifest in weird:
        view = ObjectView(manifest)
        for rule_ in engine.rules_for(view.kind):
            list(rule_.check(view))


def test_cluster_rules_name_their_subject() -> None:
    engine = Engine(TEST_RULES)
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
        for n in ("empty", "busy")
    ]
    results = engine.evaluate_cluster([*namespaces, pod("x", namespace="busy")])
    assert [
        (r.rule_id, r.resource.kind, r.resource.name, r.resource.namespace) for r in results
    ] == [("KM-902", "Namespace", "empty", None)]


def _owned(manifest: dict, owner: dict) -> dict:
    manifest["metadata"]["ownerReferences"] = [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
    ]
    manifest["metadata"]["uid"] = f"uid-{manifest['metadata']['name']}"
    return manifest


def _chain() -> list[dict]:
    privileged = {
        "containers": [{"name": "app", "image": "a:1", "securityContext": {"privileged": True}}]
    }
    dep = deployment("web", spec=privileged, uid="uid-web")
    rs = _owned(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web-123", "namespace": "default"},
            "spec": {"template": {"spec": privileged}},
        },
        dep,
    )
    pods = [_owned(pod(f"web-123-{i}", spec=privileged), rs) for i in range(3)]
    return [dep, rs, *pods]


def test_controlled_pods_are_reported_once_on_the_top_controller() -> None:
    outcome = Engine.from_config(None).scan(_chain())
    hits = [r for r in outcome.results if r.rule_id == "KM-101"]
    assert [(r.resource.kind, r.resource.name) for r in hits] == [("Deployment", "web")]


def test_pods_whose_controller_is_absent_are_reported() -> None:
    chain = _chain()
    outcome = Engine.from_config(None).scan(chain[2:])  # pods only: the RS is not in input
    assert len([r for r in outcome.results if r.rule_id == "KM-101"]) == 3
    outcome = Engine.from_config(None).scan(chain[1:])  # RS and pods: reported on the RS
    assert [r.resource.kind for r in outcome.results if r.rule_id == "KM-101"] == ["ReplicaSet"]


def test_dedup_can_be_turned_off() -> None:
    outcome = Engine.from_config({"dedup_controllers": False}).scan(_chain())
    assert len([r for r in outcome.results if r.rule_id == "KM-101"]) == 5


def test_worker_path_equals_scan() -> None:
    """evaluate_object per object + evaluate_cluster + apply_config == scan."""
    config = {"exemptions": [{"rules": ["KM-123"], "reason": "r"}]}
    engine = Engine.from_config(config)
    manifests = _chain()
    raw = [r for m in manifests for r in engine.evaluate_object(m)]
    raw += engine.evaluate_cluster(manifests)
    by_key = {ObjectView(m).ref.key: m for m in manifests}
    applied = engine.apply_config(raw, cluster=None, objects=by_key)
    expected = engine.scan(manifests).results
    assert sorted(r.fingerprint + r.status for r in applied) == sorted(
        r.fingerprint + r.status for r in expected
    )


def test_catalogue_version_tracks_rules_and_configuration() -> None:
    base = Engine.from_config(None).catalogue_version
    assert base == Engine.from_config({}).catalogue_version
    assert base != Engine.from_config({"disabled": ["KM-123"]}).catalogue_version
    assert base != Engine.from_config({"severity": {"KM-101": "low"}}).catalogue_version
    assert base != Engine(TEST_RULES, ScanConfig()).catalogue_version


def test_evaluation_version_ignores_what_apply_config_does() -> None:
    base = Engine.from_config(None).evaluation_version
    exempt = {"exemptions": [{"rules": ["KM-101"], "reason": "r"}]}
    assert Engine.from_config(exempt).evaluation_version == base
    assert Engine.from_config({"severity": {"KM-101": "low"}}).evaluation_version == base
    assert Engine.from_config({"disabled": ["KM-123"]}).evaluation_version != base
    assert (
        Engine.from_config(exempt).catalogue_version != Engine.from_config(None).catalogue_version
    )


def test_report_is_json_serialisable_and_follows_the_contract() -> None:
    outcome = Engine.from_config(None).scan(
        [pod("p", spec={"hostNetwork": True, "containers": []})]
    )
    report = json.loads(json.dumps(outcome.to_report()))
    assert set(report) == {"findings", "errors", "summary"}
    finding = next(f for f in report["findings"] if f["rule_id"] == "KM-104")
    assert {"rule_id", "title", "severity", "cis", "pss", "resource", "path", "message"} <= set(
        finding
    )
    assert finding["cis"] == ["5.2.5"] and finding["pss"] == ["baseline/host-namespaces"]
    assert finding["resource"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "default",
        "name": "p",
    }
    assert finding["path"] == "spec.hostNetwork"
    assert report["summary"]["by_severity"]["high"] >= 1


def test_cluster_scoped_objects_have_null_namespace() -> None:
    result = Engine(TEST_RULES).evaluate_cluster(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}]
    )[0]
    assert result.to_finding()["resource"]["namespace"] is None


def test_scan_restores_the_garbage_collector_state() -> None:
    assert gc.isenabled()
    Engine.from_config(None).scan([pod()])
    assert gc.isenabled()
    gc.disable()
    try:
        Engine.from_config(None).scan([pod()])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_resumes_without_a_pass_over_what_the_scan_returns() -> None:
    """The scan's results are moved to the oldest generation (`_promote_young`), not
    traversed by a young collection as soon as the collector resumes."""
    started: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    engine = Engine.from_config(None)
    manifests = [pod(name=f"p{i}") for i in range(300)]
    gc.collect()
    gc.callbacks.append(record)
    try:
        outcome = engine.scan(manifests)
        young = len(gc.get_objects(generation=0))
    finally:
        gc.callbacks.remove(record)
    assert len(outcome.results) > gc.get_threshold()[0]  # enough to trigger a collection
    assert started == [] and young < 100
    oldest = {id(obj) for obj in gc.get_objects(generation=2)}
    assert all(id(result) in oldest for result in outcome.results)


def test_a_scan_leaves_objects_the_process_froze_frozen() -> None:
    marker: list[object] = []  # tracked by the collector
    gc.freeze()
    try:
        Engine.from_config(None).scan([pod()])
        # Frozen objects are in no generation: get_objects does not list them.
        assert not any(obj is marker for obj in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(obj is marker for obj in gc.get_objects())


@rule(
    id="KM-903",
    title="Cluster rule that crashes",
    severity=Severity.LOW,
    category="test",
    scope="cluster",
)
def _cluster_explodes(cluster: ClusterContext) -> Iterator[Violation]:
    """Raises after looking at the cluster."""
    if cluster.by_kind("Namespace"):
        raise RuntimeError("unexpected shape")
    yield from ()


def test_a_raising_cluster_rule_is_an_error_and_other_rules_still_report() -> None:
    rules = [*TEST_RULES, Rule(rule_meta(_cluster_explodes), _cluster_explodes)]  # type: ignore[arg-type]
    outcome = Engine(rules).scan(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "empty"}},
            pod("fine", namespace="other"),
        ]
    )
    assert [e["rule_id"] for e in outcome.errors] == ["KM-903"]
    assert "RuntimeError: unexpected shape" in outcome.errors[0]["message"]
    assert {r.rule_id for r in outcome.results} == {"KM-901", "KM-902"}


def test_evaluate_objects_matches_evaluate_object_one_by_one() -> None:
    engine = Engine.from_config(None)
    manifests = _chain()
    batch = engine.evaluate_objects(manifests)
    assert batch == [engine.evaluate_object(m) for m in manifests]
    assert gc.isenabled()


def test_a_scan_never_unwraps_the_containers_of_objects_dedup_drops() -> None:
    """A workload's containers are unwrapped on first use, once: the ReplicaSet and Pods a
    Deployment controls are checked and indexed, but no rule reads their containers.

    Observed on the views the scan built (a cluster rule keeps their context), not by
    patching `WorkloadView._unwrap`, which the compiled engine calls directly."""
    contexts: list[ClusterContext] = []

    @rule(
        id="KM-904",
        title="Keeps the cluster context",
        severity=Severity.INFO,
        category="test",
        scope="cluster",
    )
    def _keep(cluster: ClusterContext) -> Iterator[Violation]:
        """Keeps the context the scan built, and reports nothing."""
        contexts.append(cluster)
        yield from ()

    engine = Engine([*default_rules(), Rule(rule_meta(_keep), _keep)])  # type: ignore[arg-type]
    outcome = engine.scan(_chain())
    assert [r.resource.kind for r in outcome.results if r.rule_id == "KM-101"] == ["Deployment"]
    (context,) = contexts
    assert [v.kind for v in context.objects] == ["Deployment", "ReplicaSet", "Pod", "Pod", "Pod"]
    unwrapped = [
        (view.kind, view.workload.spec_path)
        for view in context.objects
        if view.workload is not None and view.workload._containers is not None
    ]
    assert unwrapped == [("Deployment", "spec.template.spec")]  # the Deployment's only
    view = ObjectView(_chain()[2])
    assert view.workload is not None
    assert view.workload._containers is None  # not before first use
    assert view.workload.containers is view.workload.containers  # then kept: unwrapped once
    assert [c.name for c in view.workload.containers] == ["app"]
