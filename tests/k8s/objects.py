"""A realistic object set for the real API server: workloads, RBAC, CRDs and custom resources,
Secrets the agent must never read, and more than 500 ConfigMaps in one namespace.

Objects whose type the server does not serve (a v1.20 server has no `batch/v1` CronJob or
`policy/v1` PodDisruptionBudget) are created at a version it does serve, or skipped.
"""

from __future__ import annotations

import time
from typing import Any

from tests.k8s.apiserver import ApiServer

BULK_NAMESPACE = "bulk"
BULK_CONFIG_MAPS = 600
NAMESPACES = ("shop", "payments", BULK_NAMESPACE)
# A group whose preferred version is v1 (Widgets) and whose Legacy type is served only at
# v1beta1: the non-preferred-version case of issue 19, defect 3.
CRD_GROUP = "example.com"
# A CRD whose kind is Secret: the agent must never list it either.
SECRET_LIKE_GROUP = "vault.example.org"
# Where an older release serves a type (Kubernetes 1.20 has no batch/v1 CronJob or policy/v1 PDB).
OLDER_VERSIONS = {"batch/v1": ("batch/v1beta1",), "policy/v1": ("policy/v1beta1",)}


def _meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app": name, **labels}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _pod_template(name: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "ports": [{"containerPort": 8080}],
                    "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
                    "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                }
            ],
        },
    }


def _crd(plural: str, kind: str, group: str, versions: list[tuple[str, bool]]) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {"name": version, "served": True, "storage": storage, "schema": schema}
                for version, storage in versions
            ],
        },
    }


def workloads(namespace: str) -> list[dict[str, Any]]:
    web = f"{namespace}-web"
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(web, namespace),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": web}},
                "template": _pod_template(web, f"registry.example/{web}:1.0"),
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta(f"{namespace}-db", namespace),
            "spec": {
                "serviceName": f"{namespace}-db",
                "selector": {"matchLabels": {"app": f"{namespace}-db"}},
                "template": _pod_template(f"{namespace}-db", "registry.example/postgres:16"),
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": _meta(f"{namespace}-agent", namespace),
            "spec": {
                "selector": {"matchLabels": {"app": f"{namespace}-agent"}},
                "template": _pod_template(f"{namespace}-agent", "registry.example/node:2"),
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": _meta(f"{namespace}-debug", namespace),
            "spec": {
                **_pod_template("debug", "busybox:1.36")["spec"],
                "hostNetwork": True,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(web, namespace),
            "spec": {"selector": {"app": web}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(web, namespace)},
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _meta(f"{namespace}-migrate", namespace),
            "spec": {
                "template": {
                    **_pod_template("migrate", "registry.example/migrate:3"),
                    "spec": {
                        **_pod_template("migrate", "registry.example/migrate:3")["spec"],
                        "restartPolicy": "Never",
                    },
                }
            },
        },
        {
            "apiVersion": "batch/v1",  # v1.20 serves CronJobs only at v1beta1: see populate
            "kind": "CronJob",
            "metadata": _meta(f"{namespace}-nightly", namespace),
            "spec": {
                "schedule": "0 3 * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                **_pod_template("nightly", "registry.example/report:1")["spec"],
                                "restartPolicy": "OnFailure",
                            }
                        }
                    }
                },
            },
        },
        {
            "apiVersion": "policy/v1",  # policy/v1beta1 before v1.21: see populate
            "kind": "PodDisruptionBudget",
            "metadata": _meta(web, namespace),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": web}}},
        },
        {
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(web, namespace),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": web},
                "minReplicas": 2,
                "maxReplicas": 5,
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("default-deny", namespace),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": _meta(web, namespace),
            "spec": {
                "rules": [
                    {
                        "host": f"{namespace}.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": web, "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            },
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta("reader", namespace),
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta("reader", namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": web, "namespace": namespace}],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(f"{namespace}-db-password", namespace),
            "stringData": {"password": "never-read-by-the-agent"},
        },
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": _meta("quota", namespace),
            "spec": {"hard": {"pods": "50"}},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": _meta("limits", namespace),
            "spec": {"limits": [{"type": "Container", "default": {"cpu": "200m"}}]},
        },
        {
            "apiVersion": f"{CRD_GROUP}/v1",
            "kind": "Widget",
            "metadata": _meta(f"{namespace}-widget", namespace),
            "spec": {"size": 3, "colour": "blue"},
        },
        {
            "apiVersion": f"{CRD_GROUP}/v1beta1",
            "kind": "Legacy",
            "metadata": _meta(f"{namespace}-legacy", namespace),
            "spec": {"mode": "old"},
        },
        {
            "apiVersion": f"{SECRET_LIKE_GROUP}/v1",
            "kind": "Secret",
            "metadata": _meta(f"{namespace}-vault-entry", namespace),
            "spec": {"value": "never-read-either"},
        },
    ]


def cluster_wide() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta("too-broad"),
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta("too-broad"),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "too-broad",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "shop-web", "namespace": "shop"}],
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": _meta("fast"),
            "provisioner": "example.com/fast",
        },
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": _meta("critical-apps"),
            "value": 100000,
        },
        {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": _meta("gvisor"),
            "handler": "runsc",
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": _meta("nginx"),
            "spec": {"controller": "k8s.io/ingress-nginx"},
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": _meta("policy-webhook"),
            "webhooks": [],
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": _meta("data-1"),
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/srv/data-1"},
            },
        },
    ]


def populate(api: ApiServer) -> None:
    """Create the namespaces, CRDs (waiting until they are served), then every object."""
    for name in NAMESPACES:
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for crd in (
        _crd("widgets", "Widget", CRD_GROUP, [("v1", True)]),
        _crd("legacies", "Legacy", CRD_GROUP, [("v1beta1", True)]),
        _crd("secrets", "Secret", SECRET_LIKE_GROUP, [("v1", True)]),
    ):
        api.create(crd)
    deadline = time.monotonic() + 60
    while not all(
        api.serves(version, kind)
        for version, kind in (
            (f"{CRD_GROUP}/v1", "Widget"),
            (f"{CRD_GROUP}/v1beta1", "Legacy"),
            (f"{SECRET_LIKE_GROUP}/v1", "Secret"),
        )
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the CRDs were not served within 60 s")
        time.sleep(0.5)
    objects = cluster_wide()
    for name in NAMESPACES:
        objects += workloads(name)
    for obj in objects:
        # The newest version this release serves; an object of a type it does not serve at
        # all is skipped (the suite tests the agent's mechanics, not the newest API versions).
        for version in (obj["apiVersion"], *OLDER_VERSIONS.get(obj["apiVersion"], ())):
            if api.serves(version, obj["kind"]):
                api.create({**obj, "apiVersion": version})
                break
    for index in range(BULK_CONFIG_MAPS):
        api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(f"settings-{index:04d}", BULK_NAMESPACE),
                "data": {"index": str(index), "payload": "x" * (index % 97)},
            }
        )
