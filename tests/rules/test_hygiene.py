"""Hygiene helpers (rules.catalogue.hygiene): image references, API tables, defaults."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.images import parse_image
from rules import ClusterContext, Engine
from rules.catalogue.hygiene import (
    DEPRECATED_APIS,
    REMOVED_APIS,
    ImageRef,
    namespace_defaults,
)
from tests.rules.helpers import deployment, pod

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", ImageRef("nginx", None, None)),
        ("nginx:1.27", ImageRef("nginx", "1.27", None)),
        ("registry.example:5000/shop/web", ImageRef("registry.example:5000/shop/web", None, None)),
        (
            "registry.example:5000/shop/web:latest",
            ImageRef("registry.example:5000/shop/web", "latest", None),
        ),
        ("localhost:5000/a/b:v1", ImageRef("localhost:5000/a/b", "v1", None)),
        (f"repo@{DIGEST}", ImageRef("repo", None, DIGEST)),
        (f"host:443/repo:2.0@{DIGEST}", ImageRef("host:443/repo", "2.0", DIGEST)),
        ("  ghcr.io/org/app:v2  ", ImageRef("ghcr.io/org/app", "v2", None)),
    ],
)
def test_parse_image(image: str, expected: ImageRef) -> None:
    assert parse_image(image) == expected


def test_api_tables_are_consistent() -> None:
    assert not set(REMOVED_APIS) & set(DEPRECATED_APIS)
    for (api_version, _kind), change in {**REMOVED_APIS, **DEPRECATED_APIS}.items():
        assert change.replacement != api_version
        assert change.replacement or change.note or api_version.startswith("settings.k8s.io")
        major, minor = change.release.split(".")
        assert major == "1" and 16 <= int(minor) <= 35
    assert REMOVED_APIS[("extensions/v1beta1", "Ingress")].replacement == "networking.k8s.io/v1"
    assert REMOVED_APIS[("policy/v1beta1", "PodSecurityPolicy")].replacement is None


def test_limitrange_defaulting_chain() -> None:
    def limit_range(ns: str, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "lr", "namespace": ns},
            "spec": {"limits": [item]},
        }

    cluster = ClusterContext(
        [
            limit_range("a", {"type": "Container", "max": {"memory": "1Gi"}}),
            limit_range("b", {"type": "Container", "min": {"cpu": "10m"}}),
            limit_range("c", {"type": "Pod", "default": {"cpu": "1"}}),
        ]
    )
    defaults = namespace_defaults(cluster)
    # max -> default limit -> default request; min -> default request only.
    assert defaults["a"].limits == {"memory"} and defaults["a"].requests == {"memory"}
    assert defaults["b"].limits == frozenset() and defaults["b"].requests == {"cpu"}
    assert "c" not in defaults or not defaults["c"].limits


def _ids(manifests: list[dict[str, Any]]) -> list[str]:
    outcome = Engine.from_config(None).scan(manifests)
    return sorted(r.rule_id for r in outcome.results if r.rule_id.startswith("KM-6"))


def test_hygiene_clean_workload() -> None:
    spec = {
        "priorityClassName": "standard",
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "web"}},
            }
        ],
        "containers": [
            {
                "name": "app",
                "image": f"registry.example/app:1.0@{DIGEST}",
                "ports": [{"containerPort": 8080}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "128Mi"},
                },
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
            }
        ],
    }
    web = deployment("web", namespace="shop", spec=spec)
    web["spec"]["replicas"] = 3
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }
    assert _ids([web, pdb]) == []


def test_controller_pods_are_reported_once_on_the_controller() -> None:
    web = deployment("web", namespace="shop")
    web["metadata"]["uid"] = "u-web"
    replica = pod(
        "web-1",
        namespace="shop",
        ownerReferences=[
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "uid": "u-web",
                "controller": True,
            }
        ],
    )
    outcome = Engine.from_config(None).scan([web, replica])
    kinds = {r.resource.kind for r in outcome.results if r.rule_id in {"KM-601", "KM-602"}}
    assert kinds == {"Deployment"}


def test_cluster_rules_over_workloads_find_what_dedup_would_keep() -> None:
    """Cluster rules reporting per workload walk `workloads()`: with dedup on they skip the
    controlled Pods and ReplicaSets, and what they report equals what dedup keeps of a walk
    over every object."""
    web = deployment("web", namespace="shop", uid="u-web")
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": "u-rs",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": "u-web",
                    "controller": True,
                }
            ],
        },
        "spec": {"template": web["spec"]["template"]},
    }
    owned = pod(
        "web-1-a",
        namespace="shop",
        ownerReferences=[
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-1",
                "uid": "u-rs",
                "controller": True,
            }
        ],
    )
    lonely = pod("lonely", namespace="shop")
    objects = [web, rs, owned, lonely]
    wanted = {"KM-207", "KM-601", "KM-602", "KM-603", "KM-612"}
    engine = Engine.from_config(None)
    walk_everything = Engine.from_config({"dedup_controllers": False})

    def kept(raw: list[Any]) -> set[tuple[str, str, str]]:
        after = engine.apply_config(raw, objects=ClusterContext(objects))
        return {(r.rule_id, r.resource.kind, r.resource.name) for r in after if r.rule_id in wanted}

    raw_deduped = engine.evaluate_cluster(ClusterContext(objects))
    assert {r.resource.name for r in raw_deduped if r.rule_id in wanted} == {"web", "lonely"}
    raw_all = walk_everything.evaluate_cluster(ClusterContext(objects, dedup_controllers=False))
    assert {r.resource.name for r in raw_all if r.rule_id in wanted} == {
        "web",
        "web-1",
        "web-1-a",
        "lonely",
    }
    assert kept(raw_deduped) == kept(raw_all)
    assert {rule for rule, _, _ in kept(raw_all)} == wanted


def test_with_dedup_off_cluster_rules_report_every_object_whatever_the_context() -> None:
    """The workers build their ClusterContext with the default (dedup on); an engine
    configured without dedup still gets findings on the controlled objects."""
    web = deployment("web", namespace="shop", uid="u-web")
    owned = pod(
        "web-a",
        namespace="shop",
        ownerReferences=[
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "uid": "u-web",
                "controller": True,
            }
        ],
    )
    no_dedup = Engine.from_config({"dedup_controllers": False})
    for context in (ClusterContext([web, owned]), [web, owned]):
        raw = no_dedup.evaluate_cluster(context)
        kept = no_dedup.apply_config(raw, objects=ClusterContext([web, owned]))
        assert {r.resource.name for r in kept if r.rule_id == "KM-601"} == {"web", "web-a"}
    deduped = Engine.from_config(None).evaluate_cluster(
        ClusterContext([web, owned], dedup_controllers=False)
    )
    assert {r.resource.name for r in deduped if r.rule_id == "KM-601"} == {"web"}


def test_resource_gaps_answer_as_each_containers_own_walk() -> None:
    """KM-601/602/603 read `resource_gaps` (both fields in one pass): the same containers
    and resources as `_missing_in` per field, with pod-level resources, LimitRange defaults
    and ephemeral containers."""
    from rules.catalogue.hygiene import _missing_in, missing_resources  # noqa: PLC0415

    containers = [
        {"name": "none", "image": "a:1"},
        {"name": "limits", "image": "a:1", "resources": {"limits": {"cpu": "1"}}},
        {"name": "requests", "image": "a:1", "resources": {"requests": {"memory": "1Gi"}}},
        {"name": "odd", "image": "a:1", "resources": {"requests": [], "limits": "x"}},
        {"name": "bad", "image": "a:1", "resources": "x"},
    ]
    spec = {"containers": containers, "ephemeralContainers": [{"name": "e", "image": "e:1"}]}
    pod_level = {**spec, "resources": {"limits": {"memory": "2Gi"}, "requests": {"cpu": "1"}}}
    limit_range = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "l", "namespace": "ranged"},
        "spec": {"limits": [{"type": "Container", "default": {"memory": "1Gi"}}]},
    }
    cluster = ClusterContext(
        [
            deployment("plain", spec=spec),
            deployment("pod-level", spec=pod_level),
            deployment("ranged", namespace="ranged", spec=spec),
            pod("alone", spec=pod_level),
            limit_range,
        ],
        skip_invalid=False,  # the malformed resources too: the helpers' tolerance
    )
    defaults = namespace_defaults(cluster)
    for field, wanted in (
        ("requests", ("cpu", "memory")),
        ("limits", ("memory",)),
        ("limits", ("cpu",)),
        ("limits", ("memory", "cpu")),
    ):
        expected = []
        for obj in cluster.workloads():
            found = defaults.get(obj.namespace)
            inherited = (
                frozenset() if found is None else getattr(found, field)  # requests or limits
            )
            expected += [(obj, c, m) for c, m in _missing_in(obj, field, wanted, inherited)]
        assert list(missing_resources(cluster, field, wanted)) == expected
        assert expected  # the case has gaps to find


def test_the_api_version_rules_run_on_every_object_their_tables_name() -> None:
    """KM-608 and KM-609 declare their tables' kinds and apiVersions as where they apply (the
    engine leaves them out elsewhere): every (apiVersion, kind) either table holds is still
    reported, by KM-608 when the newest release no longer serves it, else by KM-609."""
    engine = Engine.from_config(None)
    for api_version, kind in (*REMOVED_APIS, *DEPRECATED_APIS):
        manifest = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}
        found = {r.rule_id for r in engine.evaluate_object(manifest)} & {"KM-608", "KM-609"}
        assert len(found) == 1, (api_version, kind, found)
    served = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    assert not {"KM-608", "KM-609"} & {r.rule_id for r in engine.evaluate_object(served)}
