"""Crash isolation on malformed manifests: every fixture of the catalogue, and a cluster built to
reach the framework's own look-ups (ownership, RBAC bindings and aggregation, selectors), is
scanned with one field at a time replaced by an int, a string, a list, None or a mapping.

`Engine.scan` must never raise and no rule may report an error. A mutation the Kubernetes
schema refuses is reported as an `invalid` error naming the object and the offending field,
and that object is not scanned; the rules themselves are still run on every mutated object
directly (object rules on its view, cluster rules on a context that keeps it), and must not
raise: the views, the ClusterContext indexes and the rules all tolerate garbage where a
mapping or list belongs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.resources import ResourceRef
from contracts.selectors import SelectorError, parse_selector
from rules import ClusterContext, Engine, ObjectView, load_paths

FIXTURES = Path(__file__).parent / "fixtures"
BAD_VALUES: tuple[Any, ...] = (7, "oops", [], ["oops", 7], None, {}, {"oops": 7})
MAX_DEPTH = 8

# Objects that exercise the framework rather than one rule: a controller chain with uids,
# RBAC bindings to a role aggregated by label selectors, a service account used by pods,
# a PDB, an HPA and a NetworkPolicy selecting the pods.
FRAMEWORK_CLUSTER: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app", "labels": {"a": "b"}}},
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "app", "uid": "u-d"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "serviceAccountName": "runner",
                    "containers": [{"name": "c", "image": "web:1"}],
                },
            },
        },
    },
    {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-1",
            "namespace": "app",
            "uid": "u-rs",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": "u-d",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "web:1"}]},
            }
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1-x",
            "namespace": "app",
            "labels": {"app": "web"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-1",
                    "uid": "u-rs",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "serviceAccountName": "runner",
            "restartPolicy": "Always",
            "containers": [
                {
                    "name": "c",
                    "image": "web:1",
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
                }
            ],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "runner", "namespace": "app"},
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "aggregate"},
        "aggregationRule": {
            "clusterRoleSelectors": [
                {"matchLabels": {"agg": "yes"}},
                {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["x", "y"]}]},
            ]
        },
        "rules": [],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "part", "labels": {"agg": "yes", "tier": "x"}},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["secrets", "pods"],
                "verbs": ["get", "list", "create"],
            }
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "bind", "namespace": "app"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "aggregate",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": "runner", "namespace": "app"},
            {"kind": "Group", "name": "system:masters"},
        ],
    },
    {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "app"},
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
        },
    },
    {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "app"},
        "spec": {"minReplicas": 1, "scaleTargetRef": {"kind": "Deployment", "name": "web"}},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": "app"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
    },
]


def mutations(value: Any, depth: int = 0) -> Iterator[Any]:
    """Copies of `value` with one nested value replaced by each of BAD_VALUES.

    Only the path down to the replaced value is copied; the rest is shared (scans never
    modify their input).
    """
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key in value:
            for bad in BAD_VALUES:
                yield {**value, key: bad}
            for inner in mutations(value[key], depth + 1):
                yield {**value, key: inner}
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for inner in (*BAD_VALUES, *mutations(item, depth + 1)):
                changed = list(value)
                changed[index] = inner
                yield changed


def _fixture_files() -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    for path in sorted(FIXTURES.glob("KM-*/*.yaml")):
        docs = [dict(d.manifest) for d in load_paths([path]).documents]
        out.append((f"{path.parent.name}/{path.name}", docs))
    return out


def _grouped(
    files: list[tuple[str, list[dict[str, Any]]]], size: int
) -> list[tuple[str, list[list[dict[str, Any]]]]]:
    """Fixture files in groups of `size` (one test each, so a failure names its file)."""
    groups = []
    for start in range(0, len(files), size):
        chunk = files[start : start + size]
        groups.append((f"{chunk[0][0]}..{chunk[-1][0]}", [docs for _, docs in chunk]))
    return groups


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_config(None)


def _assert_scans_cleanly(engine: Engine, label: str, docs: list[dict[str, Any]]) -> int:
    count = 0
    for index, doc in enumerate(docs):
        for mutated in mutations(doc):
            manifests = [*docs[:index], mutated, *docs[index + 1 :]]
            try:
                outcome = engine.scan(manifests)
            except Exception as problem:
                pytest.fail(f"{label}: scan raised {problem!r} on {mutated!r}")
            for error in outcome.errors:
                assert error["type"] == "invalid", (label, mutated, error["message"])
                assert error.get("path") and error.get("resource"), error
            invalid = {ResourceRef.from_dict(e["resource"]).key for e in outcome.errors}  # type: ignore[arg-type]
            assert not [r for r in outcome.results if r.resource.key in invalid]
            if outcome.errors:
                _assert_rules_tolerate(engine, label, manifests, mutated)
            count += 1
    return count


def _assert_rules_tolerate(
    engine: Engine, label: str, manifests: list[dict[str, Any]], mutated: Any
) -> None:
    """The rules, run directly on objects the schema refuses, still never raise."""
    view = ObjectView(mutated) if isinstance(mutated, dict) else None
    if view is not None:
        for rule_ in engine.rules_for(view.kind):
            try:
                list(rule_.check(view))
            except Exception as problem:
                pytest.fail(f"{label}: {rule_.id} raised {problem!r} on {mutated!r}")
    context = ClusterContext(manifests, skip_invalid=False)
    for result in engine.evaluate_cluster(context):
        assert result.status != "error", (label, mutated, result.message)


@pytest.mark.parametrize(
    ("label", "files"), _grouped(_fixture_files(), 8), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_fixture_scans_without_errors_when_mutated(
    label: str, files: list[list[dict[str, Any]]], engine: Engine
) -> None:
    scanned = sum(_assert_scans_cleanly(engine, label, docs) for docs in files)
    assert scanned > 0


# Exemption matching reads labels, annotations, names and containers of the objects too.
EXEMPTING_CONFIG: dict[str, Any] = {
    "allow_annotation_exemptions": True,
    "severity": {"KM-104": "low"},
    "exemptions": [
        {
            "rules": ["*"],
            "kinds": ["ReplicaSet", "Pod"],
            "namespaces": ["app*"],
            "names": ["web*"],
            "labels": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
            "containers": ["c"],
            "reason": "test",
            "owner": "tests",
        },
        {
            "rules": ["KM-601"],
            "labels": "app=web",
            "reason": "test",
            "owner": "tests",
            "expires": "2020-01-01",
        },
    ],
}


@pytest.mark.parametrize("config", [None, EXEMPTING_CONFIG], ids=["default", "exemptions"])
def test_the_framework_tolerates_garbage_everywhere(config: dict[str, Any] | None) -> None:
    engine = Engine.from_config(config)
    cluster = [*FRAMEWORK_CLUSTER]
    cluster[1] = {
        **cluster[1],
        "metadata": {
            **cluster[1]["metadata"],
            "labels": {"app": "web"},
            "annotations": {"k8s-monitor.io/exempt": "KM-612"},
        },
    }
    baseline = engine.scan(cluster)
    assert baseline.errors == ()
    # The cluster reaches the look-ups under test: dedup onto the Deployment, the binding
    # to the aggregated role.
    assert {r.resource.kind for r in baseline.results} >= {"Deployment", "RoleBinding"}
    assert not [r for r in baseline.results if r.resource.kind in ("Pod", "ReplicaSet")]
    if config is not None:
        assert [r.rule_id for r in baseline.exempted] == ["KM-612"]
    assert _assert_scans_cleanly(engine, "framework", cluster) > 1000


@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
def test_non_list_owner_references_are_ignored(bad: Any, engine: Engine) -> None:
    pod = {
        **FRAMEWORK_CLUSTER[3],
        "metadata": {**FRAMEWORK_CLUSTER[3]["metadata"], "ownerReferences": bad},
    }
    context = ClusterContext([*FRAMEWORK_CLUSTER[:3], pod], skip_invalid=False)
    view = next(o for o in context.objects if o.kind == "Pod")
    assert context.controller_of(view) is None
    assert context.top_controller(view) is view
    # No owner is known, so the Pod is reported on its own (not deduplicated away); an
    # ownerReferences that is not a list of objects is refused by the schema instead.
    outcome = engine.scan([*FRAMEWORK_CLUSTER[:3], pod])
    if bad in (None, []):
        assert outcome.errors == ()
        assert any(r.resource.kind == "Pod" for r in outcome.results)
    else:
        assert [(e["type"], e["path"]) for e in outcome.errors] == [
            ("invalid", "metadata.ownerReferences" + ("" if not isinstance(bad, list) else "[0]"))
        ]
        assert not any(r.resource.kind == "Pod" for r in outcome.results)


@pytest.mark.parametrize("bad", [7, "oops", {"kind": "User", "name": "x"}, None])
def test_non_list_subjects_index_nothing(bad: Any) -> None:
    binding = {**FRAMEWORK_CLUSTER[7], "subjects": bad}
    context = ClusterContext([*FRAMEWORK_CLUSTER[5:7], binding], skip_invalid=False)
    role = context.get("ClusterRole", None, "aggregate")
    assert role is not None
    assert [b.name for b in context.bindings_for_role(role)] == ["bind"]
    assert context.bindings_for_subject("User", "x") == []
    assert context.bindings_for_subject("ServiceAccount", "runner", "app") == []


@pytest.mark.parametrize("bad", [7, "oops", {"matchLabels": {"agg": "yes"}}])
def test_non_list_cluster_role_selectors_aggregate_nothing(bad: Any) -> None:
    role = {**FRAMEWORK_CLUSTER[5], "aggregationRule": {"clusterRoleSelectors": bad}}
    context = ClusterContext([role, FRAMEWORK_CLUSTER[6]], skip_invalid=False)
    assert context.policy_rules(ObjectView(role)) == []


def test_garbage_cluster_role_selectors_are_skipped_and_the_rest_aggregated() -> None:
    role = {
        **FRAMEWORK_CLUSTER[5],
        "aggregationRule": {
            "clusterRoleSelectors": [
                7,
                "agg=yes",
                {"matchExpressions": 7},
                {"matchLabels": {"agg": "yes"}},
            ]
        },
    }
    context = ClusterContext([role, FRAMEWORK_CLUSTER[6]], skip_invalid=False)
    assert context.policy_rules(ObjectView(role)) == FRAMEWORK_CLUSTER[6]["rules"]


@pytest.mark.parametrize(
    "selector",
    [
        {"matchExpressions": 7},
        {"matchExpressions": "app In (web)"},
        {"matchExpressions": {"key": "app", "operator": "In", "values": ["web"]}},
        {"matchExpressions": [{"key": "app", "operator": "In", "values": 7}]},
        {"matchExpressions": [{"key": "app", "operator": "In", "values": "web"}]},
        {"matchExpressions": [{"key": "app", "operator": ["In"], "values": ["web"]}]},
        {"matchLabels": ["app"]},
    ],
)
def test_malformed_label_selectors_raise_selector_error(selector: dict[str, Any]) -> None:
    with pytest.raises(SelectorError):
        parse_selector(selector)


@pytest.mark.parametrize("garbage", [7, "oops", ["a"], None])
def test_inputs_that_are_not_objects_are_reported_and_the_rest_scanned(
    garbage: Any, engine: Engine
) -> None:
    outcome = engine.scan([garbage, *FRAMEWORK_CLUSTER])
    assert [e["type"] for e in outcome.errors] == ["invalid"]
    assert outcome.objects == len(FRAMEWORK_CLUSTER)
    assert outcome.results == engine.scan(FRAMEWORK_CLUSTER).results
    assert len(ClusterContext([garbage, *FRAMEWORK_CLUSTER])) == len(FRAMEWORK_CLUSTER)
