"""Realistic Kubernetes objects for the API emulator, as the API server stores them.

Builders add what real objects carry (status, managedFields via FakeCluster.add, last-applied
annotations, owner references); `small_cluster` is the tests' standard cluster, `populate`
fills one to a given size (the benchmark's), `churn` changes only volatile fields.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterable
from typing import Any

from tests.fakes.kube_api import FakeCluster

_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def namespace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta(name, labels={"kubernetes.io/metadata.name": name}),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def node(
    name: str, *, provider_id: str = "", heartbeat: str = "2026-01-05T10:00:00Z"
) -> dict[str, Any]:
    spec: dict[str, Any] = {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}
    if provider_id:
        spec["providerID"] = provider_id
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(
            name,
            labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            annotations={"node.alpha.kubernetes.io/ttl": "0"},
        ),
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "172.18.0.2"},
                {"type": "Hostname", "address": name},
            ],
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": heartbeat,
                    "lastTransitionTime": "2026-01-05T09:00:00Z",
                },
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": [{"names": ["registry.k8s.io/pause:3.9"], "sizeBytes": 321520}],
            "nodeInfo": {
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://1.7.13",
                "kernelVersion": "6.1.0",
                "kubeletVersion": "v1.29.3",
                "kubeProxyVersion": "v1.29.3",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "machineID": "m-" + name,
                "systemUUID": "s-" + name,
                "bootID": "b-" + name,
            },
        },
    }


def _container(name: str, image: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "resources": {
            "limits": {"cpu": "500m", "memory": "256Mi"},
            "requests": {"cpu": "100m", "memory": "128Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "name": "kube-api-access",
                "readOnly": True,
            }
        ],
    }


def _pod_spec(image: str, *, service_account: str = "default") -> dict[str, Any]:
    return {
        "containers": [_container("main", image)],
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": True,
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "serviceAccountName": service_account,
        "terminationGracePeriodSeconds": 30,
        "volumes": [
            {
                "name": "kube-api-access",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
                    ],
                },
            }
        ],
    }


def pod(
    name: str,
    *,
    namespace: str = "default",
    image: str = "nginx:1.27",
    node_name: str = "node-1",
    restarts: int = 0,
    owner: str | None = None,
) -> dict[str, Any]:
    meta = _meta(
        name,
        namespace,
        labels={"app": name.rsplit("-", 2)[0]},
        generateName=name.rsplit("-", 1)[0] + "-",
    )
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner,
                "uid": "rs-" + owner,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    spec = _pod_spec(image)
    spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": "Running",
            "qosClass": "Burstable",
            "hostIP": "172.18.0.2",
            "podIP": "10.244.0.17",
            "startTime": "2026-01-05T10:00:05Z",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": "2026-01-05T10:00:09Z",
                }
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "image": image,
                    "imageID": "docker.io/library/nginx@sha256:" + "ab" * 32,
                    "containerID": "containerd://" + "cd" * 32,
                    "ready": True,
                    "started": True,
                    "restartCount": restarts,
                    "state": {"running": {"startedAt": "2026-01-05T10:00:08Z"}},
                    "lastState": {},
                }
            ],
        },
    }


def deployment(
    name: str, *, namespace: str = "default", image: str = "nginx:1.27", replicas: int = 2
) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": name}}, "spec": _pod_spec(image)}
    applied = json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas},
        }
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(
            name,
            namespace,
            generation=3,
            labels={"app": name},
            annotations={"deployment.kubernetes.io/revision": "2", _LAST_APPLIED: applied},
        ),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": template,
        },
        "status": {
            "availableReplicas": replicas,
            "readyReplicas": replicas,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "observedGeneration": 3,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "lastUpdateTime": "2026-01-05T10:00:10Z",
                    "lastTransitionTime": "2026-01-05T10:00:10Z",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                }
            ],
        },
    }


def replica_set(
    name: str, *, namespace: str = "default", image: str = "nginx:1.27", replicas: int = 2
) -> dict[str, Any]:
    app = name.rsplit("-", 1)[0]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": _meta(
            name,
            namespace,
            generation=1,
            labels={"app": app},
            ownerReferences=[
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": app,
                    "uid": "dep-" + app,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": _pod_spec(image)},
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "observedGeneration": 1},
    }


def service(
    name: str, *, namespace: str = "default", service_type: str = "ClusterIP"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, labels={"app": name}),
        "spec": {
            "type": service_type,
            "clusterIP": "10.96.12.34",
            "clusterIPs": ["10.96.12.34"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
            "selector": {"app": name},
            "sessionAffinity": "None",
        },
        "status": {"loadBalancer": {}},
    }


def config_map(
    name: str, *, namespace: str = "default", data: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(name, namespace),
        "data": data if data is not None else {"app.properties": f"name={name}\nlevel=info\n"},
    }


def secret(name: str, *, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name, namespace),
        "type": "Opaque",
        "data": {"password": base64.b64encode(b"hunter2-" + name.encode()).decode()},
    }


def service_account(name: str, *, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, namespace)}


def role(name: str, *, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(name, namespace),
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }


def role_binding(
    name: str, *, namespace: str = "default", subject: str = "default"
) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": subject, "namespace": namespace}],
    }


def cluster_role(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(name),
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }


def event(name: str, *, namespace: str = "default", count: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": _meta(name, namespace),
        "involvedObject": {
            "kind": "Pod",
            "name": name.split(".", maxsplit=1)[0],
            "namespace": namespace,
        },
        "reason": "Pulled",
        "message": "Container image already present on machine",
        "type": "Normal",
        "count": count,
        "firstTimestamp": "2026-01-05T10:00:05Z",
        "lastTimestamp": "2026-01-05T10:00:05Z",
        "source": {"component": "kubelet", "host": "node-1"},
    }


def lease(
    name: str, *, namespace: str = "kube-node-lease", renew: str = "2026-01-05T10:00:00Z"
) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": _meta(name, namespace),
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew},
    }


def certificate(name: str, *, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": _meta(name, namespace, generation=1),
        "spec": {
            "secretName": name + "-tls",
            "dnsNames": [f"{name}.example.com"],
            "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt"},
        },
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastTransitionTime": "2026-01-05T10:00:00Z",
                    "observedGeneration": 1,
                }
            ],
            "notAfter": "2026-04-05T10:00:00Z",
            "renewalTime": "2026-03-06T10:00:00Z",
        },
    }


def crd(plural: str, group: str, kind: str, *, versions: Iterable[str] = ("v1",)) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": _meta(f"{plural}.{group}", generation=1),
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "kind": kind,
                "singular": kind.lower(),
                "listKind": kind + "List",
            },
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": i == 0,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
                for i, v in enumerate(versions)
            ],
        },
        "status": {
            "acceptedNames": {"plural": plural, "kind": kind},
            "storedVersions": [next(iter(versions))],
            "conditions": [
                {
                    "type": "Established",
                    "status": "True",
                    "lastTransitionTime": "2026-01-05T10:00:00Z",
                }
            ],
        },
    }


def small_cluster(
    *,
    git_version: str = "v1.29.3-eks-adc7111",
    provider_id: str = "aws:///eu-west-1a/i-0123456789abcdef0",
) -> FakeCluster:
    """A few objects of every interesting kind, including Secrets, Events and Leases."""
    cluster = FakeCluster.standard(git_version=git_version)
    cluster.add_all(
        [
            namespace("default"),
            namespace("kube-system"),
            namespace("shop"),
            node("node-1", provider_id=provider_id),
            node("node-2", provider_id=provider_id),
            deployment("web", namespace="shop", image="shop/web:1.4"),
            replica_set("web-5d9c", namespace="shop", image="shop/web:1.4"),
            pod("web-5d9c-a1b2c", namespace="shop", image="shop/web:1.4", owner="web-5d9c"),
            pod("web-5d9c-d3e4f", namespace="shop", image="shop/web:1.4", owner="web-5d9c"),
            service("web", namespace="shop", service_type="LoadBalancer"),
            config_map("web-config", namespace="shop"),
            config_map("coredns", namespace="kube-system"),
            secret("web-db", namespace="shop"),
            secret("bootstrap-token", namespace="kube-system"),
            service_account("web", namespace="shop"),
            role("reader", namespace="shop"),
            role_binding("reader", namespace="shop"),
            cluster_role("cluster-admin"),
            event("web-5d9c-a1b2c.17a", namespace="shop"),
            lease("node-1"),
            certificate("web", namespace="shop"),
            crd("certificates", "cert-manager.io", "Certificate", versions=("v1", "v1alpha2")),
        ]
    )
    return cluster


def populate(cluster: FakeCluster, *, total: int, seed: int = 7) -> None:
    """Add about `total` objects in namespaces of ~50 objects each (the benchmark's cluster)."""
    rnd = random.Random(seed)
    added = 0
    index = 0
    while added < total:
        ns = f"team-{index:04d}"
        cluster.add(namespace(ns))
        added += 1
        for app in range(6):
            name = f"svc{app}"
            image = f"registry.example.com/{ns}/{name}:{rnd.randint(1, 400)}"
            batch = [
                deployment(name, namespace=ns, image=image),
                replica_set(f"{name}-7f9c", namespace=ns, image=image),
                pod(
                    f"{name}-7f9c-{rnd.randrange(16**5):05x}",
                    namespace=ns,
                    image=image,
                    owner=f"{name}-7f9c",
                ),
                pod(
                    f"{name}-7f9c-{rnd.randrange(16**5):05x}",
                    namespace=ns,
                    image=image,
                    owner=f"{name}-7f9c",
                ),
                service(name, namespace=ns),
                config_map(f"{name}-config", namespace=ns),
                service_account(name, namespace=ns),
                role_binding(name, namespace=ns, subject=name),
            ]
            _diversify(batch, rnd, app=name, namespace=ns)
            for obj in batch:
                if added >= total:
                    return
                cluster.add(obj)
                added += 1
        index += 1


def _hex(rnd: random.Random, digits: int) -> str:
    return f"{rnd.getrandbits(4 * digits):0{digits}x}"


def _diversify(
    batch: list[dict[str, Any]], rnd: random.Random, *, app: str, namespace: str
) -> None:
    """Give one app's objects the per-object variety real ones have (config checksums, image
    digests, template hashes, cluster IPs, environment), so gzip is not unrealistically good."""
    checksum, digest, template_hash = _hex(rnd, 64), _hex(rnd, 64), _hex(rnd, 10)
    env = [
        {"name": "SERVICE_HOST", "value": f"{app}.{namespace}.svc.cluster.local"},
        {"name": "BUILD_ID", "value": _hex(rnd, 12)},
        {"name": "FEATURE_FLAGS", "value": ",".join(f"f{rnd.randrange(99)}" for _ in range(4))},
    ]
    for obj in batch:
        kind, spec = obj["kind"], obj.get("spec") or {}
        pod_spec = spec.get("template", {}).get("spec") if kind != "Pod" else spec
        if isinstance(pod_spec, dict):
            pod_spec["containers"][0]["env"] = env
        if kind in ("Deployment", "ReplicaSet"):
            spec["template"]["metadata"]["annotations"] = {"checksum/config": checksum}
        if kind == "Pod":
            obj["metadata"]["annotations"] = {"checksum/config": checksum}
            obj["metadata"]["labels"]["pod-template-hash"] = template_hash
            status = obj["status"]["containerStatuses"][0]
            status["imageID"] = f"{status['image'].rsplit(':', 1)[0]}@sha256:{digest}"
        if kind == "Service":
            address = f"10.96.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
            spec["clusterIP"], spec["clusterIPs"] = address, [address]
        if kind == "ConfigMap":
            obj["data"] = {
                "app.properties": f"name={app}\nnamespace={namespace}\n"
                f"upstream=http://{app}-backend:{rnd.randrange(1024, 65535)}\n"
                f"token_hash={_hex(rnd, 40)}\n"
            }


def churn(cluster: FakeCluster) -> int:
    """Change only volatile fields everywhere (heartbeats, restart counts, status counters)."""

    def change(obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        for entry in meta.get("managedFields", []):
            entry["time"] = "2026-01-06T11:11:11Z"
        if "generation" in meta:
            meta["generation"] += 1
        status = obj.get("status")
        if not isinstance(status, dict):
            return
        for cond in status.get("conditions", []):
            for key in ("lastHeartbeatTime", "lastUpdateTime", "lastProbeTime"):
                if key in cond:
                    cond[key] = "2026-01-06T11:11:11Z"
        for cs in status.get("containerStatuses", []):
            cs["restartCount"] += 1
            cs["state"] = {"running": {"startedAt": "2026-01-06T11:11:00Z"}}
        if "observedGeneration" in status:
            status["observedGeneration"] += 1
        if "images" in status:
            status["images"].append({"names": ["busybox:1.36"], "sizeBytes": 4261550})

    return cluster.edit(lambda _obj: True, change)
