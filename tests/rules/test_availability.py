"""Autoscaling and availability rules (KM-613..KM-618): cases beyond the fixtures."""

from __future__ import annotations

from typing import Any

from rules import Engine


def _deployment(name: str, replicas: int, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "r.example/a:1", **container}]},
            },
        },
    }


def _hpa(target: str, api_version: str = "autoscaling/v2", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target, "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "maxReplicas": 5,
            **spec,
        },
    }


def _pdb(name: str, app: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": app}}, **spec},
    }


def _hits(objects: list[dict[str, Any]], rule_id: str) -> list[str]:
    outcome = Engine.from_config(None).scan(objects)
    assert not outcome.errors, outcome.errors
    return sorted(r.resource.name for r in outcome.results if r.rule_id == rule_id)


def test_v2_hpa_without_metrics_scales_on_cpu_and_needs_a_cpu_request() -> None:
    bare = _deployment("bare", 2)
    sized = _deployment("sized", 2, resources={"limits": {"cpu": "1"}})  # limit -> request
    objects = [bare, sized, _hpa("bare", minReplicas=2), _hpa("sized", minReplicas=2)]
    assert _hits(objects, "KM-614") == ["bare"]


def test_average_value_targets_need_no_request() -> None:
    metrics = [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "1"}},
        }
    ]
    objects = [_deployment("web", 2), _hpa("web", minReplicas=2, metrics=metrics)]
    assert _hits(objects, "KM-614") == []


def test_pdb_summing_the_replicas_of_every_selected_workload() -> None:
    one = _deployment("one", 2)
    two = _deployment("two", 2)
    for obj in (one, two):
        obj["spec"]["template"]["metadata"]["labels"]["tier"] = "web"
    tier = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "tier", "namespace": "shop"},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"tier": "web"}}},
    }
    assert _hits([one, two, tier], "KM-616") == []  # 4 replicas, 3 required: one may go
    tier["spec"]["minAvailable"] = 4
    assert _hits([one, two, tier], "KM-616") == ["tier"]


def test_a_zero_budget_on_nothing_is_reported_once_per_concept() -> None:
    blocking = _pdb("ghost", "gone", maxUnavailable=0)
    assert _hits([blocking], "KM-616") == ["ghost"]
    assert _hits([blocking], "KM-617") == ["ghost"]


def test_hpa_bounds_with_default_minimum() -> None:
    assert _hits([_hpa("web", maxReplicas=1)], "KM-613") == ["web"]
    assert _hits([_hpa("web", maxReplicas=2)], "KM-613") == []
    assert _hits([_hpa("web", minReplicas=0, maxReplicas=1)], "KM-613") == []


def test_required_anti_affinity_counts_as_spreading() -> None:
    web = _deployment("web", 3)
    web["spec"]["template"]["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    assert _hits([web], "KM-618") == []
    assert _hits([_deployment("web", 3)], "KM-618") == ["web"]
