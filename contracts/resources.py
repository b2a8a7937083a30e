"""Identity of a Kubernetes object across the system: ResourceRef and raw manifest types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict


class ObjectMeta(TypedDict, total=False):
    """The parts of `metadata` we rely on; everything else is carried through."""

    name: str
    namespace: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[dict[str, Any]]
    resourceVersion: str
    managedFields: list[dict[str, Any]]


class KubeObject(TypedDict, total=False):
    """A raw Kubernetes object body as the API server returns it."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: dict[str, Any]
    data: dict[str, Any]


@dataclass(frozen=True, slots=True, order=True)
class ResourceRef:
    """Names one object: apiVersion, kind, namespace (None when cluster-scoped), name."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @property
    def key(self) -> str:
        """Stable text key, unique within a cluster: `apiVersion|kind|namespace|name`."""
        return f"{self.api_version}|{self.kind}|{self.namespace or ''}|{self.name}"

    @classmethod
    def from_key(cls, key: str) -> ResourceRef:
        api_version, kind, namespace, name = key.split("|", 3)
        return cls(api_version, kind, namespace or None, name)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ResourceRef:
        """The reference of a raw manifest (`KeyError`/`TypeError` when it has none)."""
        meta = obj.get("metadata") or {}
        return cls(
            api_version=str(obj["apiVersion"]),
            kind=str(obj["kind"]),
            namespace=meta.get("namespace") or None,
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
        return cls(
            api_version=str(data["apiVersion"]),
            kind=str(data["kind"]),
            namespace=data.get("namespace") or None,
            name=str(data["name"]),
        )

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"
