"""store.images on both engines: each image once per workload, every container kind."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from store.images import fleet_images, image_uses
from store.rule_cache import delete_other_versions
from store.search import SearchTimeout
from store.snapshots import apply_pending, stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import deployment, full_envelope
from tests.support.workloads import workloads
from tests.web.fleet import push

DIGEST = "sha256:" + "c0" * 32


def test_images_once_per_workload_on_both_engines(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "a")
    make_cluster(session, "b")
    push(session, "a", workloads())
    push(session, "b", [deployment("web", namespace="shop", image="shop/web:2")])
    found, truncated = fleet_images(session, timeout_seconds=30)
    assert not truncated
    assert [(i.image, len(i.workloads), i.clusters) for i in found] == [
        ("shop/web:2", 3, ["a", "b"]),
        ("busybox:1", 1, ["a"]),
        ("nicolaka/netshoot:1", 1, ["a"]),
        ("ops/backup:7", 1, ["a"]),
        ("shop/web:1", 1, ["a"]),
    ]
    assert found[0].as_json()["kinds"] == ["Deployment", "Pod"]
    assert {k: found[0].as_json()[k] for k in ("repository", "tag", "digest")} == {
        "repository": "docker.io/shop/web",
        "tag": "2",
        "digest": None,
    }
    only_b, _ = fleet_images(session, timeout_seconds=30, cluster_ids=["b"])
    assert [(i.image, len(i.workloads)) for i in only_b] == [("shop/web:2", 1)]
    top, cut = fleet_images(session, timeout_seconds=30, limit=1)
    assert [i.image for i in top] == ["shop/web:2"] and cut
    with pytest.raises(SearchTimeout):
        fleet_images(session, timeout_seconds=1e-9)


def _push_at(session: Session, cluster_id: str, objects: list, at: datetime) -> None:
    stage_snapshot(session, cluster_id, envelope=full_envelope(objects), received_at=at)
    apply_pending(session, cluster_id)


def test_inventory_workloads_digests_and_since_on_both_engines(any_db_session: Session) -> None:
    session = any_db_session
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    t1, t2 = t0 + timedelta(days=10), t0 + timedelta(days=20)
    make_cluster(session, "a")
    make_cluster(session, "b")
    objects = workloads()
    pod = next(o for o in objects if o["metadata"]["name"] == "web-bbb-0")
    pod["status"] = {
        "containerStatuses": [
            {
                "name": "main",
                "image": "shop/web:2",
                "imageID": f"docker-pullable://shop/web@{DIGEST}",
            }
        ]
    }
    _push_at(session, "a", objects, t0)
    api = deployment("api", namespace="shop", image="shop/api:2.1.0")
    cache = deployment("cache", namespace="shop", image="redis:7.2.4")
    _push_at(session, "b", [api, cache], t0)
    scaled, cache_scaled = copy.deepcopy(api), copy.deepcopy(cache)
    scaled["spec"]["replicas"] = cache_scaled["spec"]["replicas"] = 5  # same image, new version
    _push_at(session, "b", [scaled, cache_scaled], t1)
    upgraded = copy.deepcopy(scaled)
    upgraded["spec"]["template"]["spec"]["containers"][0]["image"] = "shop/api:2.2.0"
    other = deployment("worker", namespace="jobs", image="shop/api:2.1.0")
    _push_at(session, "b", [upgraded, other, cache_scaled], t2)

    uses = {
        (u.cluster_id, u.workload.kind, u.workload.name, u.container): u
        for u in image_uses(session, timeout_seconds=30)
    }
    assert sorted(uses) == [
        ("a", "CronJob", "backup", "b"),
        ("a", "Deployment", "web", "main"),
        ("a", "Pod", "debug-me", "app"),
        ("a", "Pod", "debug-me", "dbg"),
        ("a", "Pod", "debug-me", "init"),
        ("b", "Deployment", "api", "main"),
        ("b", "Deployment", "cache", "main"),
        ("b", "Deployment", "worker", "main"),
    ]
    web = uses[("a", "Deployment", "web", "main")]
    assert (web.image, web.digests, web.since) == ("shop/web:2", (DIGEST,), t0)
    assert web.path == "spec.template.spec.containers[0].image"
    assert web.as_json()["repository"] == "docker.io/shop/web"
    assert web.as_json()["digest"] == DIGEST
    api_use = uses[("b", "Deployment", "api", "main")]
    assert (api_use.image, api_use.since) == ("shop/api:2.2.0", t2)
    assert uses[("b", "Deployment", "cache", "main")].since == t0  # t0 and t1 versions: one run
    assert uses[("b", "Deployment", "worker", "main")].since == t2
    cron = uses[("a", "CronJob", "backup", "b")]
    assert cron.path == "spec.jobTemplate.spec.template.spec.containers[0].image"
    only_b = image_uses(session, timeout_seconds=30, cluster_ids=["b"])
    assert {u.cluster_id for u in only_b} == {"b"}
    # api ran 2.1.0 over two versions (t0, t1) before its upgrade; worker started on it at t2
    runs = [u for u in image_uses(session, timeout_seconds=30) if u.image == "shop/api:2.1.0"]
    assert [(u.workload.name, u.since) for u in runs] == [("worker", t2)]
    with pytest.raises(SearchTimeout):
        image_uses(session, timeout_seconds=1e-9)


def _cached_inventory_rows(session: Session) -> list[tuple[str, str]]:
    from sqlalchemy import select  # noqa: PLC0415

    from store.models import RuleResultCache  # noqa: PLC0415
    from store.rule_cache import INVENTORY_CACHE  # noqa: PLC0415

    return sorted(
        session.execute(
            select(RuleResultCache.catalogue_version, RuleResultCache.content_hash).where(
                RuleResultCache.catalogue_version.startswith(INVENTORY_CACHE)
            )
        ).all()
    )


def test_cached_inventory_is_the_inventory_on_both_engines(any_db_session: Session) -> None:
    """`image_uses(cached=True)` gives what reading every body gives, first (rows cached),
    then from the cache, and after a cluster's state changed (an image upgraded, a workload
    deleted, one added, a Pod's owner gone): only that cluster's rows are read again, and
    each cluster keeps one cached row."""
    session = any_db_session
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    make_cluster(session, "a")
    make_cluster(session, "b")
    make_cluster(session, "empty")
    objects = workloads()
    _push_at(session, "a", objects, t0)
    api = deployment("api", namespace="shop", image="shop/api:2.1.0")
    cache = deployment("cache", namespace="shop", image="redis:7.2.4")
    _push_at(session, "b", [api, cache], t0)
    clusters = ["a", "b", "empty"]

    def both() -> tuple[list, list]:
        return (
            image_uses(session, timeout_seconds=30, cluster_ids=clusters),
            image_uses(session, timeout_seconds=30, cluster_ids=clusters, cached=True),
        )

    fresh, cached = both()
    assert cached == fresh and len(fresh) == 7
    stored = _cached_inventory_rows(session)
    assert [version for version, _key in stored] == ["inventory/1:a", "inventory/1:b"]
    fresh, cached = both()  # from the cache this time
    assert cached == fresh
    assert _cached_inventory_rows(session) == stored

    upgraded = copy.deepcopy(api)
    upgraded["spec"]["template"]["spec"]["containers"][0]["image"] = "shop/api:2.2.0"
    other = deployment("worker", namespace="jobs", image="shop/api:2.1.0")
    _push_at(session, "b", [upgraded, other], t0 + timedelta(days=1))  # cache deleted
    kept = [o for o in objects if o["kind"] not in ("Deployment", "ReplicaSet")]  # web's Pods stay
    _push_at(session, "a", kept, t0 + timedelta(days=2))
    fresh, cached = both()
    assert cached == fresh
    names = {(u.cluster_id, u.workload.kind, u.workload.name, u.image) for u in cached}
    assert ("b", "Deployment", "api", "shop/api:2.2.0") in names
    assert ("b", "Deployment", "worker", "shop/api:2.1.0") in names
    assert not any(name == "cache" for _c, _k, name, _i in names)
    assert not any(kind == "Deployment" for cid, kind, _n, _i in names if cid == "a")
    after = _cached_inventory_rows(session)
    assert [version for version, _key in after] == ["inventory/1:a", "inventory/1:b"]
    assert not set(after) & set(stored)  # both states changed: both rows replaced
    only_b = image_uses(
        session, timeout_seconds=30, cluster_ids=["b"], repositories={"docker.io/shop/api"}
    )
    assert only_b == image_uses(
        session,
        timeout_seconds=30,
        cluster_ids=["b"],
        repositories={"docker.io/shop/api"},
        cached=True,
    )
    with pytest.raises(SearchTimeout):
        image_uses(session, timeout_seconds=1e-9, cluster_ids=clusters, cached=True)
    # The inventory depends on no catalogue: the clean-up of other catalogue versions keeps it.
    delete_other_versions(session, keep_version="another-catalogue")
    assert _cached_inventory_rows(session) == after
