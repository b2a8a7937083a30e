"""Collection against the emulated API server: discovery, paging, failures, Secrets never read."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from agent.collect import CollectionFailed, CollectOptions, collect
from agent.discovery import discover
from agent.kube import KubeClient
from contracts.resources import ResourceRef
from tests.fakes.kube_api import FakeCluster, KubeApiEmulator
from tests.fakes.kube_objects import config_map, secret


def _keys_of(cluster: FakeCluster, *, skip_kinds: set[str]) -> set[str]:
    keys = set()
    for obj in cluster.all_objects():
        if obj["kind"] not in skip_kinds:
            keys.add(ResourceRef.of(obj).key)
    return keys


def test_collects_every_listable_type_at_its_preferred_version(
    kube: KubeClient, emulator: KubeApiEmulator, cluster: FakeCluster, options: CollectOptions
) -> None:
    collection = collect(kube, options)

    assert {r.user_agent for r in emulator.requests} == {"k8s-monitor-agent/0.1.0"}
    expected = _keys_of(cluster, skip_kinds={"Secret", "Event", "Lease"})
    assert set(collection.entries) == expected
    assert collection.errors == {}
    assert collection.object_counts["Pod"] == 2
    assert collection.object_counts["Certificate"] == 1
    assert collection.node_count == 2
    assert collection.namespace_count == 3
    assert collection.kubernetes_version == "v1.29.3-eks-adc7111"
    paths = emulator.paths()
    # The CRD group's non-preferred version is neither listed nor read.
    assert not [p for p in paths if "/v1alpha2" in p]
    # The legacy group serving the same Ingress objects is discovered but never listed.
    assert "/apis/extensions/v1beta1/ingresses" not in paths
    assert "/apis/networking.k8s.io/v1/ingresses" in paths
    # Subresources and create-only types are never requested.
    assert not [p for p in paths if p.endswith(("/status", "/log", "/scale", "/bindings"))]
    assert "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" not in paths


def test_typed_list_items_get_their_api_version_and_kind(
    kube: KubeClient, options: CollectOptions
) -> None:
    collection = collect(kube, options)
    body = json.loads(collection.entries["apps/v1|Deployment|shop|web"].body)
    assert body["apiVersion"] == "apps/v1"
    assert body["kind"] == "Deployment"
    cert = json.loads(collection.entries["cert-manager.io/v1|Certificate|shop|web"].body)
    assert cert["spec"]["secretName"] == "web-tls"


def test_secrets_are_never_requested_even_when_configured(
    kube: KubeClient, emulator: KubeApiEmulator, cluster: FakeCluster
) -> None:
    cluster.add_all(secret(f"s{i}", namespace="shop") for i in range(5))
    for include in (frozenset(), frozenset({"secrets", "secret", "configmaps"})):
        options = CollectOptions(include_types=include, exclude_types=frozenset(), page_size=3)
        collection = collect(kube, options)
        assert not [k for k in collection.entries if "|Secret|" in k]
    assert emulator.requests, "the emulator saw the collection"
    assert not [r.path for r in emulator.requests if "secrets" in r.path.split("/")]
    # With an explicit include list, only what was asked for (minus Secrets) is listed.
    assert "/api/v1/configmaps" in emulator.paths()


def test_events_and_leases_are_excluded_by_default(
    kube: KubeClient, emulator: KubeApiEmulator, options: CollectOptions
) -> None:
    collect(kube, options)
    paths = emulator.paths()
    assert "/api/v1/events" not in paths
    assert "/apis/events.k8s.io/v1/events" not in paths
    assert "/apis/coordination.k8s.io/v1/leases" not in paths


def test_pages_through_lists_with_limit_and_continue(
    kube: KubeClient, emulator: KubeApiEmulator, cluster: FakeCluster
) -> None:
    cluster.add_all(config_map(f"cm-{i:02d}", namespace="shop") for i in range(25))
    collection = collect(kube, CollectOptions(include_types=frozenset({"configmaps"}), page_size=4))
    assert collection.object_counts["ConfigMap"] == 27
    pages = [r for r in emulator.requests if r.path == "/api/v1/configmaps"]
    assert len(pages) == 7  # ceil(27 / 4)
    assert all(r.query["limit"] == ["4"] for r in pages)
    assert "continue" not in pages[0].query
    assert all("continue" in r.query for r in pages[1:])


def test_a_stale_continue_token_restarts_that_list(
    kube: KubeClient, emulator: KubeApiEmulator, cluster: FakeCluster
) -> None:
    cluster.add_all(config_map(f"cm-{i:02d}", namespace="shop") for i in range(10))
    emulator.expire_continue("configmaps", times=1)
    options = CollectOptions(include_types=frozenset({"configmaps", "pods"}), page_size=3)
    collection = collect(kube, options)

    assert collection.list_restarts == 1
    assert collection.object_counts["ConfigMap"] == 12  # complete, nothing counted twice
    assert collection.errors == {}
    firsts = [
        r for r in emulator.requests if r.path == "/api/v1/configmaps" and "continue" not in r.query
    ]
    assert len(firsts) == 2  # the list was started again from the beginning


def test_a_token_that_keeps_expiring_fails_only_that_type(
    kube: KubeClient, emulator: KubeApiEmulator, cluster: FakeCluster
) -> None:
    cluster.add_all(config_map(f"cm-{i:02d}", namespace="shop") for i in range(10))
    emulator.expire_continue("configmaps", times=100)
    options = CollectOptions(include_types=frozenset({"configmaps", "pods"}), page_size=3)
    collection = collect(kube, options)
    assert "configmaps" in collection.errors
    assert ("v1", "ConfigMap") in collection.failed_kinds
    assert collection.object_counts["Pod"] == 2


def test_forbidden_types_are_skipped_and_reported(
    kube: KubeClient, emulator: KubeApiEmulator, options: CollectOptions
) -> None:
    emulator.forbid("deployments.apps", "clusterroles.rbac.authorization.k8s.io")
    collection = collect(kube, options)
    assert collection.forbidden == ["deployments.apps", "clusterroles.rbac.authorization.k8s.io"]
    assert collection.errors["deployments.apps"].startswith("forbidden: deployments.apps is")
    assert "Deployment" not in collection.object_counts
    assert collection.object_counts["Pod"] == 2
    # A 403 means "cannot see", not "failed" (no retry can help) and not "gone" either: the
    # type's objects are unknown this round, so a delta carries them over (issue 19).
    assert ("apps/v1", "Deployment") not in collection.failed_kinds
    assert collection.not_collected["deployments.apps"] == "forbidden"
    assert collection.failed("apps/v1|Deployment|shop|web")


def test_types_that_vanish_mid_run_are_skipped(
    kube: KubeClient, emulator: KubeApiEmulator, options: CollectOptions
) -> None:
    emulator.vanish("certificates.cert-manager.io")
    collection = collect(kube, options)
    assert collection.vanished == ["certificates.cert-manager.io"]
    assert "Certificate" not in collection.object_counts
    assert "certificates.cert-manager.io" not in collection.errors


def test_a_group_whose_discovery_fails_is_reported_and_kept_as_is(
    kube: KubeClient, emulator: KubeApiEmulator, options: CollectOptions
) -> None:
    emulator.fail_discovery("cert-manager.io/v1")
    collection = collect(kube, options)
    assert "discovery /apis/cert-manager.io/v1" in collection.errors
    assert "cert-manager.io/v1" in collection.failed_api_versions
    assert collection.failed("cert-manager.io/v1|Certificate|shop|web")
    assert collection.object_counts["Pod"] == 2


def test_an_unreachable_api_server_fails_the_whole_collection(
    kube: KubeClient, emulator: KubeApiEmulator, options: CollectOptions
) -> None:
    emulator.stop()
    with pytest.raises(CollectionFailed):
        collect(kube, options)


def test_one_malformed_object_is_skipped_and_counted(
    kube: KubeClient, emulator: KubeApiEmulator, options: CollectOptions
) -> None:
    emulator.break_items("configmaps", count=1)
    collection = collect(kube, options)
    assert collection.malformed == {"configmaps": 1}
    assert collection.object_counts["ConfigMap"] == 2


def test_namespace_filters(
    kube: KubeClient, emulator: KubeApiEmulator, options: CollectOptions
) -> None:
    only_shop = collect(kube, replace(options, include_namespaces=frozenset({"shop"})))
    namespaced = [k for k in only_shop.entries if k.split("|")[2]]
    assert namespaced and all(k.split("|")[2] == "shop" for k in namespaced)
    assert only_shop.object_counts["Node"] == 2  # cluster-scoped types are unaffected
    assert "/api/v1/namespaces/shop/pods" in emulator.paths()

    not_shop = collect(kube, replace(options, exclude_namespaces=frozenset({"shop"})))
    assert not [k for k in not_shop.entries if k.split("|")[2] == "shop"]
    assert "v1|ConfigMap|kube-system|coredns" in not_shop.entries


def test_discovery_keeps_one_type_per_kind(kube: KubeClient) -> None:
    found = discover(kube)
    names = [t.name for t in found.types]
    assert len(names) == len(set(names))
    ingresses = [t for t in found.types if t.kind == "Ingress"]
    assert [t.api_version for t in ingresses] == ["networking.k8s.io/v1"]
    events = [t for t in found.types if t.kind == "Event"]
    assert [t.api_version for t in events] == ["v1"]
    certificates = [t for t in found.types if t.kind == "Certificate"]
    assert [t.api_version for t in certificates] == ["cert-manager.io/v1"]
    assert not [t for t in found.types if t.kind == "Secret" or t.plural == "secrets"]


def test_a_namespace_forbidden_for_one_type_keeps_the_others(
    kube: KubeClient, emulator: KubeApiEmulator, cluster: FakeCluster, options: CollectOptions
) -> None:
    cluster.add(config_map("team-config", namespace="default"))
    emulator.forbid("configmaps", namespace="shop")
    scoped = replace(options, include_namespaces=frozenset({"default", "shop"}))
    collection = collect(kube, scoped)
    assert collection.forbidden == ["configmaps in shop"]
    assert "v1|ConfigMap|default|team-config" in collection.entries
    assert "v1|ConfigMap|shop|web-config" not in collection.entries
    assert collection.object_counts["Pod"] == 2


def test_a_strange_cluster_never_crashes_the_collection(
    kube: KubeClient, emulator: KubeApiEmulator, options: CollectOptions
) -> None:
    emulator.add_raw_discovery(
        groups=[
            {"name": "empty.example.com", "versions": []},  # no version at all
            {
                "name": "odd.example.com",
                "versions": [{"groupVersion": "odd.example.com/v1", "version": "v1"}],
            },  # no preferredVersion
            "not-a-group",
            {"versions": "nonsense"},
        ],
        resources={
            "odd.example.com/v1": [
                {"name": "widgets", "namespaced": True, "kind": "Widget", "verbs": None},
                {"name": "gadgets", "namespaced": True, "verbs": ["list"]},  # no kind
                {"name": "", "kind": "Nameless", "verbs": ["list"]},
                "garbage",
                {"name": "secrets", "namespaced": True, "kind": "Secret", "verbs": ["list"]},
                {"name": "tokens", "namespaced": True, "kind": "Secret", "verbs": ["list"]},
            ],
            "v1": [
                {
                    "name": "pods/portforward",
                    "kind": "PodPortForwardOptions",
                    "verbs": ["create", "get"],
                }
            ],
        },
    )
    collection = collect(kube, options)
    assert collection.object_counts["Pod"] == 2
    assert "discovery /apis/odd.example.com/v1" not in collection.errors
    assert not [p for p in emulator.paths() if p.startswith("/apis/odd.example.com/v1/")]
    assert not [p for p in emulator.paths() if "/apis/empty.example.com" in p]
