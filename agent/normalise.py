"""Agent-side normalisation: drop volatile fields so an unchanged object keeps its content hash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.hashing import strip_server_noise

# Metadata the API server bumps on every write or that only reflects bookkeeping.
VOLATILE_METADATA = frozenset({"resourceVersion", "generation", "managedFields", "selfLink"})

# Annotations rewritten by controllers on a timer (leader election, HPA v1 status mirrors).
VOLATILE_ANNOTATIONS = frozenset(
    {
        "control-plane.alpha.kubernetes.io/leader",
        "autoscaling.alpha.kubernetes.io/current-metrics",
        "autoscaling.alpha.kubernetes.io/conditions",
        "endpoints.kubernetes.io/last-change-trigger-time",
    }
)

_CONTAINER_STATUS_FIELDS = ("name", "image", "imageID")


def _pod_status(status: dict[str, Any]) -> dict[str, Any]:
    """Pod status reduced to what is stable and security-relevant: the images actually running."""
    kept: dict[str, Any] = {}
    for key in ("phase", "qosClass"):
        if key in status:
            kept[key] = status[key]
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        entries = status.get(key)
        if isinstance(entries, list):
            kept[key] = [
                {f: entry[f] for f in _CONTAINER_STATUS_FIELDS if f in entry}
                for entry in entries
                if isinstance(entry, dict)
            ]
    return kept


def _node_status(status: dict[str, Any]) -> dict[str, Any]:
    """Node status without heartbeats, image lists and attached volumes."""
    return {
        key: status[key]
        for key in ("nodeInfo", "addresses", "capacity", "allocatable")
        if key in status
    }


def _keys(*names: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def pick(status: dict[str, Any]) -> dict[str, Any]:
        return {key: status[key] for key in names if key in status}

    return pick


# Kinds whose status carries stable, security-relevant facts; every other kind's status is
# dropped (replica counts, conditions and observed generations churn without a spec change).
STATUS_KEEPERS = {
    "Pod": _pod_status,
    "Node": _node_status,
    "Namespace": _keys("phase"),
    "Service": _keys("loadBalancer"),
    "Ingress": _keys("loadBalancer"),
    "Gateway": _keys("addresses"),
    "PersistentVolume": _keys("phase"),
    "PersistentVolumeClaim": _keys("phase", "accessModes", "capacity"),
    "CustomResourceDefinition": _keys("acceptedNames", "storedVersions"),
    # The issued certificate (a rule flags system:masters certificates); conditions churn.
    "CertificateSigningRequest": _keys("certificate"),
}


def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """A new manifest without server noise and volatile fields; the input is not modified."""
    clean = strip_server_noise(obj)
    meta = clean.get("metadata")
    if isinstance(meta, dict):
        new_meta = {k: v for k, v in meta.items() if k not in VOLATILE_METADATA}
        annotations = new_meta.get("annotations")
        if isinstance(annotations, dict) and not VOLATILE_ANNOTATIONS.isdisjoint(annotations):
            rest = {k: v for k, v in annotations.items() if k not in VOLATILE_ANNOTATIONS}
            if rest:
                new_meta["annotations"] = rest
            else:
                new_meta.pop("annotations")
        clean = {**clean, "metadata": new_meta}
    if "status" in clean:
        status = clean["status"]
        keeper = STATUS_KEEPERS.get(str(clean.get("kind", "")))
        kept = keeper(status) if keeper is not None and isinstance(status, dict) else None
        clean = {k: v for k, v in clean.items() if k != "status"}
        if kept:
            clean["status"] = kept
    return clean
