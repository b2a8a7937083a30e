"""The fleet-scale loader's rows are what the product would store for the same manifests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bench.fleet_load import ClusterShape, cluster_rows
from contracts.hashing import canonical_json, content_hash

ROWS = cluster_rows(3, shape=ClusterShape(objects=40, days=31), now=datetime.now(UTC))


def _bodies() -> dict[str, dict]:
    bodies = {}
    for line in ROWS.bodies.splitlines():
        chash, text, size, _ = line.split("\t")
        body = json.loads(text.replace("\\\\", "\\"))
        # Stored under the product's content hash of its canonical JSON, and its size.
        assert content_hash(body) == chash
        assert len(canonical_json(body)) == int(size)
        bodies[chash] = body
    return bodies


def test_bodies_are_canonical_content_addressed_and_deduplicated() -> None:
    bodies = _bodies()
    versions = [line.split("\t") for line in ROWS.versions.splitlines()]
    # 28 Deployments x 8 versions + 12 ConfigMaps x 2; 4 and 2 distinct bodies each.
    assert ROWS.count == len(versions) == 28 * 8 + 12 * 2
    assert len(bodies) == 28 * 4 + 12 * 2
    assert {v[2] for v in versions} == set(bodies)
    objects = [line.split("\t") for line in ROWS.objects.splitlines()]
    current = {int(o[-1]): o[-2] for o in objects}
    assert all(current[int(v[0])] == v[2] for v in versions if v[5] == "\\N")


def test_image_index_rows_are_what_the_product_indexes() -> None:
    image_index = pytest.importorskip("store.image_index")
    bodies = _bodies()
    expected = sorted(
        (row["content_hash"], row["ord"], row["shape"], row["value"])
        for row in image_index.index_rows(bodies.items(), jsonb_order=True)
    )
    loaded = sorted(
        (chash, int(ord_), shape, json.loads(value))
        for chash, ord_, shape, value in (line.split("\t") for line in ROWS.images.splitlines())
    )
    assert loaded == expected and len(loaded) == 28 * 4 * 2


def test_image_presence_rows_are_what_the_product_records() -> None:
    """`image_groups`, `image_changes` and `image_present` as `store.image_presence` records
    the versions: per group (cluster, kind, namespace, shape, value; named by an id, keyed by
    `group_key`) and instant, the slots (image-index rows of the version's body) begun at its
    first_seen and ended at its superseded_at."""
    image_presence = pytest.importorskip("store.image_presence")
    objects = {o[0]: o for o in (line.split("\t") for line in ROWS.objects.splitlines())}
    images: dict[str, list[tuple[str, str]]] = {}
    for chash, _ord, shape, value in (line.split("\t") for line in ROWS.images.splitlines()):
        images.setdefault(chash, []).append((shape, json.loads(value)))
    expected: dict[tuple[str, str], list[int]] = {}
    groups: dict[str, tuple[str, str, str, str, str]] = {}
    for _id, object_id, chash, first, _last, ended in (
        line.split("\t") for line in ROWS.versions.splitlines()
    ):
        obj = objects[object_id]
        for shape, value in images.get(chash, []):
            group = (obj[1], obj[4], obj[5], shape, value)
            key = image_presence.group_key(*group)
            groups[key] = group
            expected.setdefault((key, first), [0, 0])[0] += 1
            if ended != "\\N":
                expected.setdefault((key, ended), [0, 0])[1] += 1
    keys: dict[str, str] = {}
    for group_id, key, cluster, kind, namespace, shape, value in (
        line.split("\t") for line in ROWS.groups.splitlines()
    ):
        assert groups[key] == (cluster, kind, namespace, shape, json.loads(value))
        assert group_id not in keys and 300_000 < int(group_id) < 400_000  # cluster 3's ids
        keys[group_id] = key
    assert set(keys.values()) == set(groups)
    loaded: dict[tuple[str, str], list[int]] = {}
    for group_id, at, started, ended in (line.split("\t") for line in ROWS.changes.splitlines()):
        key = keys[group_id]
        assert (key, at) not in loaded
        loaded[key, at] = [int(started), int(ended)]
    assert loaded == expected and len(loaded) > 28
    now: dict[str, int] = {}
    for (key, _at), (started, ended) in expected.items():
        now[key] = now.get(key, 0) + started - ended
    present = {}
    for group_id, cluster, kind, namespace, shape, value, slots in (
        line.split("\t") for line in ROWS.present.splitlines()
    ):
        key = keys[group_id]
        assert groups[key] == (cluster, kind, namespace, shape, json.loads(value))
        present[key] = int(slots)
    assert present == {key: n for key, n in now.items() if n} and present


def test_checkpoint_rows_count_the_cluster_as_the_product_counts_it() -> None:
    """With checkpoints already taken, a cluster's `image_checkpoint_slots` rows are, per
    checkpoint D and group, the sum of its `image_changes` rows at or before D (no row when 0):
    what `count_clusters_in_checkpoints` adds for a cluster loaded after them."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    checkpoints = [midnight - timedelta(days=d) for d in (30, 20, 7, 1)]
    rows = cluster_rows(
        3, shape=ClusterShape(objects=40, days=31), now=now, checkpoints=checkpoints
    )
    changes = [line.split("\t") for line in rows.changes.splitlines()]
    expected = {}
    for checkpoint in checkpoints:
        for group_id, at, started, ended in changes:
            if datetime.fromisoformat(at) <= checkpoint:
                key = (checkpoint, group_id)
                expected[key] = expected.get(key, 0) + int(started) - int(ended)
    loaded = {}
    for at, group_id, slots in (line.split("\t") for line in rows.checkpoints.splitlines()):
        assert (datetime.fromisoformat(at), group_id) not in loaded
        loaded[datetime.fromisoformat(at), group_id] = int(slots)
    assert loaded == {key: n for key, n in expected.items() if n}
    assert {at for at, _ in loaded} == set(checkpoints)
    assert ROWS.checkpoints == ""  # no checkpoint taken: no rows
