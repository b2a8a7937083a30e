"""`store.manifests.bodies_and_labels`: whole bodies for some content hashes, only the labels
for others, in one read; the same as reading the bodies (PostgreSQL reads the labels in the
database, SQLite from the bodies)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from contracts.hashing import content_hash
from store.manifests import bodies_and_labels, bodies_by_hash
from store.snapshots import apply_pending, stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import config_map, deployment, full_envelope


def test_bodies_and_labels_reads_what_the_bodies_hold(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "prod")
    labelled = deployment("web")
    labelled["metadata"]["labels"] = {"team": "shop", "tier": "front"}
    null_labels = config_map("nulls")
    null_labels["metadata"]["labels"] = None
    listed = config_map("listed")
    listed["metadata"]["labels"] = ["not", "a", "map"]
    objects: list[dict[str, Any]] = [labelled, deployment("api"), config_map("bare")]
    objects += [null_labels, listed]
    stage_snapshot(session, "prod", envelope=full_envelope(objects))
    apply_pending(session, "prod")
    hashes = [content_hash(o) for o in objects]
    stored = bodies_by_hash(session, hashes)
    assert len(stored) == len(objects)

    whole = hashes[:2]
    labels_of = [*hashes[1:], "0" * 64]  # one both ways, one not stored
    bodies, labels = bodies_and_labels(session, whole, labels_of=labels_of)

    assert bodies == {h: stored[h] for h in whole}
    assert labels == {h: (stored[h]["metadata"]).get("labels") for h in hashes[1:]}
    assert labels[hashes[1]] == {"app": "api"}
    assert labels[hashes[2]] is None  # no labels
    assert labels[hashes[3]] is None  # null
    assert labels[hashes[4]] == ["not", "a", "map"]  # as stored: the caller judges
    assert bodies_and_labels(session, [], labels_of=[]) == ({}, {})
