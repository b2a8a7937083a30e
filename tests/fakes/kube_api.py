"""A Kubernetes API server emulator: a real HTTP server on 127.0.0.1 speaking real response shapes.

It serves what a read-only client uses: `/version`, `/api`, `/apis`, the per-group-version
discovery documents (`APIResourceList`, with subresources and create-only types that a client
must skip, a CRD group with a non-preferred version, a legacy duplicate group), lists with
`limit`/`continue` (typed-list items without apiVersion/kind, custom-resource items with them),
`410 Expired` for a stale continue token, `403 Forbidden` and `404 NotFound` as `kind: Status`,
and get/create/update of single objects (the agent's key Secret). Every request is recorded, so
tests can assert what was never asked for (no secrets path, no non-preferred version).

Usage::

    cluster = FakeCluster.standard()          # objects: tests/fakes/kube_objects.py
    cluster.add(pod("web-1", namespace="shop"))
    with KubeApiEmulator(cluster) as api:
        api.forbid("deployments.apps")
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        ...
        assert not any("/secrets" in r.path for r in api.requests)
"""

from __future__ import annotations

import base64
import copy
import json
import random
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
TOKEN = "emulator-token"


# ------------------------------------------------------------------------------------------------
# Resource types and the cluster's objects


@dataclass(frozen=True)
class FakeResource:
    """One resource type as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    custom: bool = False
    storage_hash: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery(self) -> list[dict[str, Any]]:
        """Its entries in an APIResourceList (the resource, then its subresources)."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        if self.storage_hash:
            entry["storageVersionHash"] = self.storage_hash
        entries = [entry]
        for sub in self.subresources:
            verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "Scale" if sub == "scale" else self.kind,
                    "verbs": verbs,
                }
            )
        return entries


@dataclass
class FakeGroup:
    """An API group: its versions in server order and the preferred one."""

    name: str
    versions: list[str]
    preferred: str

    def discovery(self) -> dict[str, Any]:
        def gv(version: str) -> dict[str, str]:
            return {"groupVersion": f"{self.name}/{version}", "version": version}

        return {
            "name": self.name,
            "versions": [gv(v) for v in self.versions],
            "preferredVersion": gv(self.preferred),
        }


def _storage_hash(group: str, plural: str) -> str:
    digest = base64.b64encode(f"{group}/{plural}".encode()[:8].ljust(8, b"=")).decode()
    return digest[:11] + "="


def _standard_resources() -> list[FakeResource]:
    r = FakeResource
    core = [
        r("", "v1", "bindings", "Binding", True, verbs=("create",)),
        r(
            "",
            "v1",
            "componentstatuses",
            "ComponentStatus",
            False,
            verbs=("get", "list"),
            short_names=("cs",),
        ),
        r("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
        r("", "v1", "endpoints", "Endpoints", True, short_names=("ep",)),
        r(
            "",
            "v1",
            "events",
            "Event",
            True,
            short_names=("ev",),
            storage_hash=_storage_hash("", "events"),
        ),
        r(
            "",
            "v1",
            "namespaces",
            "Namespace",
            False,
            verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
            short_names=("ns",),
            subresources=("finalize", "status"),
        ),
        r("", "v1", "nodes", "Node", False, short_names=("no",), subresources=("proxy", "status")),
        r(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            True,
            short_names=("pvc",),
            subresources=("status",),
        ),
        r("", "v1", "persistentvolumes", "PersistentVolume", False, short_names=("pv",)),
        r(
            "",
            "v1",
            "pods",
            "Pod",
            True,
            short_names=("po",),
            categories=("all",),
            subresources=(
                "attach",
                "binding",
                "ephemeralcontainers",
                "eviction",
                "exec",
                "log",
                "status",
            ),
        ),
        r("", "v1", "secrets", "Secret", True),
        r(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            True,
            short_names=("sa",),
            subresources=("token",),
        ),
        r(
            "",
            "v1",
            "services",
            "Service",
            True,
            short_names=("svc",),
            categories=("all",),
            subresources=("proxy", "status"),
        ),
    ]
    groups = [
        r("apps", "v1", "controllerrevisions", "ControllerRevision", True),
        r(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            True,
            short_names=("ds",),
            subresources=("status",),
        ),
        r(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            True,
            short_names=("deploy",),
            categories=("all",),
            subresources=("scale", "status"),
            storage_hash=_storage_hash("apps", "deployments"),
        ),
        r(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            True,
            short_names=("rs",),
            subresources=("scale", "status"),
        ),
        r(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            True,
            short_names=("sts",),
            subresources=("scale", "status"),
        ),
        r(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            True,
            short_names=("ev",),
            storage_hash=_storage_hash("", "events"),
        ),
        r(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            False,
            verbs=("create",),
        ),
        r(
            "batch",
            "v1",
            "cronjobs",
            "CronJob",
            True,
            short_names=("cj",),
            subresources=("status",),
        ),
        r("batch", "v1", "jobs", "Job", True, subresources=("status",)),
        r(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "Ingress",
            True,
            short_names=("ing",),
            subresources=("status",),
            storage_hash=_storage_hash("networking", "ingresses"),
        ),
        r(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            True,
            short_names=("netpol",),
        ),
        r(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            True,
            short_names=("pdb",),
            subresources=("status",),
        ),
        r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        r("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        r("coordination.k8s.io", "v1", "leases", "Lease", True),
        r(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short_names=("crd", "crds"),
            subresources=("status",),
        ),
        # A legacy group serving the same Ingress objects (same storage) as networking.k8s.io.
        r(
            "extensions",
            "v1beta1",
            "ingresses",
            "Ingress",
            True,
            short_names=("ing",),
            storage_hash=_storage_hash("networking", "ingresses"),
        ),
        # A CRD group: v1 preferred, v1alpha2 still served (must never be listed).
        r(
            "cert-manager.io",
            "v1",
            "certificates",
            "Certificate",
            True,
            custom=True,
            short_names=("cert",),
            subresources=("status",),
        ),
        r("cert-manager.io", "v1", "issuers", "Issuer", True, custom=True),
        r("cert-manager.io", "v1alpha2", "certificates", "Certificate", True, custom=True),
        r("cert-manager.io", "v1alpha2", "issuers", "Issuer", True, custom=True),
        # A CRD whose kind name collides with nothing built in, cluster-scoped.
        r(
            "kyverno.io",
            "v1",
            "clusterpolicies",
            "ClusterPolicy",
            False,
            custom=True,
            short_names=("cpol",),
        ),
    ]
    return core + groups


_STANDARD_GROUPS = [
    FakeGroup("apps", ["v1"], "v1"),
    FakeGroup("events.k8s.io", ["v1"], "v1"),
    FakeGroup("authorization.k8s.io", ["v1"], "v1"),
    FakeGroup("batch", ["v1"], "v1"),
    FakeGroup("networking.k8s.io", ["v1"], "v1"),
    FakeGroup("policy", ["v1"], "v1"),
    FakeGroup("rbac.authorization.k8s.io", ["v1"], "v1"),
    FakeGroup("coordination.k8s.io", ["v1"], "v1"),
    FakeGroup("apiextensions.k8s.io", ["v1"], "v1"),
    FakeGroup("extensions", ["v1beta1"], "v1beta1"),
    FakeGroup("cert-manager.io", ["v1", "v1alpha2"], "v1"),
    FakeGroup("kyverno.io", ["v1"], "v1"),
]


class FakeCluster:
    """Resource types and objects, with a resourceVersion counter like etcd's revision."""

    def __init__(
        self,
        *,
        git_version: str = "v1.29.3",
        resources: Iterable[FakeResource] = (),
        groups: Iterable[FakeGroup] = (),
    ) -> None:
        self.git_version = git_version
        self.resources: list[FakeResource] = list(resources)
        self.groups: list[FakeGroup] = list(groups)
        self.revision = 1000
        self._objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._lock = threading.RLock()

    @classmethod
    def standard(cls, *, git_version: str = "v1.29.3") -> FakeCluster:
        return cls(
            git_version=git_version,
            resources=_standard_resources(),
            groups=[copy.deepcopy(g) for g in _STANDARD_GROUPS],
        )

    # -- lookup ----------------------------------------------------------------------------------

    def resource(self, group: str, version: str, plural: str) -> FakeResource | None:
        for res in self.resources:
            if (res.group, res.version, res.plural) == (group, version, plural):
                return res
        return None

    def resource_for(self, api_version: str, kind: str) -> FakeResource:
        group, _, version = api_version.rpartition("/")
        for res in self.resources:
            if (res.group, res.version, res.kind) == (group, version, kind):
                return res
        raise KeyError(f"no resource type serves {api_version} {kind}")

    def _bucket(self, res: FakeResource) -> dict[tuple[str, str], dict[str, Any]]:
        # Objects are stored once per (group, plural): every served version sees them.
        return self._objects.setdefault((res.group, res.plural), {})

    # -- objects ---------------------------------------------------------------------------------

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object (stamping uid, resourceVersion and managedFields)."""
        with self._lock:
            res = self.resource_for(obj["apiVersion"], obj["kind"])
            self.revision += 1
            stored = copy.deepcopy(obj)
            meta = stored.setdefault("metadata", {})
            meta.setdefault("uid", _uid(res, meta))
            meta.setdefault("creationTimestamp", "2026-01-05T10:00:00Z")
            meta["resourceVersion"] = str(self.revision)
            meta.setdefault(
                "managedFields",
                [
                    {
                        "manager": "kubectl-client-side-apply",
                        "operation": "Update",
                        "apiVersion": res.api_version,
                        "time": "2026-01-05T10:00:00Z",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}},
                    }
                ],
            )
            key = (meta.get("namespace", "") if res.namespaced else "", meta["name"])
            self._bucket(res)[key] = stored
            return copy.deepcopy(stored)

    def add_all(self, objects: Iterable[dict[str, Any]]) -> None:
        for obj in objects:
            self.add(obj)

    def get(self, res: FakeResource, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._bucket(res).get((namespace if res.namespaced else "", name))
            return copy.deepcopy(found) if found is not None else None

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        with self._lock:
            res = self.resource_for(api_version, kind)
            self.revision += 1
            del self._bucket(res)[(namespace or "" if res.namespaced else "", name)]

    def objects(self, res: FakeResource, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of a type in list order (namespace, name), optionally in one namespace."""
        with self._lock:
            bucket = self._bucket(res)
            keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
            return [bucket[k] for k in keys]

    def all_objects(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            for bucket in self._objects.values():
                yield from (copy.deepcopy(o) for o in bucket.values())

    def count(self) -> int:
        return sum(len(bucket) for bucket in self._objects.values())

    def edit(self, predicate: Any, change: Any) -> int:
        """Apply `change(obj)` in place to every object matching `predicate(obj)`; bump versions."""
        changed = 0
        with self._lock:
            for bucket in self._objects.values():
                for obj in bucket.values():
                    if predicate(obj):
                        change(obj)
                        self.revision += 1
                        obj["metadata"]["resourceVersion"] = str(self.revision)
                        changed += 1
        return changed


def _uid(res: FakeResource, meta: dict[str, Any]) -> str:
    seed = f"{res.group}/{res.plural}/{meta.get('namespace', '')}/{meta['name']}"
    rnd = random.Random(seed)
    return "-".join(
        "".join(rnd.choice("0123456789abcdef") for _ in range(n)) for n in (8, 4, 4, 4, 12)
    )


# ------------------------------------------------------------------------------------------------
# The HTTP server


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    user_agent: str = ""


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A `kind: Status` failure body, as the API server returns it."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)


@dataclass
class _Behaviour:
    forbidden: set[str] = field(default_factory=set)
    forbidden_in: set[tuple[str, str]] = field(default_factory=set)
    vanished: set[str] = field(default_factory=set)
    failing_group_versions: set[str] = field(default_factory=set)
    expire_continue: dict[str, int] = field(default_factory=dict)
    broken_items: dict[str, int] = field(default_factory=dict)
    extra_groups: list[Any] = field(default_factory=list)
    throttled: dict[str, int] = field(default_factory=dict)
    throttle_retry_after: int = 1
    extra_resources: dict[str, list[Any]] = field(default_factory=dict)
    compacted_revision: int = 0


class KubeApiEmulator:
    """Serve a FakeCluster over HTTP on 127.0.0.1 (random port) from a background thread.

    With `tls_dir`, it serves HTTPS with a self-signed certificate for 127.0.0.1 written there
    (`ca.crt`, made with the `openssl` command), as an in-cluster client expects.
    """

    def __init__(
        self,
        cluster: FakeCluster,
        *,
        token: str = TOKEN,
        service_account: str = "system:serviceaccount:monitoring:k8s-monitor-agent",
        tls_dir: Path | None = None,
    ) -> None:
        self.cluster = cluster
        self.tls_dir = tls_dir
        self.token = token
        self.service_account = service_account
        self.requests: list[Recorded] = []
        self.behaviour = _Behaviour()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._item_cache: dict[tuple[int, str, str], bytes] = {}

    # -- behaviour switches ----------------------------------------------------------------------

    def forbid(self, *names: str, namespace: str | None = None) -> None:
        """Lists of these types (`plural` or `plural.group`) answer 403 Forbidden: everywhere,
        or only when listed in `namespace` (RBAC granted per namespace)."""
        if namespace is None:
            self.behaviour.forbidden.update(names)
        else:
            self.behaviour.forbidden_in.update((name, namespace) for name in names)

    def vanish(self, *names: str) -> None:
        """Still in discovery, but lists answer 404 (a CRD deleted mid-run)."""
        self.behaviour.vanished.update(names)

    def fail_discovery(self, group_version: str) -> None:
        """`/apis/<group_version>` answers 503 (an aggregated API that is down)."""
        self.behaviour.failing_group_versions.add(group_version)

    def expire_continue(self, name: str, *, times: int = 1) -> None:
        """The next `times` continue tokens for this type are stale (410 Expired)."""
        self.behaviour.expire_continue[name] = times

    def throttle(self, name: str, *, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` lists of this type answer 429 TooManyRequests with Retry-After (API
        priority and fairness rejecting a request)."""
        self.behaviour.throttled[name] = times
        self.behaviour.throttle_retry_after = retry_after

    def add_raw_discovery(
        self, *, groups: list[Any] | None = None, resources: dict[str, list[Any]] | None = None
    ) -> None:
        """Append raw entries to `/apis` groups or to a group-version's resources (odd shapes
        that real, misbehaving aggregated APIs and CRDs produce)."""
        self.behaviour.extra_groups.extend(groups or [])
        for group_version, entries in (resources or {}).items():
            self.behaviour.extra_resources.setdefault(group_version, []).extend(entries)

    def break_items(self, name: str, *, count: int = 1) -> None:
        """The first list page of this type carries `count` malformed items (no metadata.name)."""
        self.behaviour.broken_items[name] = count

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> KubeApiEmulator:
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if self.tls_dir is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*_self_signed(self.tls_dir))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KubeApiEmulator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the emulator first"
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls_dir is not None else 'http'}://{host}:{port}"

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the emulator first"
        return int(self._server.server_address[1])

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig pointing at this emulator with its bearer token."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "agent", "user": {"token": self.token}}],
            "contexts": [{"name": "emulated", "context": {"cluster": "emulated", "user": "agent"}}],
            "current-context": "emulated",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def record(
        self, method: str, path: str, query: dict[str, list[str]], user_agent: str = ""
    ) -> None:
        with self._lock:
            self.requests.append(Recorded(method, path, query, user_agent))

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # -- responses -------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        major, minor = self.cluster.git_version.lstrip("v").split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "gitVersion": self.cluster.git_version,
            "gitCommit": "6813625b7cd706db5bc7388921be03071e1a492d",
            "gitTreeState": "clean",
            "buildDate": "2024-03-15T00:06:16Z",
            "goVersion": "go1.21.8",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        served = [r for r in self.cluster.resources if (r.group, r.version) == (group, version)]
        group_version = f"{group}/{version}" if group else version
        extra = self.behaviour.extra_resources.get(group_version, [])
        if not served and not extra:
            return None
        body: dict[str, Any] = {
            "kind": "APIResourceList",
            "groupVersion": group_version,
            "resources": [entry for res in served for entry in res.discovery()] + list(extra),
        }
        if group:
            body["apiVersion"] = "v1"
        return body

    def list_objects(
        self, res: FakeResource, *, namespace: str | None, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any] | bytes]:
        behaviour = self.behaviour
        if res.name in behaviour.vanished or res.plural in behaviour.vanished:
            return 404, status_body(
                404,
                "NotFound",
                "the server could not find the requested resource",
                {"group": res.group, "kind": res.plural},
            )
        if {res.name, res.plural} & behaviour.forbidden or {
            (res.name, namespace),
            (res.plural, namespace),
        } & behaviour.forbidden_in:
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            group = f'in API group "{res.group}"'
            message = (
                f'{res.name} is forbidden: User "{self.service_account}" cannot list '
                f'resource "{res.plural}" {group} {scope}'
            )
            return 403, status_body(
                403, "Forbidden", message, {"group": res.group, "kind": res.plural}
            )
        if behaviour.throttled.get(res.name, 0) > 0:
            behaviour.throttled[res.name] -= 1
            wait = behaviour.throttle_retry_after
            return 429, status_body(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                {"retryAfterSeconds": wait},
            )
        limit = int((query.get("limit") or ["0"])[0] or 0)
        token = (query.get("continue") or [""])[0]
        start = 0
        revision = self.cluster.revision
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start, revision = int(state["start"]), int(state["rv"])
            except (ValueError, KeyError):
                return 400, status_body(400, "BadRequest", "continue key is not valid")
            remaining = behaviour.expire_continue.get(res.name, 0)
            if remaining:
                behaviour.expire_continue[res.name] = remaining - 1
                self.cluster.revision += 1  # compaction: every older token is now stale
                behaviour.compacted_revision = self.cluster.revision
            if revision < behaviour.compacted_revision:
                return 410, status_body(410, "Expired", EXPIRED_MESSAGE)
        objects = self.cluster.objects(res, namespace)
        page = objects[start : start + limit] if limit else objects[start:]
        items = [self._item_json(obj, res) for obj in page]
        broken = behaviour.broken_items.pop(res.name, 0) if start == 0 else 0
        items.extend(b'{"metadata":{"namespace":"broken"},"spec":"?"}' for _ in range(broken))
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        end = start + len(page)
        if limit and end < len(objects):
            metadata["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": revision, "start": end}).encode()
            ).decode()
            metadata["remainingItemCount"] = len(objects) - end
        head = json.dumps(
            {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": metadata}
        ).encode()
        return 200, head[:-1] + b',"items":[' + b",".join(items) + b"]}"

    def _item_json(self, obj: dict[str, Any], res: FakeResource) -> bytes:
        """An object as a list item at the served version (cached per object version)."""
        key = (id(obj), obj["metadata"].get("resourceVersion", ""), res.api_version)
        cached = self._item_cache.get(key)
        if cached is None:
            item = dict(obj)
            item["apiVersion"] = res.api_version  # served at the requested version
            if not res.custom:  # typed lists carry apiVersion/kind on the list only
                item.pop("apiVersion", None)
                item.pop("kind", None)
            cached = self._item_cache[key] = json.dumps(item).encode()
        return cached


def _self_signed(directory: Path) -> tuple[str, str]:
    """(certificate, key) paths of a fresh self-signed certificate for 127.0.0.1."""
    cert, key = directory / "ca.crt", directory / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kube-apiserver",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(cert), str(key)


def _parse_resource_path(parts: list[str]) -> tuple[str, str, str | None, str, str | None] | None:
    """(group, version, namespace, plural, name) of /api/v1/... or /apis/g/v/... paths."""
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if len(rest) == 1:
        return group, version, namespace, rest[0], None
    if len(rest) == 2 and namespace is None and rest[0] == "namespaces":
        return group, version, None, "namespaces", rest[1]
    if len(rest) == 2:
        return group, version, namespace, rest[0], rest[1]
    return None


class _Handler(BaseHTTPRequestHandler):
    emulator: KubeApiEmulator
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle's algorithm and
        # delayed ACKs would stall every keep-alive response by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, code: int, body: dict[str, Any] | bytes) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        if code == 429:
            self.send_header("Retry-After", str(self.emulator.behaviour.throttle_retry_after))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", "00000000-0000-0000-0000-000000000000")
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and token == self.emulator.token:
            return True
        self._reply(401, status_body(401, "Unauthorized", "Unauthorized"))
        return False

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        parsed = json.loads(raw or b"{}")
        return parsed if isinstance(parsed, dict) else {}

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        self.emulator.record(method, url.path, query, self.headers.get("User-Agent", ""))
        if not self._authorised():
            return
        try:
            code, body = self._route(method, url.path, query)
        except Exception as exc:  # an emulator bug must surface as a 500, not a hang
            code, body = 500, status_body(500, "InternalError", f"{type(exc).__name__}: {exc}")
        self._reply(code, body)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any] | bytes]:
        emulator, cluster = self.emulator, self.emulator.cluster
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        not_found = (
            404,
            status_body(404, "NotFound", "the server could not find the requested resource"),
        )
        if method == "GET" and parts == ["version"]:
            return 200, emulator.version()
        if method == "GET" and parts == ["api"]:
            return 200, {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "172.18.0.2:6443"}
                ],
            }
        if method == "GET" and parts == ["apis"]:
            return 200, {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [g.discovery() for g in cluster.groups]
                + list(emulator.behaviour.extra_groups),
            }
        is_core_gv = parts[:1] == ["api"] and len(parts) == 2
        if method == "GET" and (is_core_gv or (parts[:1] == ["apis"] and len(parts) == 3)):
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            if f"{group}/{version}" in emulator.behaviour.failing_group_versions:
                return 503, status_body(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                )
            listing = emulator.resource_list(group, version)
            return (200, listing) if listing is not None else not_found
        parsed = _parse_resource_path(parts)
        if parsed is None:
            return not_found
        group, version, namespace, plural, name = parsed
        res = cluster.resource(group, version, plural)
        if res is None:
            return not_found
        if name is None and method == "GET":
            if "list" not in res.verbs:
                return 405, status_body(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            return emulator.list_objects(res, namespace=namespace, query=query)
        if name is None and method == "POST":
            body = self._body()
            meta = body.get("metadata") or {}
            if cluster.get(res, namespace or "", str(meta.get("name"))) is not None:
                return 409, status_body(
                    409,
                    "AlreadyExists",
                    f'{res.plural} "{meta.get("name")}" already exists',
                    {"name": meta.get("name"), "kind": res.plural},
                )
            body.setdefault("metadata", {})["namespace"] = namespace
            return 201, cluster.add({**body, "apiVersion": res.api_version, "kind": res.kind})
        if name is not None and method == "GET":
            found = cluster.get(res, namespace or "", name)
            if found is None:
                return 404, status_body(
                    404,
                    "NotFound",
                    f'{res.plural} "{name}" not found',
                    {"name": name, "kind": res.plural},
                )
            return 200, found
        if name is not None and method == "PUT":
            if cluster.get(res, namespace or "", name) is None:
                return 404, status_body(404, "NotFound", f'{res.plural} "{name}" not found')
            body = self._body()
            return 200, cluster.add({**body, "apiVersion": res.api_version, "kind": res.kind})
        return 405, status_body(405, "MethodNotAllowed", "method not allowed")
