"""Build small, realistic manifests and snapshot envelopes for tests."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from contracts.hashing import content_hash, state_digest, strip_server_noise
from contracts.resources import ResourceRef
from contracts.wire import SNAPSHOT_SCHEMA_ID


def config_map(
    name: str, *, namespace: str = "default", data: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-cm-{namespace}-{name}"},
        "data": data if data is not None else {"key": name},
    }


def deployment(
    name: str, *, namespace: str = "default", image: str = "nginx:1.27", replicas: int = 2
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-dep-{namespace}-{name}",
            "labels": {"app": name},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def cluster_objects(count: int) -> list[dict[str, Any]]:
    """`count` distinct objects: deployments and config maps across a few namespaces."""
    objects = []
    for i in range(count):
        namespace = f"team-{i % 7}"
        if i % 2:
            objects.append(deployment(f"app-{i}", namespace=namespace, image=f"registry/app:{i}"))
        else:
            objects.append(config_map(f"cfg-{i}", namespace=namespace))
    return objects


def digest_of(objects: Iterable[dict[str, Any]]) -> str:
    return state_digest(
        (ResourceRef.of(o).key, content_hash(strip_server_noise(o))) for o in objects
    )


def full_envelope(objects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema": SNAPSHOT_SCHEMA_ID,
        "type": "full",
        "digest": digest_of(objects),
        "agent_version": "test",
        "objects": [copy.deepcopy(o) for o in objects],
    }


def delta_envelope(
    *,
    base: Sequence[dict[str, Any]],
    changed: Sequence[dict[str, Any]],
    removed: Sequence[dict[str, Any]] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A delta from `base` plus the resulting full object list."""
    state = {ResourceRef.of(o).key: o for o in base}
    for obj in changed:
        state[ResourceRef.of(obj).key] = obj
    for obj in removed:
        state.pop(ResourceRef.of(obj).key, None)
    result = list(state.values())
    envelope = {
        "schema": SNAPSHOT_SCHEMA_ID,
        "type": "delta",
        "base_digest": digest_of(base),
        "digest": digest_of(result),
        "agent_version": "test",
        "objects": [copy.deepcopy(o) for o in changed],
        "removed": [ResourceRef.of(o).to_dict() for o in removed],
    }
    return envelope, result
