"""Small manifest builders for the rules tests."""

from __future__ import annotations

from typing import Any


def pod(
    name: str = "p", *, namespace: str = "default", spec: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": spec if spec is not None else {"containers": [{"name": "app", "image": "a:1"}]},
    }


def deployment(
    name: str = "d", *, namespace: str = "default", spec: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    pod_spec = spec if spec is not None else {"containers": [{"name": "app", "image": "a:1"}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }
