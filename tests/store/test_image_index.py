"""The image index (store.image_index): which paths it answers, and that its answers are the
generic evaluation's, exactly, on PostgreSQL and SQLite — present, `at` and `between`,
listing and `distinct`, over varied history (several clusters, changed images, deleted
objects, purged versions, init and ephemeral containers, CronJobs, odd `image` members)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

import store.search as search_module
from store import image_presence
from store.image_index import backfill, image_occurrences, recognise, shapes_of
from store.jsonpath import Index, Member, parse
from store.models import (
    BodyImage,
    ImageChange,
    ImageCheckpoint,
    ImageCheckpointSlots,
    ImageGroup,
    ImagePresent,
    KubeObject,
    ManifestBody,
    ManifestVersion,
)
from store.purge import purge_deleted_objects, purge_image_changes, purge_versions
from store.search import Period, SearchResult, run_search
from store.snapshots import apply_pending, stage_snapshot
from tests.store.test_search import cron_job, pod
from tests.support.factories import make_cluster
from tests.support.manifests import config_map, deployment, full_envelope

LIMIT = 30.0  # generous: these tests are about answers, not speed

RECOGNISED = [
    "$..image",
    "$..['image']",
    "$.spec.template.spec.containers[*].image",
    "$['spec']['template'][\"spec\"].containers[*]['image']",
    "$.spec.template.spec.containers.image",
    "$.spec.template.spec.initContainers[*].image",
    "$.spec.containers[*].image",
    "$.spec.ephemeralContainers[*].image",
    "$.spec.jobTemplate.spec.template.spec.containers[*].image",
    "$.status.containerStatuses[*].image",
    "$.image",
    "$.spec.image",
    "$.spec.matrix[*][*].image",
    "$.spec.matrix[*].image",
    "$.spec.matrix.image",
    "$.spec.image.image",
    "$.metadata.annotations.image",
]
NOT_RECOGNISED = [
    "$..containers[*].image",
    "$.spec.containers[0].image",
    "$.spec.*.image",
    "$.spec.containers[?(@.image == 'shop/app:3')].image",
    "$..image ? (@ == 'img:1')",
    "$.spec.template.spec.containers[*].name",
    "$.spec.template.spec.containers[*]",
    "$.spec.image.tag",
    "$",
]


def widget(name: str, *, version: int) -> dict[str, Any]:
    """A custom resource with `image` members in every odd place: an object, an array, null,
    a number, nested arrays, an annotation, keys of every length and non-ASCII (jsonb orders
    an object's keys by length, then bytes; the index must follow)."""
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {
            "name": name,
            "namespace": "odd",
            "uid": f"uid-widget-{name}",
            "annotations": {"image": f"annotated:{version}"},
        },
        "spec": {
            "zz": {"image": "zz:1"},
            "a": {"image": "a:1"},
            "ümlaut": {"image": f"umlaut:{version}"},
            "image": {"repository": "repo/widget", "tag": str(version), "image": "inner:1"},
            "matrix": [
                [{"image": "m:00"}, {"image": "m:01"}],
                [{"image": "m:10"}],
                {"image": "m:2"},
            ],
            "list": [{"image": None}, {"image": 7}, {"image": ["x:1", "y:1"]}, {"image": ""}],
            "bb": [{"image": "dup:1"}, {"image": "dup:1"}],
        },
        "image": f"top:{version}",
    }


def pod_with_status(name: str, *, image: str) -> dict[str, Any]:
    body = pod(name)
    body["spec"]["containers"][0]["image"] = image
    body["status"] = {
        "containerStatuses": [
            {"name": "app", "image": image, "imageID": "docker-pullable://x@sha256:" + "a" * 64},
            {"name": "sidecar", "image": "envoy:1.30"},
        ]
    }
    return body


def web(image: str, *, init: str | None = None) -> dict[str, Any]:
    body = deployment("web", namespace="shop", image=image)
    body["spec"]["template"]["spec"]["containers"].append({"name": "proxy", "image": "envoy:1.30"})
    if init is not None:
        body["spec"]["template"]["spec"]["initContainers"] = [{"name": "init", "image": init}]
    return body


def cron(image: str) -> dict[str, Any]:
    body = cron_job("backup")
    body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return body


def push_at(session: Session, cluster_id: str, objects: list[dict[str, Any]], at: datetime) -> None:
    envelope = full_envelope([copy.deepcopy(o) for o in objects])
    stage_snapshot(session, cluster_id, envelope=envelope, received_at=at)
    apply_pending(session, cluster_id)


@pytest.fixture
def day0() -> datetime:
    return (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)


@pytest.fixture
def fleet(any_db_session: Session, day0: datetime) -> Session:
    """Three clusters over four days: changed images, deletions, a body shared by two
    clusters (the same Deployment in prod and dev), CronJobs, Pods with status images."""
    session = any_db_session
    for name in ("prod", "stage", "dev"):
        make_cluster(session, name)
    day = [day0 + timedelta(days=n) for n in range(5)]
    push_at(
        session,
        "prod",
        [
            web("shop/web:1", init="busybox:1"),
            pod_with_status("p", image="shop/app:3"),
            cron("ops/backup:7"),
            widget("w", version=1),
            config_map("cfg"),
        ],
        day[0],
    )
    push_at(
        session,
        "prod",
        [
            web("shop/web:2", init="busybox:1"),
            cron("ops/backup:8"),
            widget("w", version=1),
            config_map("cfg"),
        ],
        day[1],
    )
    push_at(
        session,
        "prod",
        [
            web("shop/web:2", init="busybox:2"),
            cron("ops/backup:8"),
            widget("w", version=2),
            deployment("api", namespace="shop", image="shop/api:1"),
            config_map("cfg"),
        ],
        day[2] + timedelta(hours=6),
    )
    push_at(session, "stage", [web("shop/web:1"), pod_with_status("q", image="shop/app:4")], day[0])
    push_at(
        session,
        "stage",
        [
            web("shop/web:1"),
            pod_with_status("q", image="shop/app:4"),
            deployment("canary", namespace="shop", image="shop/web:canary"),
        ],
        day[1] + timedelta(hours=12),
    )
    push_at(session, "stage", [web("shop/web:3")], day[1] + timedelta(hours=13))
    push_at(session, "dev", [web("shop/web:2", init="busybox:1"), widget("w", version=1)], day[1])
    # The widget leaves dev, then comes back (the same uid: the object is revived).
    push_at(session, "dev", [web("shop/web:2", init="busybox:1")], day[2])
    push_at(
        session,
        "dev",
        [web("shop/web:2", init="busybox:1"), widget("w", version=2)],
        day[3] + timedelta(hours=3),
    )
    return session


def periods(day0: datetime) -> list[Period | None]:
    def at(moment: datetime) -> Period:
        return Period(moment, moment)

    return [
        None,
        at(day0 + timedelta(hours=12)),
        at(day0 + timedelta(days=1, hours=12, minutes=30)),
        at(day0 + timedelta(days=3)),
        Period(day0, day0 + timedelta(days=4)),
        Period(day0 + timedelta(days=1, hours=12), day0 + timedelta(days=1, hours=14)),
        Period(day0 - timedelta(days=1), day0 - timedelta(hours=1)),  # before any history
        at(day0 + timedelta(days=2)),  # the instant of a push: what it ended and began
        Period(day0 + timedelta(days=1), day0 + timedelta(days=2)),  # both ends on pushes
    ]


SCOPES: list[dict[str, Any]] = [
    {},
    {"cluster_ids": ["prod"]},
    {"cluster_ids": ["prod", "dev"]},
    {"kind": "Deployment"},
    {"namespace": "shop", "kind": "Pod"},
]


def _answer(result: SearchResult) -> tuple[Any, ...]:
    return (
        result.truncated,
        [(m.cluster_id, m.ref, m.values, m.validity) for m in result.matches],
        [(v.value, v.occurrences, v.clusters) for v in result.values],
    )


def _both_ways(
    session: Session, monkeypatch: pytest.MonkeyPatch, path: str, **options: Any
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    indexed = run_search(session, path, timeout_seconds=LIMIT, **options)
    with monkeypatch.context() as patched:
        patched.setattr(search_module, "recognise", lambda _path: None)
        generic = run_search(session, path, timeout_seconds=LIMIT, **options)
    return _answer(indexed), _answer(generic)


def _compare_everything(session: Session, monkeypatch: pytest.MonkeyPatch, day0: datetime) -> int:
    """Every recognised path, period, scope, mode and a cutting limit: index == generic.
    Returns how many searches found something (so the comparison is not of empty answers)."""
    nonempty = 0
    for path in RECOGNISED:
        for period in periods(day0):
            for scope in SCOPES:
                for distinct in (False, True):
                    for limit in (1000, 2):
                        indexed, generic = _both_ways(
                            session,
                            monkeypatch,
                            path,
                            period=period,
                            distinct=distinct,
                            limit=limit,
                            **scope,
                        )
                        assert indexed == generic, (path, period, scope, distinct, limit)
                        nonempty += bool(indexed[1] or indexed[2])
    return nonempty


def test_the_index_answers_exactly_as_the_generic_evaluation(
    fleet: Session, monkeypatch: pytest.MonkeyPatch, day0: datetime
) -> None:
    assert _compare_everything(fleet, monkeypatch, day0) > 500


def test_after_the_purge_the_answers_still_agree_and_a_purged_body_takes_its_rows(
    fleet: Session, monkeypatch: pytest.MonkeyPatch, day0: datetime
) -> None:
    cutoff = day0 + timedelta(days=2)
    _purge(fleet, cutoff)
    # Periods from the merge horizon on are answered from image presence, earlier ones (which
    # the surfaces refuse: before the retention horizon) by evaluating what is left.
    assert image_presence.covers(fleet, cutoff)
    assert not image_presence.covers(fleet, cutoff - timedelta(seconds=1))
    assert _compare_everything(fleet, monkeypatch, day0) > 300
    # A body no version or object references any more (the purge keeps bodies; one that
    # deletes them takes their index rows with them, by the foreign key's cascade).
    orphans = (
        fleet.execute(
            text(
                "SELECT content_hash FROM manifest_bodies b WHERE NOT EXISTS (SELECT 1 FROM "
                "manifest_versions v WHERE v.content_hash = b.content_hash) AND NOT EXISTS "
                "(SELECT 1 FROM objects o WHERE o.current_hash = b.content_hash)"
            )
        )
        .scalars()
        .all()
    )
    indexed_orphans = [
        h for h in orphans if fleet.scalar(select(func.count()).where(BodyImage.content_hash == h))
    ]
    assert indexed_orphans, "the purge left no indexed body unreferenced"
    fleet.execute(delete(ManifestBody).where(ManifestBody.content_hash.in_(indexed_orphans)))
    left = fleet.scalar(select(func.count()).where(BodyImage.content_hash.in_(indexed_orphans)))
    assert left == 0
    assert _compare_everything(fleet, monkeypatch, day0) > 300


def test_the_index_holds_what_the_product_function_computes_and_backfill_restores_it(
    fleet: Session,
) -> None:
    jsonb = fleet.get_bind().dialect.name == "postgresql"
    stored = {
        (h, o, s, repr(v))
        for h, o, s, v in fleet.execute(
            select(BodyImage.content_hash, BodyImage.ord, BodyImage.shape, BodyImage.value)
        )
    }
    expected = {
        (h, o, s, repr(v))
        for h, body in fleet.execute(select(ManifestBody.content_hash, ManifestBody.body))
        for o, (s, v) in enumerate(image_occurrences(body, jsonb_order=jsonb))
    }
    assert stored == expected
    assert any(v == "None" for _h, _o, _s, v in stored)  # a JSON null kept as such
    fleet.execute(delete(BodyImage))
    assert backfill(fleet, batch_size=3) == len(expected)
    again = {
        (h, o, s, repr(v))
        for h, o, s, v in fleet.execute(
            select(BodyImage.content_hash, BodyImage.ord, BodyImage.shape, BodyImage.value)
        )
    }
    assert again == expected
    assert backfill(fleet) == len(expected)  # again: rows already there are kept, not doubled
    assert fleet.scalar(select(func.count()).select_from(BodyImage)) == len(expected)


def _purge(session: Session, cutoff: datetime) -> None:
    """The expiry purge's versions, deleted objects and image presence merge, in small batches."""
    while (
        purge_versions(session, cutoff=cutoff, batch_size=3)
        or purge_deleted_objects(session, cutoff=cutoff, batch_size=3)
        or purge_image_changes(session, cutoff=cutoff, batch_size=3)
    ):
        pass


def _presence_rows(session: Session) -> set[tuple[Any, ...]]:
    """`image_changes` as (group key, the group's columns, instant, counts)."""
    return {
        (g.key, g.cluster_id, g.kind, g.namespace, g.shape, repr(g.value), c.at, c.started, c.ended)
        for c, g in session.execute(
            select(ImageChange, ImageGroup).join(ImageGroup, ImageGroup.id == ImageChange.group_id)
        )
    }


def _present_rows(session: Session) -> set[tuple[Any, ...]]:
    """`image_present` as (group key, its columns, slots): its columns are its group's."""
    for p, g in session.execute(
        select(ImagePresent, ImageGroup).join(ImageGroup, ImageGroup.id == ImagePresent.group_id)
    ):
        assert (p.cluster_id, p.kind, p.namespace, p.shape, repr(p.value)) == (
            g.cluster_id,
            g.kind,
            g.namespace,
            g.shape,
            repr(g.value),
        )
    return {
        (g.key, p.cluster_id, p.kind, p.namespace, p.shape, repr(p.value), p.slots)
        for p, g in session.execute(
            select(ImagePresent, ImageGroup).join(
                ImageGroup, ImageGroup.id == ImagePresent.group_id
            )
        )
    }


def _checkpoint_rows(session: Session) -> set[tuple[Any, ...]]:
    """Every checkpoint (with no slot row: `None`) and its rows, by group key."""
    rows: set[tuple[Any, ...]] = {
        (c.at, key, slots)
        for c, key, slots in session.execute(
            select(ImageCheckpoint, ImageGroup.key, ImageCheckpointSlots.slots)
            .outerjoin(ImageCheckpointSlots, ImageCheckpointSlots.at == ImageCheckpoint.at)
            .outerjoin(ImageGroup, ImageGroup.id == ImageCheckpointSlots.group_id)
        )
    }
    return rows


def _assert_presence_is_what_backfill_computes(session: Session) -> int:
    """`image_changes`, `image_present` and the checkpoints as snapshot applies and purges
    left them equal a backfill from the versions left (merged at the same horizon, if the
    purge merged, and checkpointed at the same instants); no row is empty. Returns the
    `image_changes` row count."""
    kept, present = _presence_rows(session), _present_rows(session)
    checkpoints = _checkpoint_rows(session)
    assert all(row[-2] or row[-1] for row in kept), "a row whose counts are zero was kept"
    assert all(row[-1] > 0 for row in present), "a group with no current slot was kept"
    assert all(row[-1] != 0 for row in checkpoints), "a checkpoint row with 0 slots was kept"
    instants = sorted({row[0] for row in checkpoints})
    merged = image_presence.horizon(session)
    session.execute(delete(ImageCheckpointSlots))
    session.execute(delete(ImageCheckpoint))
    session.execute(delete(ImageChange))
    session.execute(delete(ImagePresent))
    written = image_presence.backfill(session)
    if merged is None:
        assert written == len(kept)
    else:
        while image_presence.merge_before(session, cutoff=merged, batch_size=2):
            pass
    assert _presence_rows(session) == kept
    assert _present_rows(session) == present
    if instants:  # the same checkpoints, taken again from scratch
        image_presence.take_checkpoints(session, until=instants[-1])
        assert _checkpoint_rows(session) == checkpoints
    return len(kept)


def test_image_presence_is_kept_exact_by_applies_and_purges(fleet: Session, day0: datetime) -> None:
    rows = first = _assert_presence_is_what_backfill_computes(fleet)
    assert rows > 20
    ended = fleet.scalar(select(func.count()).where(ImageChange.ended > 0))
    assert ended, "no slot ended: the fleet's history changed nothing"
    for days in (2, 3, 5):  # purge deeper and deeper: versions, then deleted objects
        cutoff = day0 + timedelta(days=days)
        _purge(fleet, cutoff)
        assert image_presence.horizon(fleet) == cutoff
        assert not fleet.scalar(select(func.count()).where(ImageChange.at < cutoff))
        left = _assert_presence_is_what_backfill_computes(fleet)
        assert left <= rows
        rows = left
    assert rows < first, "the merge left as many rows as the history had"


def test_checkpoints_stay_exact_after_a_late_apply_and_purges(
    fleet: Session, monkeypatch: pytest.MonkeyPatch, day0: datetime
) -> None:
    """Daily checkpoints answer every search as the generic evaluation does, and stay what a
    rebuild computes when a snapshot received before some of them is applied after they were
    taken, and when the purge merges and drops the ones before its cutoff."""
    assert image_presence.take_checkpoints(fleet) > 3
    instants = list(fleet.scalars(select(ImageCheckpoint.at).order_by(ImageCheckpoint.at)))
    # the midnights of the days the history spans (it starts at day0, ends on day 3)
    assert len(instants) >= 3
    assert all(at == at.replace(hour=0, minute=0, second=0, microsecond=0) for at in instants)
    assert image_presence.take_checkpoints(fleet) == 0  # nothing missing
    assert _compare_everything(fleet, monkeypatch, day0) > 500
    _assert_presence_is_what_backfill_computes(fleet)
    before = _checkpoint_rows(fleet)
    # stage, last pushed on day 1 at 13:00, sends a snapshot received an hour later (before
    # the checkpoints of the next midnights) that is applied only now: new images, objects gone.
    late = day0 + timedelta(days=1, hours=14)
    assert any(at > late for at in instants)
    push_at(fleet, "stage", [web("shop/web:4", init="busybox:3")], late)
    assert _checkpoint_rows(fleet) != before, "the late apply left the checkpoints as they were"
    assert image_presence.take_checkpoints(fleet) == 0
    _assert_presence_is_what_backfill_computes(fleet)
    assert _compare_everything(fleet, monkeypatch, day0) > 500
    # The searches read a checkpoint and the rows after it: rows before it no longer matter.
    moment = instants[-1] + timedelta(hours=1)
    period = Period(moment, moment)
    assert image_presence.checkpoint_for(fleet, moment) == instants[-1]
    found = _both_ways(fleet, monkeypatch, "$..image", distinct=True, period=period)
    assert found[0] == found[1]
    assert found[0][2]
    savepoint = fleet.begin_nested()
    fleet.execute(delete(ImageChange).where(ImageChange.at <= instants[-1]))
    alone = run_search(fleet, "$..image", timeout_seconds=LIMIT, distinct=True, period=period)
    assert _answer(alone) == found[0]
    savepoint.rollback()
    for days in (2, 3):
        cutoff = day0 + timedelta(days=days)
        _purge(fleet, cutoff)
        kept = list(fleet.scalars(select(ImageCheckpoint.at).order_by(ImageCheckpoint.at)))
        assert kept == [at for at in instants if at >= cutoff]
        _assert_presence_is_what_backfill_computes(fleet)
        assert _compare_everything(fleet, monkeypatch, day0) > 300


def test_the_present_is_the_sum_of_the_changes_per_group(fleet: Session) -> None:
    """`image_present` holds, per group with current slots, its rows' started - ended."""
    summed = {
        group: int(n)
        for group, n in fleet.execute(
            select(
                ImageChange.group_id, func.sum(ImageChange.started - ImageChange.ended)
            ).group_by(ImageChange.group_id)
        )
        if n
    }
    assert summed
    present = {
        group: n for group, n in fleet.execute(select(ImagePresent.group_id, ImagePresent.slots))
    }
    assert present == summed


def test_the_present_from_image_presence_is_every_live_object_s_images(
    fleet: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Now, `distinct`: the slots of `image_present` are the live objects' images
    (a search whose answer would differ if a deletion or a revival were not recorded)."""
    indexed, generic = _both_ways(fleet, monkeypatch, "$..image", distinct=True)
    assert indexed == generic
    found = {value: n for value, n, _clusters in indexed[2] if isinstance(value, str)}
    assert found["umlaut:2"] == 2  # prod's widget v2 and dev's revived widget v2
    assert "umlaut:1" not in found
    assert "shop/app:4" not in found  # stage's pod q was deleted


def test_recognised_paths_by_their_steps_not_their_spelling() -> None:
    for path in RECOGNISED:
        assert recognise(parse(path)) is not None, path
    for path in NOT_RECOGNISED:
        assert recognise(parse(path)) is None, path
    assert recognise(parse("$..image")) == recognise(parse("$..['image']"))
    assert recognise(parse("$.spec.template.spec.containers[*].image")) == recognise(
        parse("$['spec']['template'][\"spec\"].containers[*]['image']")
    )
    assert recognise(parse("$..image")).shapes is None  # type: ignore[union-attr]


def test_shapes_follow_lax_mode() -> None:
    assert shapes_of([Member("a"), Index(None), Member("image")]) == {
        '."a"."image"',
        '."a"[]."image"',
        '."a"[][]."image"',
        '[]."a"."image"',
        '[]."a"[]."image"',
        '[]."a"[][]."image"',
    }


def test_occurrences_in_walk_order_with_jsonb_key_order() -> None:
    body = {"zz": {"image": "z"}, "a": {"image": "a"}, "image": "top", "b": [[{"image": "n"}]]}
    as_stored = image_occurrences(body, jsonb_order=False)
    assert as_stored == [
        ('."image"', "top"),
        ('."zz"."image"', "z"),
        ('."a"."image"', "a"),
        ('."b"[][]."image"', "n"),
    ]
    # jsonb: keys by length, then bytes ("a", "b", "zz", "image"); an object's own image first.
    assert [v for _s, v in image_occurrences(body, jsonb_order=True)] == ["top", "a", "n", "z"]


def test_a_snapshot_received_before_the_applied_state_is_applied_at_it(
    fleet: Session, monkeypatch: pytest.MonkeyPatch, day0: datetime
) -> None:
    """stage's snapshots are applied at day 0, day 1 12:00 and 13:00; one whose receipt time
    says day 1 00:00 (receipt times can run backwards between ingest processes) is applied
    only now: as of stage's state, day 1 13:00, so no version ends before it began, and every
    search still answers as the generic evaluation. (Applied as of its receipt time, it
    superseded versions before they began, and image presence and the generic evaluation then
    disagreed on every run.)"""
    push_at(fleet, "stage", [web("shop/web:4", init="busybox:3")], day0 + timedelta(days=1))
    inverted = fleet.scalar(
        select(func.count())
        .select_from(ManifestVersion)
        .where(ManifestVersion.superseded_at < ManifestVersion.first_seen)
    )
    assert inverted == 0
    started = fleet.scalars(
        select(ManifestVersion.first_seen)
        .join(KubeObject, KubeObject.id == ManifestVersion.object_id)
        .where(KubeObject.cluster_id == "stage", ManifestVersion.superseded_at.is_(None))
    ).all()
    assert started and all(at == day0 + timedelta(days=1, hours=13) for at in started)
    assert _compare_everything(fleet, monkeypatch, day0) > 500


def test_versions_that_began_at_one_instant_are_listed_in_the_order_they_were_stored(
    any_db_session: Session, monkeypatch: pytest.MonkeyPatch, day0: datetime
) -> None:
    """A snapshot received before its cluster's applied state, applied as of that state,
    leaves each object two versions that began at the same instant (the one it ended at that
    instant and its own). Back in time, every listing orders an object's versions by when
    they began, then by when they were stored: the indexed and the generic evaluation alike,
    and the same across runs (ordered by when they began only, PostgreSQL returned such ties
    in whichever order its plan produced, and the two evaluations differed now and then)."""
    session = any_db_session
    make_cluster(session, "tie")
    names = [f"d{n:02}" for n in range(40)]

    def fleet_of(image: str) -> list[dict[str, Any]]:
        return [deployment(name, namespace="shop", image=image) for name in names]

    push_at(session, "tie", fleet_of("app:1"), day0)
    push_at(session, "tie", fleet_of("app:2"), day0 + timedelta(hours=2))
    push_at(session, "tie", fleet_of("app:3"), day0 + timedelta(hours=1))  # received earlier
    period = Period(day0 + timedelta(hours=1), day0 + timedelta(hours=3))
    expected = [
        (name, [image], began)
        for name in names
        for image, began in (
            ("app:1", day0),
            ("app:2", day0 + timedelta(hours=2)),
            ("app:3", day0 + timedelta(hours=2)),
        )
    ]
    for limit in (1000, 41):
        indexed, generic = _both_ways(
            session, monkeypatch, "$..image", period=period, limit=limit, cluster_ids=["tie"]
        )
        listed = [(ref.name, values, when.first_seen) for _c, ref, values, when in indexed[1]]
        assert listed == expected[:limit]
        assert indexed == generic
