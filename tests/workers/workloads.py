"""Manifests with deliberate, well-known problems for pipeline tests."""

from __future__ import annotations

import copy
from typing import Any

from tests.support.manifests import config_map, deployment


def privileged(name: str, *, namespace: str = "default") -> dict[str, Any]:
    obj = deployment(name, namespace=namespace)
    obj["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    return obj


def hardened(name: str, *, namespace: str = "default") -> dict[str, Any]:
    obj = deployment(name, namespace=namespace, image="registry.example/app:1.2.3")
    pod = obj["spec"]["template"]["spec"]
    pod["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    pod["automountServiceAccountToken"] = False
    pod["containers"][0]["securityContext"] = {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return obj


def fixed(obj: dict[str, Any]) -> dict[str, Any]:
    """The same workload with privileged switched off."""
    out = copy.deepcopy(obj)
    for container in out["spec"]["template"]["spec"]["containers"]:
        container.setdefault("securityContext", {})["privileged"] = False
    return out


def cluster_state(prefix: str, count: int) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for i in range(count):
        ns = f"{prefix}-ns{i % 3}"
        objects.append(
            privileged(f"{prefix}-priv-{i}", namespace=ns)
            if i % 3 == 0
            else config_map(f"{prefix}-cfg-{i}", namespace=ns)
            if i % 3 == 1
            else hardened(f"{prefix}-ok-{i}", namespace=ns)
        )
    return objects
