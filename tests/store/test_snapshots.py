"""Snapshot staging and materialisation: history, deduplication, deltas (PostgreSQL and SQLite)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts.hashing import content_hash
from contracts.resources import ResourceRef
from store.errors import InvalidSnapshot, UnknownBaseSnapshot
from store.manifests import current_manifests, find_object, object_history
from store.models import (
    Cluster,
    KubeObject,
    ManifestBody,
    ManifestVersion,
    Snapshot,
    SnapshotDocument,
    SnapshotItem,
)
from store.snapshots import (
    apply_pending,
    decode_document,
    prepare_objects,
    stage_snapshot,
    store_bodies,
)
from tests.support.factories import make_cluster
from tests.support.manifests import (
    cluster_objects,
    config_map,
    delta_envelope,
    deployment,
    digest_of,
    full_envelope,
)


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def _push(session: Session, cluster_id: str, envelope: dict) -> None:
    stage_snapshot(session, cluster_id, envelope=envelope)
    apply_pending(session, cluster_id)


def _current(session: Session, cluster_id: str) -> dict[str, dict]:
    return {m.ref.key: m.body for m in current_manifests(session, cluster_id=cluster_id)}


def test_unchanged_pushes_store_each_body_once(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "prod-eu")
    objects = cluster_objects(1000)
    for _ in range(10):
        _push(session, "prod-eu", full_envelope(objects))
    assert _count(session, ManifestBody) == 1000
    assert _count(session, ManifestVersion) == 1000
    # Staged documents (and items) are a work queue: nothing of them stays once applied.
    assert _count(session, SnapshotDocument) == 0
    assert _count(session, SnapshotItem) == 0

    changed = [*objects]
    changed[4] = {**objects[4], "data": {"key": "new value"}}
    _push(session, "prod-eu", full_envelope(changed))
    assert _count(session, ManifestBody) == 1001
    assert _count(session, ManifestVersion) == 1001


def test_a_push_rewrites_only_what_changed_yet_history_knows_when_each_was_seen(
    any_db_session: Session,
) -> None:
    """Unchanged objects and versions are not rewritten per push; their last_seen is the
    cluster's latest applied state, while an ended version keeps the time it ended."""
    session = any_db_session
    make_cluster(session, "seen")
    objects = cluster_objects(20)
    _push(session, "seen", full_envelope(objects))
    steady = find_object(session, "seen", ResourceRef.of(objects[0]))
    first_push = object_history(session, steady.id)[0].last_seen
    versions_before = {
        v.id: (v.last_seen, v.superseded_at) for v in session.scalars(select(ManifestVersion))
    }

    changed = [*objects]
    changed[5] = {**objects[5], "data": {"key": "second"}}
    _push(session, "seen", full_envelope(changed))
    cluster = session.get(Cluster, "seen")
    (unchanged,) = object_history(session, steady.id)
    assert unchanged.last_seen == cluster.state_updated_at > first_push
    versions_after = {
        v.id: (v.last_seen, v.superseded_at) for v in session.scalars(select(ManifestVersion))
    }
    rewritten = {vid for vid, seen in versions_before.items() if versions_after[vid] != seen}
    assert len(rewritten) == 1  # only the superseded version of the changed object
    old, new = object_history(session, find_object(session, "seen", ResourceRef.of(changed[5])).id)
    assert old.superseded_at == old.last_seen == cluster.state_updated_at
    assert new.last_seen == cluster.state_updated_at and new.superseded_at is None


def test_duplicate_digest_is_acknowledged_without_storing(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "c1")
    envelope = full_envelope(cluster_objects(20))
    first = stage_snapshot(session, "c1", envelope=envelope)
    second = stage_snapshot(session, "c1", envelope=envelope)
    assert not first.duplicate
    assert second.duplicate
    assert second.snapshot_id == first.snapshot_id
    assert _count(session, Snapshot) == 1


def test_full_snapshot_with_wrong_digest_is_refused_and_stores_nothing(
    any_db_session: Session,
) -> None:
    session = any_db_session
    make_cluster(session, "c1")
    envelope = full_envelope(cluster_objects(5))
    envelope["digest"] = "sha256:" + "0" * 64
    with pytest.raises(InvalidSnapshot):
        stage_snapshot(session, "c1", envelope=envelope)
    assert _count(session, Snapshot) == 0


def test_delta_applies_changes_and_removals(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "c1")
    base = cluster_objects(10)
    _push(session, "c1", full_envelope(base))

    updated = deployment("app-1", namespace="team-1", image="registry/app:patched")
    added = config_map("brand-new", namespace="team-9")
    envelope, result = delta_envelope(base=base, changed=[updated, added], removed=[base[0]])
    _push(session, "c1", envelope)

    current = _current(session, "c1")
    assert set(current) == {ResourceRef.of(o).key for o in result}
    assert (
        current[ResourceRef.of(updated).key]["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry/app:patched"
    )
    removed_obj = find_object(session, "c1", ResourceRef.of(base[0]))
    assert removed_obj is not None and removed_obj.deleted_at is not None

    history = object_history(session, find_object(session, "c1", ResourceRef.of(updated)).id)
    assert [v.body["spec"]["template"]["spec"]["containers"][0]["image"] for v in history] == [
        "registry/app:1",
        "registry/app:patched",
    ]
    assert history[0].superseded_at is not None and history[1].superseded_at is None


def test_delta_against_unknown_base_is_refused(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "c1")
    base = cluster_objects(3)
    _push(session, "c1", full_envelope(base))
    envelope, _ = delta_envelope(base=cluster_objects(4), changed=[config_map("x")])
    with pytest.raises(UnknownBaseSnapshot):
        stage_snapshot(session, "c1", envelope=envelope)


def test_object_that_disappears_and_returns_is_revived(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "c1")
    objects = cluster_objects(4)
    _push(session, "c1", full_envelope(objects))
    _push(session, "c1", full_envelope(objects[1:]))
    _push(session, "c1", full_envelope(objects))
    assert set(_current(session, "c1")) == {ResourceRef.of(o).key for o in objects}
    assert _count(session, KubeObject) == 4


def test_recreated_object_with_new_uid_is_a_new_object(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "c1")
    original = config_map("settings")
    _push(session, "c1", full_envelope([original]))
    recreated = {**original, "metadata": {**original["metadata"], "uid": "another-uid"}}
    _push(session, "c1", full_envelope([recreated]))
    rows = session.scalars(select(KubeObject).order_by(KubeObject.id)).all()
    assert [(r.uid, r.deleted_at is None) for r in rows] == [
        ("uid-cm-default-settings", False),
        ("another-uid", True),
    ]


def test_server_noise_is_dropped_before_storing(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "c1")
    noisy = config_map("noisy")
    noisy["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    noisy["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        "team": "payments",
    }
    _push(session, "c1", full_envelope([noisy]))
    body = next(iter(_current(session, "c1").values()))
    assert "managedFields" not in body["metadata"]
    assert body["metadata"]["annotations"] == {"team": "payments"}


def test_numbers_and_digit_strings_read_back_exactly(any_db_session: Session) -> None:
    """JSON columns are decoded by orjson with a standard-library fallback: every value the
    ingest accepts (64-bit integers, floats, long digit strings, NaN-free) reads back equal."""
    session = any_db_session
    make_cluster(session, "c1")
    odd = config_map("numbers")
    odd["data"] = {"id": "9" * 40, "unicode": "caf\u00e9 \u2603"}
    odd["spec"] = {
        "max": 2**64 - 1,
        "min": -(2**63),
        "ratio": 0.1,
        "tiny": 5e-324,
        "huge": 1.7976931348623157e308,
        "nested": [[1, 2.5, None, True]],
    }
    _push(session, "c1", full_envelope([odd]))
    session.expire_all()
    body = next(iter(_current(session, "c1").values()))
    assert body["data"] == odd["data"]
    assert body["spec"] == odd["spec"]
    assert type(body["spec"]["max"]) is int and type(body["spec"]["ratio"]) is float


def test_text_with_copys_special_characters_reads_back_exactly(any_db_session: Session) -> None:
    """PostgreSQL COPYs each new body as the canonical JSON its hash is of: backslashes,
    escaped tabs and line ends, quotes, `\\N` and non-ASCII text read back as pushed, with
    and without floats (the two encoders)."""
    session = any_db_session
    make_cluster(session, "c1")
    text = 'C:\\path\\n \\N "quoted"\ttab\nline\r\\t caf\u00e9 \U0001f600 \x01 end\\'
    plain = config_map("plain")
    plain["data"] = {"text": text, "back\\slash key": "\\"}
    floats = config_map("floats")
    floats["data"] = {"text": text}
    floats["spec"] = {"ratio": 0.5}
    _push(session, "c1", full_envelope([floats]))
    make_cluster(session, "c2")
    # As the ingest stages a body that holds no float: canonical JSON written by orjson.
    stage_snapshot(session, "c2", envelope=full_envelope([plain]), floats=False)
    apply_pending(session, "c2")
    session.expire_all()
    bodies = {
        b["metadata"]["name"]: b
        for cluster in ("c1", "c2")
        for b in _current(session, cluster).values()
    }
    assert bodies["plain"]["data"] == plain["data"]
    assert bodies["floats"]["data"] == floats["data"] and bodies["floats"]["spec"] == {"ratio": 0.5}


def test_current_manifests_filters_by_cluster_and_kind(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "a")
    make_cluster(session, "b")
    _push(session, "a", full_envelope(cluster_objects(6)))
    _push(session, "b", full_envelope(cluster_objects(4)))
    assert len(list(current_manifests(session))) == 10
    assert len(list(current_manifests(session, cluster_id="b"))) == 4
    deployments = list(current_manifests(session, kind="Deployment"))
    assert len(deployments) == 3 + 2
    assert {m.ref.kind for m in deployments} == {"Deployment"}


def test_a_delta_whose_result_mismatches_fails_without_changing_state(
    any_db_session: Session,
) -> None:
    session = any_db_session
    make_cluster(session, "c1")
    base = cluster_objects(3)
    _push(session, "c1", full_envelope(base))
    envelope, _ = delta_envelope(base=base, changed=[config_map("extra")])
    envelope["digest"] = digest_of(base[:1])  # lies about the result
    stage_snapshot(session, "c1", envelope=envelope)
    result = apply_pending(session, "c1")
    assert result.failed and not result.applied
    assert set(_current(session, "c1")) == {ResourceRef.of(o).key for o in base}
    # Nothing of the failed snapshot stays: neither its document nor the body it brought.
    assert _count(session, SnapshotDocument) == 0
    assert _count(session, ManifestBody) == len(base)


def test_a_staged_snapshot_is_its_document_until_applied(any_db_session: Session) -> None:
    """Staging stores the snapshot row and the document, nothing else; applying splits it."""
    session = any_db_session
    make_cluster(session, "c1")
    envelope = full_envelope(cluster_objects(6))
    staged = stage_snapshot(session, "c1", envelope=envelope)
    document = session.get(SnapshotDocument, staged.snapshot_id)
    assert document is not None and document.floats is True
    assert decode_document(document.document) == envelope
    assert _count(session, ManifestBody) == _count(session, ManifestVersion) == 0
    assert apply_pending(session, "c1").applied == [staged.snapshot_id]
    assert _count(session, ManifestBody) == _count(session, ManifestVersion) == 6
    assert _count(session, SnapshotDocument) == 0


def test_a_snapshot_staged_as_items_before_0014_applies_the_same(
    any_db_session: Session,
) -> None:
    """A snapshot left pending by an older server (its bodies stored, its items listed in
    snapshot_items, no document) applies to the same state as one staged now."""
    session = any_db_session
    base = cluster_objects(5)
    changed = [*base[1:], config_map("added")]
    for cluster_id in ("old", "new"):
        make_cluster(session, cluster_id)
        _push(session, cluster_id, full_envelope(base))
    envelope = full_envelope(changed)
    staged = stage_snapshot(session, "old", envelope=envelope)
    session.execute(
        SnapshotDocument.__table__.delete().where(
            SnapshotDocument.snapshot_id == staged.snapshot_id
        )
    )
    prepared = prepare_objects(changed)
    store_bodies(session, prepared)
    session.add_all(
        SnapshotItem(
            snapshot_id=staged.snapshot_id,
            ref_key=p.ref.key,
            uid=p.uid,
            content_hash=p.content_hash,
        )
        for p in prepared
    )
    session.flush()
    stage_snapshot(session, "new", envelope=envelope)
    assert apply_pending(session, "old").applied == [staged.snapshot_id]
    assert apply_pending(session, "new").applied
    assert _current(session, "old") == _current(session, "new") != {}
    assert _count(session, SnapshotItem) == _count(session, SnapshotDocument) == 0


def test_cluster_scoped_objects_are_stored_without_the_namespace_their_manifest_claims(
    any_db_session: Session,
) -> None:
    """The API server ignores `metadata.namespace` on cluster-scoped kinds; so does the store."""
    session = any_db_session
    make_cluster(session, "prod-eu")
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "platform-admin", "namespace": "shop", "uid": "uid-cr"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }
    _push(session, "prod-eu", full_envelope([role, config_map("app", namespace="shop")]))
    stored = {
        (o.kind, o.namespace, o.name)
        for o in session.scalars(select(KubeObject).where(KubeObject.cluster_id == "prod-eu"))
    }
    assert ("ClusterRole", "", "platform-admin") in stored
    assert ("ConfigMap", "shop", "app") in stored
    current = _current(session, "prod-eu")
    assert "rbac.authorization.k8s.io/v1|ClusterRole||platform-admin" in current
    assert find_object(
        session,
        "prod-eu",
        ResourceRef("rbac.authorization.k8s.io/v1", "ClusterRole", None, "platform-admin"),
    )


def test_float_free_objects_hash_the_same_with_either_encoder() -> None:
    """`prepare_objects(floats=False)` (orjson) gives the standard library's hashes and sizes."""
    objects = cluster_objects(20)
    objects[0]["metadata"]["annotations"] = {"é\u2028": '\x00\x1f\x7f"\\ \U0001f600', "": "Z"}
    objects[1]["spec"] = {"big": 2**64 - 1, "small": -(2**63), "beyond": 2**70, "t": True}
    slow = prepare_objects(objects)
    fast = prepare_objects(objects, floats=False)
    assert [(p.content_hash, p.size_bytes) for p in fast] == [
        (p.content_hash, p.size_bytes) for p in slow
    ]
    assert slow[1].content_hash == content_hash(objects[1])
