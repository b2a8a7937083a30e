"""Identity of a Kubernetes object across the system: ResourceRef and cluster-scoped kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Kinds the API server stores without a namespace: a stray `metadata.namespace` in a manifest
# of one of these is ignored by the server, so it is ignored everywhere here too (refs, the
# store, every rule). Built-in kinds plus the cluster-wide kinds of common add-ons.
CLUSTER_SCOPED_KINDS: frozenset[str] = frozenset(
    {
        "APIService",
        "AdminNetworkPolicy",
        "BaselineAdminNetworkPolicy",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "CiliumClusterwideNetworkPolicy",
        "ClusterIssuer",
        "ClusterPolicy",
        "ClusterPolicyReport",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "ComponentStatus",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "GatewayClass",
        "GlobalNetworkPolicy",
        "GlobalNetworkSet",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "ResourceSlice",
        "RuntimeClass",
        "SecurityContextConstraints",
        "StorageClass",
        "StorageVersionMigration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)


def object_namespace(kind: Any, namespace: Any) -> str | None:
    """The namespace an object really lives in: None for cluster-scoped kinds (whatever the
    manifest says) and for an empty or missing `metadata.namespace`."""
    if not namespace or kind in CLUSTER_SCOPED_KINDS:
        return None
    return str(namespace)


def resource_key(api_version: str, kind: str, namespace: str | None, name: str) -> str:
    """An object's stable text key, unique within a cluster: `apiVersion|kind|namespace|name`
    (`ResourceRef.key`; the engine's views build it without a ref)."""
    return f"{api_version}|{kind}|{namespace or ''}|{name}"


@dataclass(frozen=True, slots=True, order=True)
class ResourceRef:
    """Names one object: apiVersion, kind, namespace (None when cluster-scoped), name."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    # Stable text key, unique within a cluster: `apiVersion|kind|namespace|name`. Built once
    # (a scan reads it several times per finding: dedup, configuration, order, fingerprint);
    # not an argument, and not compared, hashed or shown (the four fields are).
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        key = resource_key(self.api_version, self.kind, self.namespace, self.name)
        object.__setattr__(self, "key", key)

    @classmethod
    def from_key(cls, key: str) -> ResourceRef:
        api_version, kind, namespace, name = key.split("|", 3)
        return cls(api_version, kind, namespace or None, name)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ResourceRef:
        """The reference of a raw manifest (`KeyError`/`TypeError` when it has none)."""
        meta = obj.get("metadata") or {}
        kind = str(obj["kind"])
        return cls(
            api_version=str(obj["apiVersion"]),
            kind=kind,
            namespace=object_namespace(kind, meta.get("namespace")),
            name=str(meta["name"]),
        )

    def to_dict(self) -> dict[str, str | None]:
        """The wire/JSON form used in findings and deltas."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceRef:
        kind = str(data["kind"])
        return cls(
            api_version=str(data["apiVersion"]),
            kind=kind,
            namespace=object_namespace(kind, data.get("namespace")),
            name=str(data["name"]),
        )

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"
