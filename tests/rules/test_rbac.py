"""RBAC analysis (rules.catalogue.rbac): authorizer-exact matching, binding scope, defaults."""

from __future__ import annotations

from typing import Any

import pytest

from rules import ClusterContext, Engine
from rules.catalogue.rbac import (
    IMPERSONATE,
    NODE_PROXY,
    PV_CREATE,
    SECRETS_READ,
    WORKLOAD_CREATE,
    Need,
    bound_role,
    grants,
    is_default_binding,
    rule_grants,
)
from rules.view import ObjectView

RBAC = "rbac.authorization.k8s.io/v1"


def role(
    name: str, rules: list[dict[str, Any]], namespace: str | None = None, kind: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": RBAC,
        "kind": kind or ("Role" if namespace else "ClusterRole"),
        "metadata": meta,
        "rules": rules,
    }


def binding(
    name: str,
    role_kind: str,
    role_name: str,
    subjects: list[dict[str, Any]],
    namespace: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": RBAC,
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": subjects,
    }


USER = [{"kind": "User", "name": "alice"}]


@pytest.mark.parametrize(
    ("policy_rule", "need", "granted"),
    [
        (
            {"apiGroups": ["*"], "resources": ["secrets"], "verbs": ["get"]},
            SECRETS_READ[0],
            ("get",),
        ),
        ({"apiGroups": ["apps"], "resources": ["secrets"], "verbs": ["get"]}, SECRETS_READ[0], ()),
        (
            {"apiGroups": [""], "resources": ["*"], "verbs": ["*"]},
            SECRETS_READ[0],
            ("get", "list", "watch"),
        ),
        (
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": ["db"],
                "verbs": ["get"],
            },
            SECRETS_READ[0],
            (),
        ),
        (
            {"apiGroups": [""], "resources": ["secrets/status"], "verbs": ["get"]},
            SECRETS_READ[0],
            (),
        ),
        ({"apiGroups": [""], "resources": ["*/proxy"], "verbs": ["get"]}, NODE_PROXY[0], ("get",)),
        ({"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}, NODE_PROXY[0], ()),
        (
            {
                "apiGroups": [""],
                "resources": ["nodes/proxy"],
                "resourceNames": ["n1"],
                "verbs": ["get"],
            },
            NODE_PROXY[0],
            ("get",),
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["x"], "verbs": ["create"]},
            WORKLOAD_CREATE[0],
            (),
        ),
        (
            {
                "apiGroups": [""],
                "resources": ["users"],
                "resourceNames": ["admin"],
                "verbs": ["impersonate"],
            },
            IMPERSONATE[0],
            ("impersonate",),
        ),
        ({"nonResourceURLs": ["*"], "verbs": ["*"]}, SECRETS_READ[0], ()),
        ("not a rule", SECRETS_READ[0], ()),
    ],
)
def test_rule_matching_follows_the_authorizer(
    policy_rule: Any, need: Need, granted: tuple[str, ...]
) -> None:
    rule_ = policy_rule if isinstance(policy_rule, dict) else {}
    assert rule_grants(rule_, need) == granted


def test_rolebinding_never_grants_cluster_scoped_resources() -> None:
    cluster = ClusterContext(
        [
            role(
                "pv-maker",
                [{"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["create"]}],
            ),
            binding("ns-scoped", "ClusterRole", "pv-maker", USER, namespace="shop"),
            binding("cluster-wide", "ClusterRole", "pv-maker", USER),
        ]
    )
    scoped = bound_role(cluster, cluster.get("RoleBinding", "shop", "ns-scoped"))
    wide = bound_role(cluster, cluster.get("ClusterRoleBinding", None, "cluster-wide"))
    assert scoped is not None and wide is not None
    assert grants(scoped, PV_CREATE) == []
    assert [g.verbs for g in grants(wide, PV_CREATE)] == [("create",)]


def test_clusterrolebinding_cannot_reference_a_role() -> None:
    cluster = ClusterContext(
        [
            role(
                "reader",
                [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
                namespace="shop",
            ),
            binding("broken", "Role", "reader", USER),
        ]
    )
    assert bound_role(cluster, cluster.get("ClusterRoleBinding", None, "broken")) is None


def test_builtin_roles_assumed_only_when_absent() -> None:
    missing = ClusterContext([binding("b", "ClusterRole", "admin", USER, namespace="shop")])
    bound = bound_role(missing, missing.get("RoleBinding", "shop", "b"))
    assert bound is not None and bound.builtin and grants(bound, SECRETS_READ)
    # A cluster that redefines "admin" is taken at its word.
    present = ClusterContext(
        [
            role("admin", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            binding("b", "ClusterRole", "admin", USER, namespace="shop"),
        ]
    )
    bound = bound_role(present, present.get("RoleBinding", "shop", "b"))
    assert bound is not None and not bound.builtin and not grants(bound, SECRETS_READ)
    view = ClusterContext([binding("v", "ClusterRole", "view", USER, namespace="shop")])
    assert bound_role(view, view.get("RoleBinding", "shop", "v")) is None


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            binding(
                "system:controller:job-controller",
                "ClusterRole",
                "system:controller:job-controller",
                [{"kind": "ServiceAccount", "name": "job-controller", "namespace": "kube-system"}],
            ),
            True,
        ),
        (
            binding(
                "cluster-admin",
                "ClusterRole",
                "cluster-admin",
                [{"kind": "Group", "name": "system:masters"}],
            ),
            True,
        ),
        (
            binding(
                "cluster-admin",
                "ClusterRole",
                "cluster-admin",
                [{"kind": "Group", "name": "system:masters"}, {"kind": "User", "name": "eve"}],
            ),
            False,
        ),
        (
            binding(
                "kubeadm:cluster-admins",
                "ClusterRole",
                "cluster-admin",
                [{"kind": "Group", "name": "kubeadm:cluster-admins"}],
            ),
            True,
        ),
        (binding("system:sneaky", "ClusterRole", "cluster-admin", USER), False),
        (
            binding(
                "system:public-info-viewer",
                "ClusterRole",
                "system:public-info-viewer",
                [{"kind": "Group", "name": "system:unauthenticated"}],
            ),
            True,
        ),
        (
            binding(
                "system:open-door",
                "ClusterRole",
                "system:aggregate-to-edit",
                [{"kind": "Group", "name": "system:unauthenticated"}],
            ),
            False,
        ),
        (
            binding(
                "system::extension-apiserver-authentication-reader",
                "Role",
                "extension-apiserver-authentication-reader",
                [{"kind": "User", "name": "system:kube-scheduler"}],
                namespace="kube-system",
            ),
            True,
        ),
        (binding("team", "ClusterRole", "system:aggregate-to-view", USER), False),
    ],
)
def test_default_bindings(manifest: dict[str, Any], expected: bool) -> None:
    assert is_default_binding(ObjectView(manifest)) is expected


def _kubeadm_defaults() -> list[dict[str, Any]]:
    """A representative slice of a fresh kubeadm cluster's RBAC (the API server labels every
    role and binding it bootstraps `kubernetes.io/bootstrapping: rbac-defaults`)."""
    objects = _kubeadm_objects()
    for obj in objects:
        if (
            obj["kind"] != "ClusterRoleBinding"
            or obj["metadata"]["name"] != "kubeadm:cluster-admins"
        ):
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/bootstrapping"] = "rbac-defaults"
    return objects


def _kubeadm_objects() -> list[dict[str, Any]]:
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    secrets = [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get", "list", "watch", "create", "update"],
        }
    ]
    return [
        role("cluster-admin", everything),
        binding(
            "cluster-admin",
            "ClusterRole",
            "cluster-admin",
            [{"kind": "Group", "name": "system:masters"}],
        ),
        binding(
            "kubeadm:cluster-admins",
            "ClusterRole",
            "cluster-admin",
            [{"kind": "Group", "name": "kubeadm:cluster-admins"}],
        ),
        role("system:controller:token-cleaner", secrets, namespace="kube-system"),
        binding(
            "system:controller:token-cleaner",
            "Role",
            "system:controller:token-cleaner",
            [{"kind": "ServiceAccount", "name": "token-cleaner", "namespace": "kube-system"}],
            namespace="kube-system",
        ),
        role("system:kube-controller-manager", secrets),
        binding(
            "system:kube-controller-manager",
            "ClusterRole",
            "system:kube-controller-manager",
            [{"kind": "User", "name": "system:kube-controller-manager"}],
        ),
        role(
            "system:node-proxier",
            [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}],
        ),
        binding(
            "system:node-proxier",
            "ClusterRole",
            "system:node-proxier",
            [{"kind": "User", "name": "system:kube-proxy"}],
        ),
        binding(
            "system:discovery",
            "ClusterRole",
            "system:discovery",
            [{"kind": "Group", "name": "system:authenticated"}],
        ),
        binding(
            "system:basic-user",
            "ClusterRole",
            "system:basic-user",
            [{"kind": "Group", "name": "system:authenticated"}],
        ),
    ]


def test_a_default_cluster_has_no_rbac_findings() -> None:
    outcome = Engine.from_config(None).scan(_kubeadm_defaults())
    rbac = [r for r in outcome.results if r.rule_id.startswith("KM-2")]
    assert rbac == [], [r.message for r in rbac]


def test_a_role_named_system_without_the_bootstrap_label_is_not_built_in() -> None:
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    manifests = [
        *_kubeadm_defaults(),
        role("system:platform-admin", everything),
        binding(
            "system:platform-admin",
            "ClusterRole",
            "system:platform-admin",
            [{"kind": "User", "name": "mallory"}],
        ),
    ]
    outcome = Engine.from_config(None).scan(manifests)
    found = {(r.rule_id, r.resource.name) for r in outcome.results}
    assert ("KM-203", "system:platform-admin") in found  # wildcards
    assert ("KM-201", "system:platform-admin") in found  # cluster-admin equivalent
    assert ("KM-217", "system:platform-admin") in found  # exec into pods


def test_a_cluster_role_with_a_stray_namespace_is_cluster_scoped_and_linked() -> None:
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    stray = role("platform-admin", everything)
    stray["metadata"]["namespace"] = "shop"
    bound = binding(
        "platform-admin", "ClusterRole", "platform-admin", [{"kind": "User", "name": "alice"}]
    )
    outcome = Engine.from_config(None).scan([stray, bound])
    assert outcome.results
    assert all(r.resource.namespace is None for r in outcome.results)
    assert {"KM-201", "KM-203"} <= {r.rule_id for r in outcome.results}
    assert ObjectView(stray).namespace is None
    assert ObjectView(stray).ref.key == "rbac.authorization.k8s.io/v1|ClusterRole||platform-admin"


def test_one_custom_binding_in_a_default_cluster_is_found_once_per_rule() -> None:
    manifests = [
        *_kubeadm_defaults(),
        binding(
            "ci",
            "ClusterRole",
            "cluster-admin",
            [{"kind": "ServiceAccount", "name": "ci", "namespace": "ci"}],
        ),
    ]
    outcome = Engine.from_config(None).scan(manifests)
    ids = sorted(r.rule_id for r in outcome.results if r.rule_id.startswith("KM-2"))
    # cluster-admin grants secrets, pod creation, bind/escalate, impersonation, PVs,
    # nodes/proxy, webhook edits, token creation and exec; approval needs no second binding.
    assert ids == [
        "KM-201",
        "KM-202",
        "KM-204",
        "KM-209",
        "KM-210",
        "KM-211",
        "KM-212",
        "KM-213",
        "KM-214",
        "KM-215",
        "KM-217",
    ]
    for result in outcome.results:
        if result.rule_id.startswith("KM-2"):
            assert result.resource.name == "ci" and "ServiceAccount ci/ci" in result.message
