"""Seeded generator of a realistic Kubernetes object corpus for benchmarks.

`generate(count, seed=...)` returns `count` manifests with the mix of a real cluster: per
namespace, Deployments with their ReplicaSets and Pods (owner references and pod status
included), StatefulSets and their Pods, Jobs/CronJobs, Services, ConfigMaps, ServiceAccounts,
Roles/RoleBindings, NetworkPolicies, Ingresses, PDBs, HPAs and custom resources; plus
cluster-scoped Namespaces, ClusterRoles/Bindings, CRDs, Nodes and DaemonSets in system
namespaces. Security settings vary (mostly hardened, some privileged/host-namespace/root
workloads) so every rule has work to do. Same seed, same corpus.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

IMAGES = (
    "nginx",
    "redis",
    "postgres",
    "registry.example/shop/api",
    "registry.example/web",
    "ghcr.io/acme/worker",
    "quay.io/prometheus/node-exporter",
    "busybox",
)
CUSTOM_KINDS = (
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("cert-manager.io/v1", "Certificate"),
    ("argoproj.io/v1alpha1", "Application"),
    ("networking.istio.io/v1", "VirtualService"),
)


def _uid(rng: random.Random) -> str:
    return "%08x-%04x-%04x-%04x-%012x" % (  # noqa: UP031 - fixed-width hex fields
        rng.getrandbits(32),
        rng.getrandbits(16),
        rng.getrandbits(16),
        rng.getrandbits(16),
        rng.getrandbits(48),
    )


def _meta(rng: random.Random, name: str, namespace: str | None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": _uid(rng),
        "resourceVersion": str(rng.randrange(1, 10**8)),
        "creationTimestamp": f"2026-0{rng.randrange(1, 10)}-1{rng.randrange(0, 10)}T08:00:00Z",
        "labels": {
            "app.kubernetes.io/name": name.rsplit("-", 1)[0],
            "app.kubernetes.io/part-of": "shop",
        },
    }
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def _container(rng: random.Random, name: str, *, hardened: bool) -> dict[str, Any]:
    image = rng.choice(IMAGES)
    tag = rng.choice(("1.27.3", "7.2", "latest", "v2.14.1", "sha256"))
    ref = f"{image}@sha256:{rng.getrandbits(256):064x}" if tag == "sha256" else f"{image}:{tag}"
    container: dict[str, Any] = {
        "name": name,
        "image": ref,
        "ports": [{"containerPort": rng.choice((80, 8080, 9090, 5432)), "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
            },
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
        if rng.random() < 0.8
        else {},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
    }
    if rng.random() < 0.7:
        container["readinessProbe"] = {
            "httpGet": {"path": "/ready", "port": 8080},
            "periodSeconds": 10,
        }
        container["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}}
    if hardened:
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }
    else:
        roll = rng.random()
        sc: dict[str, Any] = {}
        if roll < 0.05:
            sc["privileged"] = True
        elif roll < 0.10:
            sc["capabilities"] = {"add": ["NET_ADMIN", "SYS_TIME"]}
        elif roll < 0.15:
            sc["runAsUser"] = 0
        if sc:
            container["securityContext"] = sc
    return container


def _pod_spec(rng: random.Random, *, hardened: bool, host: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [_container(rng, "app", hardened=hardened)],
        "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
        "serviceAccountName": rng.choice(("default", "app")),
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
    }
    if rng.random() < 0.3:
        spec["containers"].append(_container(rng, "sidecar", hardened=hardened))
    if rng.random() < 0.2:
        spec["initContainers"] = [_container(rng, "migrate", hardened=hardened)]
    if hardened:
        spec["securityContext"] = {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        spec["automountServiceAccountToken"] = False
    if host:
        spec["hostNetwork"] = True
        spec["hostPID"] = rng.random() < 0.5
        spec["volumes"].append({"name": "host", "hostPath": {"path": "/var/log"}})
    return spec


def _pod_status(rng: random.Random, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "phase": "Running",
        "hostIP": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
        "podIP": f"10.244.{rng.randrange(256)}.{rng.randrange(256)}",
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": "2026-09-01T08:00:00Z"}
            for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "ready": True,
                "restartCount": rng.randrange(3),
                "image": c["image"],
                "imageID": f"docker-pullable://{c['image']}",
                "containerID": f"containerd://{rng.getrandbits(128):032x}",
                "state": {"running": {"startedAt": "2026-09-01T08:00:05Z"}},
            }
            for c in spec["containers"]
        ],
    }


def _owner(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _namespace_objects(rng: random.Random, ns: str) -> Iterator[dict[str, Any]]:
    yield {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta(
            rng,
            ns,
            None,
            labels={
                "kubernetes.io/metadata.name": ns,
                **(
                    {"pod-security.kubernetes.io/enforce": "baseline"} if rng.random() < 0.4 else {}
                ),
            },
        ),
    }
    yield {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(rng, "default", ns)}
    yield {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(rng, "app", ns)}
    yield {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(rng, "app-reader", ns),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps", "pods"],
                "verbs": ["get", "list", "watch"],
            }
        ]
        + (
            [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
            if rng.random() < 0.3
            else []
        ),
    }
    yield {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(rng, "app-reader", ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "app-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}],
    }
    if rng.random() < 0.6:
        yield {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(rng, "default-deny", ns),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        }
    for d in range(rng.randrange(3, 9)):
        yield from _deployment(rng, ns, f"svc{d}")
    if rng.random() < 0.4:
        yield from _statefulset(rng, ns)
    if rng.random() < 0.4:
        yield from _cronjob(rng, ns)
    api, kind = rng.choice(CUSTOM_KINDS)
    yield {
        "apiVersion": api,
        "kind": kind,
        "metadata": _meta(rng, f"{ns}-custom", ns),
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "endpoints": [{"port": "m"}]},
    }


def _deployment(rng: random.Random, ns: str, name: str) -> Iterator[dict[str, Any]]:
    hardened = rng.random() < 0.6
    replicas = rng.choice((1, 2, 3, 3, 5))
    spec = _pod_spec(rng, hardened=hardened)
    labels = {"app": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(rng, name, ns),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "observedGeneration": 3},
    }
    yield deployment
    rs_name = f"{name}-{rng.getrandbits(32):08x}"
    replica_set = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": _meta(rng, rs_name, ns, ownerReferences=_owner(deployment)),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }
    yield replica_set
    for i in range(replicas):
        yield {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": _meta(rng, f"{rs_name}-{i:05x}", ns, ownerReferences=_owner(replica_set)),
            "spec": {**spec, "nodeName": f"node-{rng.randrange(50)}"},
            "status": _pod_status(rng, spec),
        }
    yield {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(rng, name, ns),
        "spec": {
            "type": rng.choice(("ClusterIP", "ClusterIP", "ClusterIP", "NodePort", "LoadBalancer")),
            "selector": labels,
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }
    yield {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(rng, f"{name}-config", ns),
        "data": {"app.yaml": "listen: 8080\nlog: info\n", "FEATURES": "a,b,c"},
    }
    if rng.random() < 0.3:
        yield {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": _meta(rng, name, ns),
            "spec": {
                "rules": [
                    {
                        "host": f"{name}.{ns}.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": name, "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            },
        }
    if replicas > 1 and rng.random() < 0.5:
        yield {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(rng, name, ns),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
        }
    if rng.random() < 0.2:
        yield {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(rng, name, ns),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": 2,
                "maxReplicas": 10,
            },
        }


def _statefulset(rng: random.Random, ns: str) -> Iterator[dict[str, Any]]:
    spec = _pod_spec(rng, hardened=rng.random() < 0.5)
    labels = {"app": "db"}
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(rng, "db", ns),
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Gi"}},
                    },
                }
            ],
        },
    }
    yield sts
    for i in range(3):
        yield {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": _meta(rng, f"db-{i}", ns, ownerReferences=_owner(sts)),
            "spec": spec,
            "status": _pod_status(rng, spec),
        }


def _cronjob(rng: random.Random, ns: str) -> Iterator[dict[str, Any]]:
    spec = {**_pod_spec(rng, hardened=rng.random() < 0.5), "restartPolicy": "OnFailure"}
    yield {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(rng, "report", ns),
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "spec": {"template": {"metadata": {"labels": {"app": "report"}}, "spec": spec}}
            },
        },
    }


def _cluster_objects(rng: random.Random) -> Iterator[dict[str, Any]]:
    rbac = "rbac.authorization.k8s.io/v1"
    yield {
        "apiVersion": rbac,
        "kind": "ClusterRole",
        "metadata": _meta(rng, "cluster-admin", None),
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }
    for i in range(20):
        yield {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": _meta(rng, f"ops-{i}", None),
            "rules": [
                {
                    "apiGroups": ["", "apps"],
                    "resources": ["pods", "deployments"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        }
        yield {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(rng, f"ops-{i}", None),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"ops-{i}" if i else "cluster-admin",
            },
            "subjects": [
                {"kind": "Group", "name": f"team-{i}", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        }
    for api, kind in CUSTOM_KINDS:
        group = api.split("/")[0]
        yield {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": _meta(rng, f"{kind.lower()}s.{group}", None),
            "spec": {
                "group": group,
                "names": {"kind": kind, "plural": f"{kind.lower()}s"},
                "scope": "Namespaced",
                "versions": [{"name": api.split("/")[1], "served": True, "storage": True}],
            },
        }
    for i in range(50):
        yield {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": _meta(rng, f"node-{i}", None),
            "status": {"nodeInfo": {"kubeletVersion": "v1.31.2"}},
        }
    for name in ("node-exporter", "cni-agent", "log-shipper"):
        spec = _pod_spec(rng, hardened=False, host=True)
        yield {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": _meta(rng, name, "kube-system"),
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
            },
        }


def generate(count: int, *, seed: int = 20261127) -> list[dict[str, Any]]:
    """`count` manifests (exactly), deterministic for a seed."""
    rng = random.Random(seed)
    objects = list(_cluster_objects(rng))
    index = 0
    while len(objects) < count:
        objects.extend(_namespace_objects(rng, f"team-{index:04d}"))
        index += 1
    return objects[:count]


def kind_mix(objects: list[dict[str, Any]]) -> Counter[str]:
    """How many objects of each kind (for reports)."""
    return Counter(o["kind"] for o in objects)
