"""Rule results cached by (manifest content hash, rule catalogue version): incremental scans.

Object-rule results depend only on a manifest's content and on the catalogue (rules plus their
configuration), so a body evaluated once is never evaluated again under the same catalogue
version. Cross-resource (cluster) rule results are cached under a key derived from the
cluster's state digest. Cached rows double as the shard results a scan's finalize step merges.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, distinct, func, select, text, tuple_
from sqlalchemy.orm import Session

from store.bulk import (
    affected,
    chunked,
    core_rows,
    insert_absent,
    inserting_absent,
    keyed_json_payload,
    table_of,
)
from store.db import on_postgresql
from store.models import INVENTORY_ROWS, KubeObject, RuleResultCache
from store.types import utcnow


def _state_key(what: str, state_digest: str) -> str:
    return hashlib.sha256(f"{what}\x00{state_digest}".encode()).hexdigest()


def cluster_state_key(state_digest: str) -> str:
    """The cache key (64 hex characters, like a content hash) of a cluster state's rule results."""
    return _state_key("cluster-rules", state_digest)


def cluster_owned_key(state_digest: str) -> str:
    """The cache key of a cluster state's controller-owned objects (a small list kept apart
    from the state's results, so an incremental scan can compare it without loading those)."""
    return _state_key("cluster-owned", state_digest)


def cluster_valid_key(state_digest: str) -> str:
    """The cache key of the content hashes of a cluster state's bodies that are structurally
    valid (schema validity depends only on a body and the release, which the judged catalogue
    version names): a later state's cluster step checks only bodies not listed."""
    return _state_key("cluster-valid", state_digest)


def cluster_reads_key(state_digest: str) -> str:
    """The cache key of which labels a cluster state's cluster rules read
    (`rules.cluster.LabelReads`): a later state whose only changes are labels they did not
    read has the same cluster-rule results."""
    return _state_key("cluster-label-reads", state_digest)


# The catalogue_version of a cluster's image-inventory rows (`store.images`) is this prefix
# and the cluster id: they depend on the cluster's state and history only, not on the
# catalogue, so the clean-up of other catalogue versions keeps them (one row per cluster,
# replaced when its state changes). Bumped when the stored form changes (2: the uses with
# their since values; 3: and the objects whose history they read; 4: and the digest of the
# uses, `uses_digest`, which rows before did not have), so that no row of another
# form is read: those the clean-up deletes. Always under "inventory/", the prefix of the
# rows' index (`store.models.INVENTORY_ROWS`).
INVENTORY_CACHE = "inventory/4:"


def inventory_version(cluster_id: str) -> str:
    """The catalogue_version of a cluster's image-inventory row (`INVENTORY_CACHE`)."""
    return INVENTORY_CACHE + cluster_id


def inventory_row_of(cluster_id: str) -> ColumnElement[bool]:
    """Where a cluster's image-inventory row is (any state's): found through the rows'
    partial index (`store.models.INVENTORY_ROWS`), not by reading every cached result."""
    return and_(
        RuleResultCache.catalogue_version == inventory_version(cluster_id), text(INVENTORY_ROWS)
    )


def cluster_inventory_key(cluster_id: str, state_digest: str, *, snapshot_id: int) -> str:
    """The cache key of a cluster's image inventory (its image uses with their since values,
    `store.images`) in the state with this digest, reached by applying this snapshot (the
    history the since values read is the one up to it)."""
    return _state_key("inventory-uses", f"{cluster_id}\x00{state_digest}\x00{snapshot_id}")


def cached_results(
    session: Session, hashes: Iterable[str], *, catalogue_version: str
) -> dict[str, list[dict[str, Any]]]:
    """Cached results of the given content hashes under one catalogue version (hits only)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for batch in chunked(sorted(set(hashes))):
        rows = core_rows(
            session,
            select(RuleResultCache.content_hash, RuleResultCache.results).where(
                RuleResultCache.catalogue_version == catalogue_version,
                RuleResultCache.content_hash.in_(batch),
            ),
        )
        found.update((chash, res) for chash, res in rows)
    return found


def cached_keys(session: Session, hashes: Iterable[str], *, catalogue_version: str) -> set[str]:
    """Which of the given content hashes have cached results under one catalogue version
    (without reading the results themselves)."""
    found: set[str] = set()
    for batch in chunked(sorted(set(hashes))):
        found.update(
            session.scalars(
                select(RuleResultCache.content_hash).where(
                    RuleResultCache.catalogue_version == catalogue_version,
                    RuleResultCache.content_hash.in_(batch),
                )
            )
        )
    return found


def store_results(
    session: Session,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    catalogue_version: str,
) -> int:
    """Insert results that are not cached yet (idempotent: a redelivered shard changes nothing).

    Callers store what they just found uncached: the rows are COPYed straight into the table
    (`insert_absent`), and only when another scan cached one of them meanwhile does the
    batch go through `insert_ignoring_conflicts`."""
    rows = _rows(results, catalogue_version=catalogue_version)
    insert_absent(session, table_of(RuleResultCache), rows, payload=_payload(session, rows))
    return len(rows)


@contextmanager
def storing_results(
    session: Session,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    catalogue_version: str,
) -> Iterator[None]:
    """`store_results` while the block computes something else (`bulk.inserting_absent`:
    PostgreSQL stores the rows meanwhile); the block must not use the session."""
    rows = _rows(results, catalogue_version=catalogue_version)
    with inserting_absent(
        session, table_of(RuleResultCache), rows, payload=_payload(session, rows)
    ):
        yield


def _payload(
    session: Session, rows: Sequence[dict[str, Any]]
) -> tuple[list[str], io.BytesIO] | None:
    """The COPY text of `_rows` (PostgreSQL): rows that differ only in their key and their
    results (`bulk.keyed_json_payload`)."""
    if not rows or not on_postgresql(session):
        return None
    first = rows[0]
    return keyed_json_payload(
        table_of(RuleResultCache),
        keys=("content_hash", [row["content_hash"] for row in rows]),
        documents=("results", [row["results"] for row in rows]),
        same={"catalogue_version": first["catalogue_version"], "created_at": first["created_at"]},
    )


def _rows(
    results: Mapping[str, Sequence[Mapping[str, Any]]], *, catalogue_version: str
) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "content_hash": chash,
            "catalogue_version": catalogue_version,
            "results": [r if type(r) is dict else dict(r) for r in found],
            "created_at": now,
        }
        for chash, found in results.items()
    ]


def uncached_objects(
    session: Session, cluster_id: str, *, catalogue_version: str, changed_since: int | None = None
) -> list[tuple[int, str]]:
    """(id, content hash) of a cluster's live objects whose current body has no result under
    this version, in id order. `changed_since`: only among objects whose current version is
    newer than this version id (the caller knows the others' bodies have results:
    `changed_since_clause`)."""
    query = (
        select(KubeObject.id, KubeObject.current_hash)
        .outerjoin(
            RuleResultCache,
            and_(
                RuleResultCache.content_hash == KubeObject.current_hash,
                RuleResultCache.catalogue_version == catalogue_version,
            ),
        )
        .where(
            KubeObject.cluster_id == cluster_id,
            KubeObject.deleted_at.is_(None),
            RuleResultCache.content_hash.is_(None),
            *changed_since_clause(changed_since),
        )
        .order_by(KubeObject.id)
    )
    return [(object_id, chash) for object_id, chash in core_rows(session, query)]


def changed_since_clause(changed_since: int | None) -> list[ColumnElement[bool]]:
    """The condition limiting a look-up of uncached bodies to objects whose current version
    is newer than `changed_since` (none when None). A caller passes the version watermark of
    the cluster's last complete scan of the same catalogue version that left nothing
    unevaluated: every body live then has results (results of a catalogue version are only
    deleted with the version), so only objects changed since can lack them, and the look-up
    probes the cache for those instead of for every live object."""
    if changed_since is None:
        return []
    return [KubeObject.current_version_id > changed_since]


def uncached_in_range(
    session: Session,
    cluster_id: str,
    *,
    first_id: int,
    last_id: int,
    catalogue_version: str,
    changed_since: int | None = None,
) -> tuple[int, int, list[str]]:
    """(live objects, distinct bodies, bodies without a cached result) of a cluster's live
    objects with ids in [first_id, last_id]: a shard's work, found in the database.
    `changed_since`: as for `uncached_objects`."""
    in_range = _in_range(cluster_id, first_id=first_id, last_id=last_id)
    objects, bodies = range_counts(session, cluster_id, first_id=first_id, last_id=last_id)
    missing = core_rows(
        session,
        select(KubeObject.current_hash)
        .distinct()
        .outerjoin(
            RuleResultCache,
            and_(
                RuleResultCache.content_hash == KubeObject.current_hash,
                RuleResultCache.catalogue_version == catalogue_version,
            ),
        )
        .where(
            in_range, RuleResultCache.content_hash.is_(None), *changed_since_clause(changed_since)
        )
        .order_by(KubeObject.current_hash),
    )
    return objects, bodies, [chash for (chash,) in missing]


def _in_range(cluster_id: str, *, first_id: int, last_id: int) -> ColumnElement[bool]:
    return and_(
        KubeObject.cluster_id == cluster_id,
        KubeObject.deleted_at.is_(None),
        KubeObject.id >= first_id,
        KubeObject.id <= last_id,
    )


def range_counts(
    session: Session, cluster_id: str, *, first_id: int, last_id: int
) -> tuple[int, int]:
    """(live objects, distinct bodies) of a cluster's live objects with ids in
    [first_id, last_id] (what `uncached_in_range` counts, without looking for the uncached)."""
    objects, bodies = session.execute(
        select(func.count(), func.count(distinct(KubeObject.current_hash))).where(
            _in_range(cluster_id, first_id=first_id, last_id=last_id)
        )
    ).one()
    return int(objects or 0), int(bodies or 0)


def delete_other_versions(session: Session, *, keep_version: str, batch_size: int = 5000) -> int:
    """Delete one batch of results cached under any other catalogue version (results of the
    same version judged at a cluster's release, `<version>@...`, and the clusters' inventory
    rows, `INVENTORY_CACHE`, are kept); returns count."""
    victims = (
        select(RuleResultCache.content_hash, RuleResultCache.catalogue_version)
        # Results judged at a cluster's own release carry `<version>@<suffix>` and stay too.
        .where(
            RuleResultCache.catalogue_version != keep_version,
            ~RuleResultCache.catalogue_version.startswith(f"{keep_version}@", autoescape=True),
            ~RuleResultCache.catalogue_version.startswith(INVENTORY_CACHE, autoescape=True),
        )
        .limit(batch_size)
    )
    result = session.execute(
        delete(RuleResultCache).where(
            tuple_(RuleResultCache.content_hash, RuleResultCache.catalogue_version).in_(victims)
        )
    )
    return affected(result)
