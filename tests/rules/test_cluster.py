"""ClusterContext look-ups and label selectors."""

from __future__ import annotations

import pytest

from contracts.selectors import SelectorError, parse_selector
from rules import ClusterContext
from tests.rules.helpers import deployment, pod

RBAC = "rbac.authorization.k8s.io/v1"


def _objects() -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        pod("a", namespace="shop", labels={"app": "web", "tier": "front"}),
        pod("b", namespace="shop", labels={"app": "web", "tier": "back"}),
        pod("c", namespace="other", labels={"app": "web"}),
        deployment("d", namespace="shop"),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "builder", "namespace": "shop"},
        },
        {
            **pod("runner", namespace="shop"),
            "spec": {"serviceAccountName": "builder", "containers": []},
        },
        {
            "apiVersion": RBAC,
            "kind": "Role",
            "metadata": {"name": "reader", "namespace": "shop"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding",
            "metadata": {"name": "reader", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "builder"}],
        },
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": "monitoring"},
            "aggregationRule": {
                "clusterRoleSelectors": [{"matchLabels": {"aggregate-to-monitoring": "true"}}]
            },
            "rules": [],
        },
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": "metrics", "labels": {"aggregate-to-monitoring": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}],
        },
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "mon"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "monitoring",
            },
            "subjects": [
                {"kind": "Group", "name": "sre"},
                {"kind": "ServiceAccount", "name": "prom", "namespace": "mon"},
            ],
        },
    ]


@pytest.fixture
def ctx() -> ClusterContext:
    return ClusterContext(_objects())


def test_basic_indexes(ctx: ClusterContext) -> None:
    assert len(ctx.by_kind("Pod")) == 4
    assert {o.name for o in ctx.in_namespace("shop", "Pod")} == {"a", "b", "runner"}
    assert ctx.get("Deployment", "shop", "d") is not None
    assert ctx.get("Deployment", "other", "d") is None
    assert ctx.namespaces() == {"shop", "other"}
    key = ctx.get("Pod", "shop", "a").ref.key
    assert ctx.get_by_key(key).name == "a"


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ({"matchLabels": {"app": "web"}}, {"a", "b"}),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["back"]}],
            },
            {"a"},
        ),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"a", "b"}),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"runner"}),
        ("app=web,tier in (front, side)", {"a"}),
        ("app==web,tier!=front", {"b"}),
        ("!tier", {"runner"}),
        ({}, {"a", "b", "runner"}),
    ],
)
def test_label_selectors(ctx: ClusterContext, selector: object, names: set[str]) -> None:
    assert {o.name for o in ctx.select("Pod", "shop", selector)} == names


def test_selector_errors() -> None:
    for bad in ("app in web", "!app in (x)", "a=b=c"):
        with pytest.raises(SelectorError):
            parse_selector(bad)
    with pytest.raises(SelectorError):
        parse_selector({"matchExpressions": [{"key": "a", "operator": "Like"}]})


def test_rbac_lookups(ctx: ClusterContext) -> None:
    role = ctx.get("Role", "shop", "reader")
    bindings = ctx.bindings_for_role(role)
    assert [b.name for b in bindings] == ["reader"]
    assert ctx.role_of(bindings[0]) is role
    # A ServiceAccount subject without namespace belongs to the binding's namespace.
    assert [b.name for b in ctx.bindings_for_subject("ServiceAccount", "builder", "shop")] == [
        "reader"
    ]
    assert [b.name for b in ctx.bindings_for_subject("Group", "sre")] == ["mon"]
    assert [b.name for b in ctx.bindings_for_subject("ServiceAccount", "prom", "mon")] == ["mon"]
    monitoring = ctx.get("ClusterRole", None, "monitoring")
    assert [r["resources"] for r in ctx.policy_rules(monitoring)] == [["nodes/proxy"]]


def test_service_account_usage(ctx: ClusterContext) -> None:
    assert ctx.service_account("shop", "builder") is not None
    assert [o.name for o in ctx.pods_using_service_account("shop", "builder")] == ["runner"]
    assert {o.name for o in ctx.pods_using_service_account("shop", "default")} == {"a", "b", "d"}


def test_workloads_leave_out_controlled_objects_when_dedup_is_on() -> None:
    dep = deployment("web", namespace="shop", uid="u-dep")
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": "u-rs",
            "ownerReferences": [
                {"kind": "Deployment", "name": "web", "uid": "u-dep", "controller": True}
            ],
        },
        "spec": {"template": {"spec": {"containers": []}}},
    }
    owned = pod(
        "web-1-a",
        namespace="shop",
        ownerReferences=[
            {"kind": "ReplicaSet", "name": "web-1", "uid": "u-rs", "controller": True}
        ],
    )
    orphan = pod("lonely", namespace="shop")
    objects = [
        dep,
        rs,
        owned,
        orphan,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}},
    ]
    assert [o.name for o in ClusterContext(objects).workloads()] == ["web", "lonely"]
    everything = ClusterContext(objects, dedup_controllers=False).workloads()
    assert [o.name for o in everything] == ["web", "web-1", "web-1-a", "lonely"]


def test_in_namespace_by_kind_matches_a_scan_of_the_namespace(ctx: ClusterContext) -> None:
    for namespace in (*ctx.namespaces(), None, "absent"):
        everything = ctx.in_namespace(namespace)
        for kind in ("Pod", "Deployment", "ClusterRole", "Role", "Absent"):
            expected = tuple(o for o in everything if o.kind == kind)
            assert ctx.in_namespace(namespace, kind) == expected
    assert [o.name for o in ctx.in_namespace(None, "ClusterRole")] == ["monitoring", "metrics"]
    assert ctx.in_namespace("other", "Deployment") == ()


def test_pod_templates_by_namespace_and_by_label() -> None:
    web = deployment("web", namespace="shop")
    api = deployment("api", namespace="shop")
    numbered = pod("n", namespace="shop", labels={"tier": 3, "app": "web"})
    elsewhere = deployment("web", namespace="other")
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "shop"},
    }
    ctx = ClusterContext([web, api, numbered, elsewhere, config], skip_invalid=False)
    assert [(o.name, dict(labels)) for o, labels in ctx.pod_templates("shop")] == [
        ("web", {"app": "web"}),
        ("api", {"app": "api"}),
        ("n", {"tier": 3, "app": "web"}),
    ]
    assert [o.name for o, _ in ctx.pod_templates("shop", ("app", "web"))] == ["web", "n"]
    assert [o.name for o, _ in ctx.pod_templates("shop", ("tier", "3"))] == ["n"]  # as text
    assert ctx.pod_templates("shop", ("app", "db")) == ()
    assert [o.namespace for o, _ in ctx.pod_templates("other", ("app", "web"))] == ["other"]
    assert ctx.pod_templates("absent") == ()


def test_pod_templates_by_label_are_the_namespaces_templates_with_it_as_text() -> None:
    """The label index (built per namespace and key when first asked) answers as a filter of
    the namespace's templates would: keys and values as text, a template once per label of
    it that matches (an int key and its text both do), in input order."""
    templates = [
        pod("a", namespace="shop", labels={"app": "web", "tier": 3}),
        pod("b", namespace="shop", labels={1: "x", "1": "x", "app": "api"}),
        deployment("c", namespace="shop"),
        pod("d", namespace="shop", labels={"tier": "3", True: "y"}),
        pod("e", namespace="other", labels={"app": "web"}),
    ]
    ctx = ClusterContext(templates, skip_invalid=False)
    for namespace in ("shop", "other", "absent"):
        every = ctx.pod_templates(namespace)
        asked = {(str(k), str(v)) for _o, labels in every for k, v in labels.items()}
        for key, value in sorted(asked | {("app", "db"), ("tier", "4")}):
            expected = [
                entry
                for entry in every
                for k, v in entry[1].items()
                if str(k) == key and str(v) == value
            ]
            assert list(ctx.pod_templates(namespace, (key, value))) == expected, (key, value)
    assert [o.name for o, _ in ctx.pod_templates("shop", ("1", "x"))] == ["b", "b"]
    assert [o.name for o, _ in ctx.pod_templates("shop", ("True", "y"))] == ["d"]
