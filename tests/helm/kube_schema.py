"""Structural validation of rendered manifests against the Kubernetes API's own types.

There is no API server here, so the official client's generated models stand in for the
OpenAPI schema: every field must exist in the model of its kind (a misspelt or misplaced field
is silently dropped by a real API server, which is exactly how a security setting gets lost),
and every scalar must have the declared type.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client

# (apiVersion, kind) -> model class name, for the kinds our charts render.
MODELS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Pod"): "V1Pod",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
}
# Custom resources the client has no model for.
CUSTOM = {("monitoring.coreos.com/v1", "ServiceMonitor")}

_LIST = re.compile(r"^(?:List|list)\[(.+)\]$")
_DICT = re.compile(r"^(?:Dict|dict)\[(?:str|str), ?(.+)\]$|^dict\(str, ?(.+)\)$")
_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
    "object": (object,),
}


def validate(manifest: dict[str, Any]) -> list[str]:
    """Problems found in one manifest (empty when it matches its kind's model)."""
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    if key in CUSTOM:
        return []
    model = MODELS.get(key)  # type: ignore[arg-type]
    if model is None:
        return [f"no model known for {key}"]
    return list(_check(manifest, model, manifest.get("kind", "")))


def _check(value: Any, type_name: str, where: str) -> list[str]:
    if value is None:
        return []
    list_match = _LIST.match(type_name)
    if list_match:
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value)
                for p in _check(item, list_match.group(1), f"{where}[{i}]")]
    dict_match = _DICT.match(type_name)
    if dict_match:
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping, got {type(value).__name__}"]
        inner = dict_match.group(1) or dict_match.group(2)
        return [p for k, item in value.items() for p in _check(item, inner, f"{where}.{k}")]
    if type_name in _SCALARS:
        expected = _SCALARS[type_name]
        wrong_bool = isinstance(value, bool) and type_name in {"int", "float"}
        if not isinstance(value, expected) or wrong_bool:
            return [f"{where}: expected {type_name}, got {type(value).__name__} {value!r}"]
        return []
    model = getattr(client, type_name, None)
    if model is None:
        return [f"{where}: unknown model {type_name}"]
    if not isinstance(value, dict):
        return [f"{where}: expected an object ({type_name}), got {type(value).__name__}"]
    fields = {json_name: model.openapi_types[attr]
              for attr, json_name in model.attribute_map.items()}
    problems = [f"{where}.{k}: no such field in {type_name}" for k in value if k not in fields]
    for k, item in value.items():
        if k in fields:
            problems.extend(_check(item, fields[k], f"{where}.{k}"))
    return problems
