"""store.images on both engines: each image once per workload, every container kind."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store import images
from store.images import fleet_images, image_uses
from store.models import KubeObject, ManifestBody, ManifestVersion, RuleResultCache
from store.purge import purge_versions
from store.rule_cache import INVENTORY_CACHE, delete_other_versions
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
    assert [version for version, _key in stored] == [INVENTORY_CACHE + "a", INVENTORY_CACHE + "b"]
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
    assert [version for version, _key in after] == [INVENTORY_CACHE + "a", INVENTORY_CACHE + "b"]
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


def _with(image: str, *, replicas: int = 2) -> dict:
    return deployment("api", namespace="shop", image=image, replicas=replicas)


def _api_versions(session: Session, cluster_id: str) -> list[tuple[int, datetime, str]]:
    """(version id, first_seen, image) of the cluster's api Deployment, oldest first."""
    return [
        (vid, first_seen, body["spec"]["template"]["spec"]["containers"][0]["image"])
        for vid, first_seen, body in session.execute(
            select(ManifestVersion.id, ManifestVersion.first_seen, ManifestBody.body)
            .join(KubeObject, KubeObject.id == ManifestVersion.object_id)
            .join(ManifestBody, ManifestBody.content_hash == ManifestVersion.content_hash)
            .where(KubeObject.cluster_id == cluster_id, KubeObject.name == "api")
            .order_by(ManifestVersion.id)
        )
    ]


def _api_since(session: Session, clusters: list[str]) -> dict[str, datetime | None]:
    """Each cluster's api since, read without the cache and with it (which must agree)."""
    fresh = image_uses(session, timeout_seconds=30, cluster_ids=clusters)
    cached = image_uses(session, timeout_seconds=30, cluster_ids=clusters, cached=True)
    assert cached == fresh
    assert [u.as_json() for u in cached] == [u.as_json() for u in fresh]
    return {u.cluster_id: u.since for u in cached if u.workload.name == "api"}


def test_cached_since_follows_the_history_on_both_engines(
    any_db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached inventory holds each use's since: read from the cache without the history,
    and worked out again when the history changed under the same state: a state that came
    back (A -> B -> A: the same digest, a later since) and versions the retention purge
    deleted (a run's first version: the since is the oldest stored version of the run; the
    version before a run: the run joins the older one). Always what the history says now."""
    session = any_db_session
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    t1, t2, t3 = (t0 + timedelta(days=days) for days in (10, 20, 30))
    clusters = ["back", "joined", "purged", "still"]
    for cluster_id in clusters:
        make_cluster(session, cluster_id)
    # back: A (api:1) at t0, then (below) B (api:2) at t1 and A again at t2 (its digest again)
    _push_at(session, "back", [_with("shop/api:1")], t0)
    # joined: api:1 at t0, api:2 at t1, api:1 at t2 (a run since t2)
    for at, image in ((t0, "shop/api:1"), (t1, "shop/api:2"), (t2, "shop/api:1")):
        _push_at(session, "joined", [_with(image)], at)
    # purged: api:1 at t0, scaled at t1 and t2 (one run since t0); still: api:1 since t2
    for at, replicas in ((t0, 2), (t1, 3), (t2, 4)):
        _push_at(session, "purged", [_with("shop/api:1", replicas=replicas)], at)
    _push_at(session, "still", [_with("shop/api:1")], t2)
    assert _api_since(session, clusters) == {"back": t0, "joined": t2, "purged": t0, "still": t2}

    # From the cache: the history is not read (its query fails if run).
    def cached_since() -> dict[str, datetime | None]:
        def no_history(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("the history was read")

        with monkeypatch.context() as patched:
            patched.setattr(images, "_version_images", no_history)
            cached = image_uses(session, timeout_seconds=30, cluster_ids=clusters, cached=True)
        return {u.cluster_id: u.since for u in cached}

    assert cached_since() == {
        "back": t0,
        "joined": t2,
        "purged": t0,
        "still": t2,
    }
    rows = dict(_cached_inventory_rows(session))
    assert sorted(rows) == [INVENTORY_CACHE + c for c in clusters]

    _push_at(session, "back", [_with("shop/api:2")], t1)
    _push_at(session, "back", [_with("shop/api:1")], t2)  # A again, the cache not read since
    # The purge of versions superseded before t1 + 1 day: the t0 versions of back (its first
    # A), joined (before its run) and purged (its run's first).
    assert purge_versions(session, cutoff=t1 + timedelta(days=1)) == 3
    assert _api_since(session, clusters) == {"back": t2, "joined": t2, "purged": t1, "still": t2}
    after = dict(_cached_inventory_rows(session))
    assert sorted(after) == sorted(rows)
    assert {c for c in clusters if after[INVENTORY_CACHE + c] != rows[INVENTORY_CACHE + c]} == {
        "back"  # a new snapshot; purged's row was replaced under its key (the same state)
    }
    assert cached_since() == {  # and read again from the cache
        "back": t2,
        "joined": t2,
        "purged": t1,
        "still": t2,
    }

    # The purge deletes the versions superseded before its cutoff in batches, in no order:
    # one can take the version that ended a run before an older one of the same image, and
    # the run then joins that one.
    for days, image in ((1, "shop/api:2"), (2, "shop/api:1")):
        _push_at(session, "joined", [_with(image)], t3 + timedelta(days=days))
    versions = _api_versions(session, "joined")
    assert [(at, image) for _vid, at, image in versions] == [
        (t1, "shop/api:2"),
        (t2, "shop/api:1"),
        (t3 + timedelta(days=1), "shop/api:2"),
        (t3 + timedelta(days=2), "shop/api:1"),
    ]
    assert _api_since(session, ["joined"]) == {"joined": t3 + timedelta(days=2)}
    session.execute(delete(ManifestVersion).where(ManifestVersion.id == versions[2][0]))
    assert _api_since(session, ["joined"]) == {"joined": t2}


def _cached_inventory(session: Session) -> dict[str, object]:
    from sqlalchemy import select  # noqa: PLC0415

    from store.models import RuleResultCache  # noqa: PLC0415
    from store.rule_cache import INVENTORY_CACHE  # noqa: PLC0415

    return dict(
        session.execute(
            select(RuleResultCache.content_hash, RuleResultCache.results).where(
                RuleResultCache.catalogue_version.startswith(INVENTORY_CACHE)
            )
        ).all()
    )


def test_inventory_cached_from_bodies_is_the_inventory_read_on_both_engines(
    any_db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a scan caches of the bodies it decoded (`cache_cluster_inventory`) is exactly
    what the cold read caches (same keys, same stored uses, in the same order), and the
    fleet's inventory then comes from it without reading any body: Pods with digests, a
    Pod of an unstored ReplicaSet, containers without an image or not an object."""
    from sqlalchemy import delete  # noqa: PLC0415

    import store.images  # noqa: PLC0415
    from store.images import cache_cluster_inventory  # noqa: PLC0415
    from store.manifests import current_manifests  # noqa: PLC0415
    from store.models import RuleResultCache  # noqa: PLC0415

    session = any_db_session
    make_cluster(session, "a")
    make_cluster(session, "b")
    objects = workloads()
    pod = next(o for o in objects if o["metadata"]["name"] == "web-bbb-0")
    pod["status"] = {"containerStatuses": [{"name": "main", "imageID": f"shop/web@{DIGEST}"}]}
    orphan = copy.deepcopy(pod)
    orphan["metadata"]["name"] = "web-ccc-0"
    orphan["metadata"]["ownerReferences"][0]["name"] = "web-ccc"
    orphan["spec"]["initContainers"] = ["not a container", {"name": "no-image"}]
    _push_at(session, "a", [*objects, orphan], datetime(2026, 10, 1, tzinfo=UTC))
    _push_at(
        session,
        "b",
        [deployment("api", namespace="shop", image="shop/api:2.1.0")],
        datetime(2026, 10, 1, tzinfo=UTC),
    )
    clusters = ["a", "b"]
    fresh = image_uses(session, timeout_seconds=30, cluster_ids=clusters)
    assert image_uses(session, timeout_seconds=30, cluster_ids=clusters, cached=True) == fresh
    read = _cached_inventory(session)
    assert len(read) == 2

    session.execute(delete(RuleResultCache).where(RuleResultCache.content_hash.in_(list(read))))
    for cluster_id in clusters:
        live = sorted(current_manifests(session, cluster_id=cluster_id), key=lambda m: m.object_id)
        cache_cluster_inventory(
            session,
            cluster_id,
            state=images.InventoryState(*_state_of(session, cluster_id)),
            objects=[(m.object_id, m.ref, m.body) for m in live],
            timeout_seconds=30,
        )
    assert _cached_inventory(session) == read

    def unread(*_args: object) -> None:
        raise AssertionError("a cached cluster's bodies were read")

    monkeypatch.setattr(store.images, "_postgres_cluster_rows", unread)
    monkeypatch.setattr(store.images, "_python_cluster_rows", unread)
    assert image_uses(session, timeout_seconds=30, cluster_ids=clusters, cached=True) == fresh


def test_a_clusters_inventory_row_is_replaced_through_its_index_on_both_engines(
    any_db_session: Session,
) -> None:
    """A new state's inventory replaces the cluster's row of the state before, and the row is
    found through the inventory rows' partial index (migration 0020): the planner can use it
    for the query `_store_uses` deletes with, rather than read a row per cached result."""
    from sqlalchemy import func, text  # noqa: PLC0415

    from store.db import on_postgresql  # noqa: PLC0415
    from store.rule_cache import inventory_row_of  # noqa: PLC0415

    session = any_db_session
    make_cluster(session, "a")
    _push_at(session, "a", workloads(), datetime(2026, 10, 1, tzinfo=UTC))
    image_uses(session, timeout_seconds=30, cluster_ids=["a"], cached=True)
    first = _cached_inventory(session)
    _push_at(
        session,
        "a",
        [deployment("api", namespace="shop", image="shop/api:2.1.0")],
        datetime(2026, 10, 2, tzinfo=UTC),
    )
    later = image_uses(session, timeout_seconds=30, cluster_ids=["a"], cached=True)
    assert [use.image for use in later] == ["shop/api:2.1.0"]
    rows = session.scalar(
        select(func.count()).select_from(RuleResultCache).where(inventory_row_of("a"))
    )
    assert rows == 1 and len(first) == 1 and set(_cached_inventory(session)) != set(first)

    state = images.InventoryState(*_state_of(session, "a"))
    # As `_store_uses` sends it: only while the cluster is still in the state written.
    statement = delete(RuleResultCache).where(inventory_row_of("a"), state.still_current("a"))
    dialect = session.get_bind().dialect
    compiled = statement.compile(dialect=dialect)
    if on_postgresql(session):
        session.execute(text("SET LOCAL enable_seqscan = off"))
        cursor = session.connection().connection.cursor()
        sent = cursor.mogrify(str(compiled), compiled.params).decode()  # what psycopg2 sends
        cursor.execute(f"EXPLAIN {sent}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    else:
        bound = tuple(compiled.params[name] for name in compiled.positiontup or ())
        explained = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", bound)
        plan = "\n".join(str(row[-1]) for row in explained)
    assert "ix_rule_result_cache_inventory" in plan, plan


def _state_of(session: Session, cluster_id: str) -> tuple[str, int]:
    from store.models import Cluster  # noqa: PLC0415

    digest, snapshot_id = session.execute(
        select(Cluster.current_digest, Cluster.current_snapshot_id).where(Cluster.id == cluster_id)
    ).one()
    assert digest and snapshot_id is not None
    return digest, snapshot_id


def test_an_inventory_is_cached_only_while_the_cluster_is_in_its_state_on_both_engines(
    any_db_session: Session,
) -> None:
    """A scan caches the inventory of the state it read the cluster in (its digest and
    snapshot, `InventoryState`); the statement that writes the row checks the cluster is still
    in that state, so one applied meanwhile (its history newer than the uses) leaves the
    cache as it was, and the next reader works the inventory out from the new state. The
    carry of a label-only rescan (`carry_cluster_inventory`) likewise moves no row to a
    state the cluster has left."""
    from store.images import CarriedState, InventoryState  # noqa: PLC0415
    from store.manifests import current_manifests  # noqa: PLC0415

    session = any_db_session
    make_cluster(session, "a")
    _push_at(session, "a", workloads(), datetime(2026, 10, 1, tzinfo=UTC))
    first = InventoryState(*_state_of(session, "a"))
    live = sorted(current_manifests(session, cluster_id="a"), key=lambda m: m.object_id)
    objects = [(m.object_id, m.ref, m.body) for m in live]

    def cache(state: InventoryState) -> None:
        images.cache_cluster_inventory(
            session,
            "a",
            state=state,
            objects=objects,
            timeout_seconds=30,
        )

    cache(first)  # still the cluster's state: cached under its key
    assert list(_cached_inventory(session)) == [first.key("a")]

    relabelled = workloads()
    relabelled[0]["metadata"]["labels"] = {"team": "checkout"}
    _push_at(session, "a", relabelled, datetime(2026, 10, 2, tzinfo=UTC))
    second = InventoryState(*_state_of(session, "a"))
    later = [*workloads(), deployment("api", namespace="shop", image="shop/api:2.1.0")]
    _push_at(session, "a", later, datetime(2026, 10, 3, tzinfo=UTC))
    third = InventoryState(*_state_of(session, "a"))
    assert len({first, second, third}) == 3

    # The carry from the first state to the second (only labels changed) moves the first's
    # row while the cluster is in the second (cluster "b", pushed the same); "a" is in the
    # third by now: nothing moves.
    make_cluster(session, "b")
    _push_at(session, "b", workloads(), datetime(2026, 10, 1, tzinfo=UTC))
    image_uses(session, timeout_seconds=30, cluster_ids=["b"], cached=True)
    b_first = InventoryState(*_state_of(session, "b"))
    _push_at(session, "b", relabelled, datetime(2026, 10, 2, tzinfo=UTC))
    b_second = InventoryState(*_state_of(session, "b"))
    for cluster_id, carried, moved in (
        ("b", CarriedState(b_first.digest, 10**9, b_second), True),
        ("a", CarriedState(first.digest, 10**9, second), False),
    ):
        assert (
            images.carry_cluster_inventory(
                session, cluster_id, carried=carried, changed={}, timeout_seconds=30
            )
            is moved
        )
    assert sorted(_cached_inventory(session)) == sorted([first.key("a"), b_second.key("b")])
    kept = [first.key("a"), b_second.key("b")]
    session.execute(delete(RuleResultCache).where(RuleResultCache.content_hash.in_(kept)))
    cache(first)  # read before the pushes: the cluster left that state, nothing is written
    assert _cached_inventory(session) == {}
    fresh = image_uses(session, timeout_seconds=30, cluster_ids=["a"])
    assert "shop/api:2.1.0" in {use.image for use in fresh}
    assert image_uses(session, timeout_seconds=30, cluster_ids=["a"], cached=True) == fresh
    assert list(_cached_inventory(session)) == [third.key("a")]
