"""A cluster scan as plain functions: plan shards, evaluate them, evaluate cluster rules, finalize.

Shard and cluster-rule results go to `rule_result_cache` (keyed by content hash and catalogue
version), which is also where `finalize_scan` reads them back: re-running any step is harmless,
a redelivered shard inserts nothing twice, and only bodies never evaluated under the current
catalogue are evaluated at all (scan cost grows with change, not with fleet size).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

import orjson
from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.orm import Session

from contracts.findings import finding_fingerprint
from contracts.hashing import canonical_json, hash_of_canonical, state_digest
from contracts.pipeline import ClusterStepOutcome, ShardOutcome, StepOutcome, step_outcome
from contracts.resources import ResourceRef
from contracts.severity import Severity
from contracts.states import FindingStatus, ScanState
from rules import ObjectView, Result, psa
from rules.cluster import label_change_unread, label_reads_index
from rules.configure import ObjectFacts
from store import rule_cache
from store.bulk import CHUNK, chunked, core_rows
from store.deliveries import ensure_delivery
from store.exemptions import is_active, list_exemptions
from store.findings import (
    FindingScope,
    KnownFinding,
    ObservedFinding,
    finding_counts,
    reconcile_findings,
    settle_new,
)
from store.images import (
    POD_SPEC_PATHS,
    CarriedState,
    InventoryState,
    cache_cluster_inventory,
    carry_cluster_inventory,
)
from store.manifests import (
    PrefetchedBodies,
    bodies_and_labels,
    bodies_by_hash,
    current_manifests,
    live_bodies_by_id,
)
from store.models import (
    Cluster,
    Exemption,
    Finding,
    KubeObject,
    ManifestVersion,
    ScanRun,
    ScanStep,
)
from store.scans import (
    CLUSTER_STEP,
    add_steps,
    finish_scan_run,
    has_steps,
    reassign_steps,
    start_scan_run,
    step_outcomes,
    unfinished_steps,
)
from store.search import SearchTimeout
from store.telemetry import latest_ping
from store.types import utcnow
from workers.engine import EngineHandle, object_meta
from workers.services.delivery import report_content
from workers.services.exemptions import stored_exemptions
from workers.services.fleet_rules import fleet_results

log = logging.getLogger("k8smon.workers")

SEVERITIES = tuple(Severity)  # most severe first
# An incremental finalize with more changed objects (or changed cluster-rule findings) than
# this reconciles as before, reading every active finding (keeps each statement's lists short).
SCOPED_LIMIT = 5_000


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """One shard: the live objects of a cluster with ids in [first_id, last_id] needing work."""

    scan_id: int
    cluster_id: str
    index: int
    first_id: int
    last_id: int
    size: int


@dataclass(slots=True)
class ScanPlan:
    """What a runner runs for a scan: its shards, the cluster-rules step (unless it already
    finished, for a re-drive), then finalize, each as the task id recorded for it (the scan
    watchdog looks for these ids among queued and running tasks). `finished`: nothing to run
    (done, or unchanged); `redrive`: the watchdog re-sends lost steps (always as tasks)."""

    scan_id: int
    cluster_id: str
    shards: list[ShardSpec] = field(default_factory=list)
    finished: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    cluster_step: bool = True
    task_ids: dict[int, str] = field(default_factory=dict)  # step number -> task id
    finalize_task_id: str | None = None
    redrive: bool = False
    # The engine as `judged_as_deployed` judged the cluster when planning: the steps a runner
    # runs here, one after another, judge by it instead of asking the database again.
    judged: EngineHandle | None = None
    # The version watermark the plan looked for uncached bodies after (`_watermark`; None:
    # among every live object): a shard run here right after looks the same way.
    since: int | None = None
    # A one-shard plan's uncached bodies (distinct content hashes) as planning found them, in
    # the state with digest `digest`: a shard run here right after, in that same state, need
    # not look for them again (`evaluate_inline`). None: unknown.
    uncached: list[str] | None = None
    digest: str | None = None
    # A one-shard incremental plan's live objects (`_live_rows`) as planning read them, in
    # the state the cluster's snapshot `snapshot_id` applied: a shard run here right after,
    # while that snapshot is still the cluster's, need not read them again (`PlannedState`).
    live: list[_Live] | None = None
    snapshot_id: int | None = None


class PlannedState(NamedTuple):
    """What a one-shard plan found (`ScanPlan.digest`, `.uncached`, `.snapshot_id`,
    `.live`), for the shard run right after it (`evaluate_inline`)."""

    digest: str
    uncached: Sequence[str]
    snapshot_id: int | None = None
    live: Sequence[_Live] | None = None


def _still_valid(
    previous: ScanRun | None,
    *,
    exemptions: Sequence[Exemption],
    rules: EngineHandle,
    now: datetime,
) -> bool:
    """Whether a complete scan's findings still hold for everything it saw: same catalogue
    version, nothing left unevaluated, no exemption created, revoked or expired since it
    started (exemptions cannot be edited otherwise)."""
    if (
        previous is None
        or previous.errors
        or (previous.counts or {}).get("unevaluated")
        or previous.catalogue_version != rules.catalogue_version
    ):
        return False
    since = previous.started_at
    for exemption in exemptions:
        if (
            exemption.created_at > since
            or (exemption.revoked_at is not None and exemption.revoked_at > since)
            or (exemption.expires_at is not None and since < exemption.expires_at <= now)
        ):
            return False
    return not any(
        exemption.expires is not None and since < exemption.expires <= now
        for exemption in rules.config_exemptions
    )


def _previous_complete(
    session: Session,
    run: ScanRun,
    *,
    rules: EngineHandle,
    now: datetime,
    exemptions: Sequence[Exemption] | None = None,
) -> ScanRun | None:
    """The last complete scan of the run's cluster, if its findings are still valid
    (`exemptions`: the cluster's, inactive ones included, when the caller read them)."""
    previous = session.scalar(
        select(ScanRun)
        .where(
            ScanRun.cluster_id == run.cluster_id,
            ScanRun.state == ScanState.DONE,
            ScanRun.id != run.id,
        )
        .order_by(ScanRun.id.desc())
        .limit(1)
    )
    if exemptions is None:
        exemptions = list_exemptions(session, cluster_id=run.cluster_id, include_inactive=True)
    valid = _still_valid(previous, exemptions=exemptions, rules=rules, now=now)
    return previous if valid else None


def _watermark(previous: ScanRun | None) -> int | None:
    """The version watermark of a still valid previous complete scan (`_previous_complete`),
    when it recorded one: every body live at that scan has cached results (it left nothing
    unevaluated, under the same catalogue version), so only objects with a newer current
    version can lack them (`rule_cache.changed_since_clause`)."""
    counts = (previous.counts or {}) if previous is not None else {}
    return int(counts["version_watermark"]) if "version_watermark" in counts else None


@dataclass(frozen=True, slots=True)
class _Base:
    """What an incremental finalize starts from: the previous complete scan's version
    watermark, the objects whose controller-dedup status flipped since, and that scan's
    state digest (its cluster-rule records are cached under it)."""

    since: int
    flipped: set[str]
    digest: str


def _incremental_base(
    session: Session,
    run: ScanRun,
    *,
    rules: EngineHandle,
    step: _ClusterStep,
    exemptions: Sequence[Exemption],
) -> _Base | None:
    """The base (`_Base`) when only objects changed since the previous complete scan need
    their object-rule findings reconciled (`exemptions`: the cluster's, inactive ones
    included). A cluster step taken over from that scan's state (`_ClusterStep.same_as`)
    has its controller-owned objects: none flipped."""
    previous = _previous_complete(session, run, rules=rules, now=utcnow(), exemptions=exemptions)
    if previous is None or "version_watermark" not in (previous.counts or {}):
        return None
    digest = previous.snapshot_digest or "empty"
    since = int(previous.counts["version_watermark"])
    if step.same_as is not None and step.same_as == digest:
        return _Base(since, set(), digest)
    key = rule_cache.cluster_owned_key(digest)
    cached = rule_cache.cached_results(session, [key], catalogue_version=rules.catalogue_version)
    if key not in cached:
        return None
    before = set(cached[key][0].get("suppressed") or ())
    return _Base(since, before ^ step.suppressed, digest)


def _unchanged_counts(previous: ScanRun) -> dict[str, int]:
    before = previous.counts or {}
    return {
        **before,
        "new": 0,
        "resolved": 0,
        "reopened": 0,
        "unexempted": 0,
        "evaluated": 0,
        "cache_hits": 0,
        "open": int(before.get("open", 0)) + int(before.get("new", 0)),
        "unchanged": 1,
        "incremental": 0,
        "reconciled_objects": 0,
    }


def _finish_unchanged(session: Session, run: ScanRun, previous: ScanRun) -> ScanPlan:
    settle_new(session, run.cluster_id, scan_id=run.id)
    counts = _unchanged_counts(previous)
    run.object_count = previous.object_count
    finish_scan_run(session, run.id, counts=counts, errors=[])
    return ScanPlan(run.id, run.cluster_id, [], finished=True, counts=counts)


def record_unchanged_scans(
    session: Session, cluster_ids: Sequence[str], *, rules: EngineHandle, trigger: str
) -> list[str]:
    """A fleet scan's first step: record a finished no-op scan run for every listed cluster
    whose state, catalogue and exemptions are the same as at its last complete scan (a few
    statements for the whole fleet instead of a task per cluster); return the clusters that
    need a real scan, in the given order."""
    if not cluster_ids:
        return []
    now = utcnow()
    ids = list(cluster_ids)
    latest_ids = (
        select(func.max(ScanRun.id))
        .where(ScanRun.cluster_id.in_(ids), ScanRun.state == ScanState.DONE)
        .group_by(ScanRun.cluster_id)
    )
    previous = {
        r.cluster_id: r for r in session.scalars(select(ScanRun).where(ScanRun.id.in_(latest_ids)))
    }
    digests = dict(
        session.execute(select(Cluster.id, Cluster.current_digest).where(Cluster.id.in_(ids))).all()
    )
    exemptions = list_exemptions(session, include_inactive=True)
    unchanged: list[tuple[str, ScanRun]] = []
    for cluster_id in ids:
        run = previous.get(cluster_id)
        applicable = [e for e in exemptions if e.scope == "global" or e.cluster_id == cluster_id]
        if (
            run is not None
            and run.snapshot_digest is not None
            and run.snapshot_digest == digests.get(cluster_id)
            and _still_valid(run, exemptions=applicable, rules=rules, now=now)
        ):
            unchanged.append((cluster_id, run))
    if not unchanged:
        return ids
    finished = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "cluster_id": cluster_id,
            "trigger": trigger,
            "state": ScanState.DONE,
            "started_at": now,
            "finished_at": finished,
            "duration_s": (finished - now).total_seconds(),
            "catalogue_version": rules.catalogue_version,
            "snapshot_digest": run.snapshot_digest,
            "object_count": run.object_count,
            "shard_count": 0,
            "counts": _unchanged_counts(run),
            "errors": [],
        }
        for cluster_id, run in unchanged
    ]
    # One bulk INSERT (no ORM object per run: a fleet scan records one for every unchanged
    # cluster), the new ids in the rows' order.
    run_ids = session.scalars(
        insert(ScanRun).returning(ScanRun.id, sort_by_parameter_order=True), rows
    ).all()
    for (cluster_id, before), run_id in zip(unchanged, run_ids, strict=True):
        if (before.counts or {}).get("new"):
            settle_new(session, cluster_id, scan_id=run_id)
    skipped = {cluster_id for cluster_id, _run in unchanged}
    return [cluster_id for cluster_id in ids if cluster_id not in skipped]


DEADLINE_PER_SHARD = timedelta(minutes=1)  # a scan's deadline: the setting plus this per shard
UNPLANNED_DEADLINE = timedelta(hours=2)  # a run from before deadlines were recorded


def scan_deadline(run: ScanRun, *, base_minutes: float) -> datetime:
    """When a scan must be over (K8SMON_SCAN_DEADLINE_MINUTES plus a minute per shard)."""
    return run.started_at + timedelta(minutes=base_minutes) + DEADLINE_PER_SHARD * run.shard_count


def new_task_id() -> str:
    return str(uuid.uuid4())


def push_scan_due(session: Session, cluster_id: str) -> bool:
    """Whether a push should scan the cluster now: it has an applied state that no scan run
    (finished or running) has covered, and no scan of it is running. This is the per-cluster
    debounce: pushes that arrive while a scan runs are covered by the one scan the running
    one's end starts (`jobs.finalize_scan` asks again once it committed)."""
    digest = session.scalar(
        select(Cluster.current_digest).where(Cluster.id == cluster_id, Cluster.status == "active")
    )
    if digest is None:
        return False
    now = utcnow()
    covered = and_(
        ScanRun.snapshot_digest == digest, ScanRun.state.in_((ScanState.DONE, ScanState.RUNNING))
    )
    alive = or_(
        ScanRun.deadline_at > now,
        and_(ScanRun.deadline_at.is_(None), ScanRun.started_at > now - UNPLANNED_DEADLINE),
    )
    running = and_(ScanRun.state == ScanState.RUNNING, alive)
    busy = session.scalar(
        select(ScanRun.id).where(ScanRun.cluster_id == cluster_id, or_(covered, running)).limit(1)
    )
    return busy is None


def judged_as_deployed(session: Session, cluster_id: str, rules: EngineHandle) -> EngineHandle:
    """The engine judging this cluster as the Kubernetes release its agent last reported
    (telemetry; unknown or unparseable: the newest release the catalogue knows) and with its
    namespaces' Pod Security `enforce-version` pins, as `k8smon scan --kubernetes-version`
    does offline."""
    ping = latest_ping(session, cluster_id)
    try:
        release = psa.parse_version(ping.kubernetes_version if ping else None)
    except psa.VersionError:
        release = None
    namespaces = [
        ObjectView(m.body)
        for m in current_manifests(session, cluster_id=cluster_id, kind="Namespace")
    ]
    return rules.at_versions(release, psa.namespace_pins(namespaces))


# Recorded in a running scan's counts when a fleet scan started it (`plan_scan`).
IN_FLEET_SCAN = "in_fleet_scan"
# How long a cluster scan's fleet-rule inventory may take (under the finalize task's limit).
FLEET_RULES_LIMIT_S = 540.0


def fleet_rules_in_scan(run: ScanRun) -> bool:
    """Whether a scan evaluates the fleet rules (image drift, advisories) for its cluster:
    every scan but those a fleet scan started, whose fleet evaluation (`EVALUATE_FLEET`,
    sent with them) evaluates the whole fleet once instead of once per cluster."""
    return not (run.counts or {}).get(IN_FLEET_SCAN)


def plan_scan(
    session: Session,
    cluster_id: str,
    *,
    rules: EngineHandle,
    trigger: str,
    shard_size: int,
    deadline_minutes: float,
    task_id: str | None = None,
    in_fleet_scan: bool = False,
) -> ScanPlan:
    """Start a scan run, split the work into shards and record them as the scan's steps
    (with the cluster-rules step), each with the task id it will run as, and the deadline.
    A redelivered start of a scan already planned (by `task_id`, for this cluster) carries on
    with its unfinished steps.
    `in_fleet_scan`: a fleet scan started it, whose fleet evaluation gives the fleet rules'
    findings (recorded on the run until finalize; see `fleet_rules_in_scan`)."""
    rules = judged_as_deployed(session, cluster_id, rules)
    run = None
    if task_id:  # one task may plan several clusters' scans (`k8smon.scan_clusters`)
        run = session.scalar(
            select(ScanRun).where(ScanRun.task_id == task_id, ScanRun.cluster_id == cluster_id)
        )
    if run is not None:  # a redelivered start
        if run.state != ScanState.RUNNING:
            return ScanPlan(run.id, cluster_id, [], finished=True, counts=dict(run.counts))
        if has_steps(session, run.id):  # carry on with what is unfinished
            return unfinished_plan(session, run, redrive=False)
    # Held while planning (the session's identity map keeps no object nobody holds): the
    # run's digest and the snapshot id the plan records are read from the same row.
    cluster = session.get(Cluster, cluster_id)
    if run is None:
        run = start_scan_run(
            session,
            cluster_id,
            trigger=trigger,
            catalogue_version=rules.catalogue_version,
            task_id=task_id,
            counts={IN_FLEET_SCAN: 1} if in_fleet_scan else None,
        )
    previous = _previous_complete(session, run, rules=rules, now=run.started_at)
    if (
        previous is not None
        and run.snapshot_digest is not None
        and previous.snapshot_digest == run.snapshot_digest
    ):
        return _finish_unchanged(session, run, previous)  # the state is the same as then
    since = _watermark(previous)
    # An incremental plan reads the live objects' rows (the shard run right after takes
    # them over): its uncached bodies and the object count come from those.
    live: list[_Live] | None = None
    if since is None:
        todo = rule_cache.uncached_objects(
            session, cluster_id, catalogue_version=rules.catalogue_version
        )
    else:
        live = _live_rows(session, cluster_id)
        todo = _uncached_since(
            session, cluster_id, live, since=since, catalogue_version=rules.catalogue_version
        )
    shards = [
        ShardSpec(run.id, cluster_id, index, batch[0][0], batch[-1][0], len(batch))
        for index, batch in enumerate(chunked(todo, shard_size))
    ]
    run.object_count = (
        len(live)
        if live is not None
        else session.scalar(
            select(func.count())
            .select_from(KubeObject)
            .where(KubeObject.cluster_id == cluster_id, KubeObject.deleted_at.is_(None))
        )
        or 0
    )
    run.shard_count = len(shards)
    run.deadline_at = scan_deadline(run, base_minutes=deadline_minutes)
    run.heartbeat_at = utcnow()
    run.finalize_task_id = new_task_id()
    steps = [
        ScanStep(
            scan_id=run.id,
            step=s.index,
            first_id=s.first_id,
            last_id=s.last_id,
            task_id=new_task_id(),
        )
        for s in shards
    ]
    steps.append(ScanStep(scan_id=run.id, step=CLUSTER_STEP, task_id=new_task_id()))
    add_steps(session, run.id, steps)
    task_ids = {step.step: step.task_id for step in steps}
    return ScanPlan(
        run.id,
        cluster_id,
        shards,
        task_ids=task_ids,
        finalize_task_id=run.finalize_task_id,
        judged=rules,
        since=since,
        uncached=sorted({chash for _id, chash in todo}) if len(shards) == 1 else None,
        digest=run.snapshot_digest,
        live=live if len(shards) == 1 else None,
        # Each applied snapshot has its own id: the same id, nothing was applied since.
        snapshot_id=cluster.current_snapshot_id if cluster is not None else None,
    )


def _uncached_since(
    session: Session,
    cluster_id: str,
    live: Sequence[_Live],
    *,
    since: int,
    catalogue_version: str,
) -> list[tuple[int, str]]:
    """`rule_cache.uncached_objects(changed_since=since)` of the live objects read
    (`_live_rows`): those whose current version is newer than `since` and whose body has no
    result under this version, in id order."""
    newer = [row for row in live if row.version_id is not None and row.version_id > since]
    if len(newer) > CHUNK:  # more than one probe of the cache: one join instead
        return rule_cache.uncached_objects(
            session, cluster_id, catalogue_version=catalogue_version, changed_since=since
        )
    cached = rule_cache.cached_keys(
        session, {row.content_hash for row in newer}, catalogue_version=catalogue_version
    )
    return [(row.id, row.content_hash) for row in newer if row.content_hash not in cached]


def unfinished_plan(session: Session, run: ScanRun, *, redrive: bool) -> ScanPlan:
    """A plan of a running scan's unfinished steps (none: only its finalize), each under a new
    task id (recorded), and a new finalize task id."""
    unfinished = unfinished_steps(session, run.id)
    task_ids = {s.step: new_task_id() for s in unfinished}
    reassign_steps(session, run.id, task_ids)
    run.finalize_task_id = new_task_id()
    run.heartbeat_at = utcnow()
    session.flush()
    shards = [
        ShardSpec(run.id, run.cluster_id, s.step, s.first_id or 0, s.last_id or 0, 0)
        for s in unfinished
        if s.step != CLUSTER_STEP
    ]
    return ScanPlan(
        run.id,
        run.cluster_id,
        shards,
        cluster_step=any(s.step == CLUSTER_STEP for s in unfinished),
        task_ids=task_ids,
        finalize_task_id=run.finalize_task_id,
        redrive=redrive,
    )


@dataclass(slots=True)
class Evaluated:
    """What a step evaluated and cached, kept in memory for the finalize step that runs next
    in the same process (`jobs.run_plan`), so it need not read it back from the cache: object
    results by content hash (as `EngineHandle.result` would make them of the cached records)
    and cluster-step states by cache key, all under one catalogue version; and the live
    objects of a taken-over cluster step (`_live_rows`; None: none), which the finalize
    reconciles without reading them again (the state that was evaluated: a change since is
    the next scan's, as one committed after its own read would be)."""

    catalogue_version: str
    objects: dict[str, list[Result]] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    live: list[_Live] | None = None


def _evaluate_objects(
    rules: EngineHandle,
    bodies: Iterable[tuple[str, Mapping[str, Any] | ObjectView]],
    *,
    shard_index: int,
    kept: Evaluated | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Object-rule records by content hash (each hash once) and the errors of rules that
    raised, for (content hash, body or its view from `rules.view`) pairs; the results also go
    to `kept`, when given."""
    fresh: dict[str, list[dict[str, Any]]] = {}
    errors: list[dict[str, Any]] = []
    for chash, body in bodies:
        if chash in fresh:
            continue
        try:
            view = body if isinstance(body, ObjectView) else rules.view(body)
            if kept is None:
                fresh[chash] = rules.evaluate_view(view)
            else:
                fresh[chash], kept.objects[chash] = rules.evaluate_view_kept(view)
        except Exception as problem:
            manifest = body.manifest if isinstance(body, ObjectView) else body
            errors.append(
                {
                    "stage": "shard",
                    "shard": shard_index,
                    "object": str(ResourceRef.of(dict(manifest))),
                    "error": f"{type(problem).__name__}: {problem}"[:500],
                }
            )
    return fresh, errors


def evaluate_shard(
    session: Session,
    *,
    cluster_id: str,
    first_id: int,
    last_id: int,
    rules: EngineHandle,
    shard_index: int = 0,
) -> ShardOutcome:
    """Evaluate object rules on a shard's bodies that have no cached result; cache them."""
    rules = judged_as_deployed(session, cluster_id, rules)
    version = rules.catalogue_version
    objects, hashes, missing = rule_cache.uncached_in_range(
        session, cluster_id, first_id=first_id, last_id=last_id, catalogue_version=version
    )
    errors: list[dict[str, Any]] = []
    fresh: dict[str, list[dict[str, Any]]] = {}
    for batch in chunked(missing, 500):
        found, failed = _evaluate_objects(
            rules, bodies_by_hash(session, batch).items(), shard_index=shard_index
        )
        fresh.update(found)
        errors.extend(failed)
    rule_cache.store_results(session, fresh, catalogue_version=version)
    return ShardOutcome(
        shard=shard_index,
        objects=objects,
        evaluated=len(fresh),
        cache_hits=hashes - len(missing),
        errors=tuple(errors),
    )


class _LastFinished(NamedTuple):
    """The cluster's last finished scan, as a scan step reads it once (`_last_finished`): the
    digest of the state it scanned and its counts (a watermark among them)."""

    digest: str | None
    counts: dict[str, Any]


def _last_finished(session: Session, cluster_id: str) -> _LastFinished | None:
    """The cluster's last finished scan (None: it has none): what both the label-only reuse
    (`_changes_since`) and the schema checks a step skips (`_known_valid`) start from."""
    row = session.execute(
        select(ScanRun.snapshot_digest, ScanRun.counts)
        .where(ScanRun.cluster_id == cluster_id, ScanRun.state == ScanState.DONE)
        .order_by(ScanRun.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _LastFinished(row[0], dict(row[1] or {}))


def _known_valid(session: Session, last: _LastFinished | None, *, version: str) -> frozenset[str]:
    """Content hashes of the bodies that the state of the cluster's last finished scan held
    and its cluster step found structurally valid under `version` (none when that step left
    no record): their views need no schema check again."""
    digest = last.digest if last is not None else None
    if not digest:
        return frozenset()
    key = rule_cache.cluster_valid_key(digest)
    cached = rule_cache.cached_results(session, [key], catalogue_version=version)
    return frozenset(cached[key][0]["hashes"]) if key in cached else frozenset()


def _live_views(
    session: Session,
    cluster_id: str,
    *,
    rules: EngineHandle,
    live: Sequence[_Live],
    last: _LastFinished | None,
    prefetched: PrefetchedBodies | None = None,
) -> list[tuple[str, ObjectView]]:
    """(content hash, view) of the live objects `live` (the rows this step read, in object
    id order), the bodies known to be valid (`_known_valid`) marked so (an incremental scan
    schema-checks only bodies it has not seen). The bodies are those read by object id,
    here or beforehand (`prefetched`: `workers.body_prefetch`); an object whose content hash
    is no longer the one read (a body never changes under its hash) has its body read by
    hash, and one no longer live is left out."""
    valid = _known_valid(session, last, version=rules.catalogue_version)
    read = live_bodies_by_id(session, cluster_id) if prefetched is None else prefetched
    bodies: dict[int, Any] = {}
    for row in live:
        got = read.get(row.id)
        if got is not None and got[0] == row.content_hash:
            bodies[row.id] = got[1]
    late = bodies_by_hash(
        session, sorted({row.content_hash for row in live if row.id not in bodies})
    )
    return [
        (
            row.content_hash,
            rules.view(
                bodies[row.id] if row.id in bodies else late[row.content_hash],
                valid=row.content_hash in valid,
            ),
        )
        for row in live
        if row.id in bodies or row.content_hash in late
    ]


def _cluster_state(
    rules: EngineHandle, views: Sequence[tuple[str, ObjectView]]
) -> dict[str, Any] | ClusterStepOutcome:
    """The cross-resource rules' state of a cluster's views, or the failed step's outcome."""
    try:
        return rules.evaluate_cluster([view for _h, view in views], record_label_reads=True)
    except Exception as problem:
        error = {"stage": "cluster_rules", "error": f"{type(problem).__name__}: {problem}"[:500]}
        return ClusterStepOutcome(cluster_key=None, cached=False, errors=(error,))


def _cache_cluster_state(
    session: Session,
    rules: EngineHandle,
    *,
    digest: str,
    views: Sequence[tuple[str, ObjectView]],
    state: dict[str, Any] | ClusterStepOutcome,
    kept: Evaluated | None = None,
) -> ClusterStepOutcome:
    """Cache what the cluster rules found (`_cluster_state`), and which bodies are valid."""
    if isinstance(state, ClusterStepOutcome):
        return state
    # Every view's `problems` is known by now (the cluster context left out invalid ones).
    valid = {chash for chash, view in views if not view.problems}
    return _store_cluster_state(session, rules, digest=digest, valid=valid, state=state, kept=kept)


class _Reference(NamedTuple):
    """How a taken-over cluster state (`_label_only_reuse`) is cached: by reference to the
    state whose row holds its results (`root`, a state the cluster rules ran on), with the
    objects' facts that differ from that row's (ref key -> facts, None: none)."""

    root: str
    meta_changes: dict[str, Any]


def _store_cluster_state(
    session: Session,
    rules: EngineHandle,
    *,
    digest: str,
    valid: Iterable[str],
    state: dict[str, Any],
    kept: Evaluated | None = None,
    reference: _Reference | None = None,
) -> ClusterStepOutcome:
    """Cache a cluster state's cluster-step output: its results (`state`), the owned objects,
    the valid bodies' hashes and, kept apart, which labels the rules read (`label_reads`).
    `reference`: the state's results and owned objects are those of another state's row,
    its facts those with a few changes (a label-only rescan's): its row holds the reference
    instead of a copy (`_cluster_states` reads it back whole)."""
    key = rule_cache.cluster_state_key(digest)
    reads = state.pop("label_reads", None)
    owned = {"suppressed": state["suppressed"]}
    stored = (
        state
        if reference is None
        else {
            "results_of": reference.root,
            "meta_changes": reference.meta_changes,
            "same_as": state.get("same_as"),
        }
    )
    rows: dict[str, list[dict[str, Any]]] = {
        key: [stored],
        rule_cache.cluster_owned_key(digest): [owned],
        rule_cache.cluster_valid_key(digest): [{"hashes": sorted(set(valid))}],
    }
    if reads is not None:
        rows[rule_cache.cluster_reads_key(digest)] = [reads]
    rule_cache.store_results(session, rows, catalogue_version=rules.catalogue_version)
    if kept is not None:
        kept.states[key] = state
    return ClusterStepOutcome(cluster_key=key, cached=False)


def _cluster_step(
    session: Session,
    rules: EngineHandle,
    *,
    digest: str,
    views: Sequence[tuple[str, ObjectView]],
) -> ClusterStepOutcome:
    """Evaluate cross-resource rules on a cluster state's views (with their bodies' content
    hashes) and cache what they found, and which bodies are valid."""
    state = _cluster_state(rules, views)
    return _cache_cluster_state(session, rules, digest=digest, views=views, state=state)


def _state_digest(cluster: Cluster | None) -> str:
    """The digest of a cluster's current state ("empty": none applied, or no such cluster)."""
    return (cluster.current_digest if cluster else None) or "empty"


def evaluate_cluster_rules(
    session: Session, *, cluster_id: str, rules: EngineHandle
) -> ClusterStepOutcome:
    """Evaluate cross-resource rules on the cluster's current state (cached per state digest)."""
    rules = judged_as_deployed(session, cluster_id, rules)
    cluster = session.get(Cluster, cluster_id)
    digest = _state_digest(cluster)
    key = rule_cache.cluster_state_key(digest)
    if rule_cache.cached_keys(session, [key], catalogue_version=rules.catalogue_version):
        return ClusterStepOutcome(cluster_key=key, cached=True)
    live = _live_rows(session, cluster_id)
    views = _live_views(
        session, cluster_id, rules=rules, live=live, last=_last_finished(session, cluster_id)
    )
    _cache_inventory(session, cluster_id, state=_inventory_state(cluster), live=live, views=views)
    return _cluster_step(session, rules, digest=digest, views=views)


# How long a scan may spend caching its cluster's image inventory (its history's since values).
INVENTORY_CACHE_LIMIT_S = 60.0


def _inventory_state(cluster: Cluster | None) -> InventoryState | None:
    """The state a step read the cluster in, as its cached inventory is keyed (None: no
    state applied): read with the step's other reads of the cluster, from its row."""
    if cluster is None or not cluster.current_digest or cluster.current_snapshot_id is None:
        return None
    return InventoryState(cluster.current_digest, cluster.current_snapshot_id)


def _cache_inventory(
    session: Session,
    cluster_id: str,
    *,
    state: InventoryState | None,
    live: Sequence[_Live],
    views: Sequence[tuple[str, ObjectView]],
) -> None:
    """Cache the cluster's image inventory (`store.images.cache_cluster_inventory`) from the
    bodies a step that read every live one decoded (`views`, in object id order, paired with
    the live rows `live` by position), so that the fleet evaluation after this scan, and its
    finalize, find it cached instead of reading the bodies again. `state`: the cluster's
    state when the step read it (`_inventory_state`). Nothing is cached when the rows and
    the views are not the same objects, or the cluster left that state meanwhile (the write
    checks)."""
    if state is None or (
        len(live) != len(views)
        or any(row.content_hash != chash for row, (chash, _view) in zip(live, views, strict=True))
    ):
        return
    try:
        cache_cluster_inventory(
            session,
            cluster_id,
            state=state,
            objects=(
                (row.id, ResourceRef.from_key(row.ref_key), view.manifest)
                for row, (_chash, view) in zip(live, views, strict=True)
                if view.kind in POD_SPEC_PATHS  # the ref's kind: both are the body's
            ),
            timeout_seconds=INVENTORY_CACHE_LIMIT_S,
        )
    except SearchTimeout:
        log.warning("cluster %s: its image inventory was not cached (history too long)", cluster_id)


def _carry_inventory(
    session: Session, cluster_id: str, *, state: InventoryState | None, reused: _Reused
) -> None:
    """Cache the cluster's image inventory in its new state `state` (`_inventory_state`) by
    carrying the state before's over (`store.images.carry_cluster_inventory`): a label-only
    rescan's changed objects (`_Reused.before`) kept everything but their labels
    (`_label_only_change`), and the inventory reads no label. Nothing is cached when the
    cluster left that state meanwhile, or the state before's row cannot be carried over
    (the fleet evaluation works it out)."""
    if state is None:
        return
    before = reused.before
    changed = {
        object_id: (ref, reused.views[chash].manifest)
        for object_id, key, chash in before.changed
        if (ref := ResourceRef.from_key(key)).kind in POD_SPEC_PATHS
    }
    carried = CarriedState(before.digest, before.since, state)
    try:
        done = carry_cluster_inventory(
            session,
            cluster_id,
            carried=carried,
            changed=changed,
            timeout_seconds=INVENTORY_CACHE_LIMIT_S,
        )
    except SearchTimeout:
        done = False
    if not done:
        log.debug("cluster %s: its image inventory was not carried over", cluster_id)


# The share of a cluster's live objects that may have changed for a label-only rescan to reuse
# the previous cluster step (`_label_only_reuse` reads each changed object's new body).
LABEL_REUSE_SHARE = 0.5


@dataclass(slots=True)
class _Reused:
    """A cluster step's output taken over from the state before (`_label_only_reuse`): the
    state to cache (its results those of `state["same_as"]`), the valid bodies' hashes, the
    changed objects' new views by content hash (valid, for the object rules), how the
    state is cached (`_Reference`), and the state before with what changed since
    (`_Before`, for `_carry_inventory`)."""

    state: dict[str, Any]
    valid: set[str]
    views: dict[str, ObjectView]
    reference: _Reference
    before: _Before


class _StoredState(NamedTuple):
    """A cached cluster-step state, whole, and the reference it was cached as (None: it
    holds its results itself)."""

    state: dict[str, Any]
    reference: _Reference | None


def _cluster_states(
    session: Session, keys: Iterable[str], *, catalogue_version: str
) -> dict[str, _StoredState]:
    """The cached cluster-step states under these cache keys (hits only), each whole: a
    state cached by reference (`_Reference`) gets the results, owned objects and facts of
    the state it names (read in a second statement; results of a catalogue version are only
    deleted with the version, so they are there), its facts with its changes applied."""
    cached = rule_cache.cached_results(session, keys, catalogue_version=catalogue_version)
    found: dict[str, _StoredState] = {}
    refs: dict[str, tuple[dict[str, Any], _Reference]] = {}
    for key, (state, *_rest) in cached.items():
        root = state.get("results_of")
        if root is None:
            found[key] = _StoredState(state, None)
        else:
            refs[key] = (state, _Reference(root, state.get("meta_changes") or {}))
    roots = rule_cache.cached_results(
        session,
        {rule_cache.cluster_state_key(ref.root) for _state, ref in refs.values()},
        catalogue_version=catalogue_version,
    )
    for key, (state, ref) in refs.items():
        held = roots.get(rule_cache.cluster_state_key(ref.root))
        if held is None:
            continue
        whole = held[0]
        meta = dict(whole.get("meta") or {})
        _apply_facts(meta, ref.meta_changes)
        found[key] = _StoredState(
            {
                "results": whole["results"],
                "suppressed": whole["suppressed"],
                "meta": meta,
                "same_as": state.get("same_as"),
            },
            ref,
        )
    return found


def _apply_facts(meta: dict[str, Any], changes: Mapping[str, Any]) -> None:
    """Apply facts changes (ref key -> facts, None: none) to a state's facts, in place."""
    for key, facts in changes.items():
        if facts is None:
            meta.pop(key, None)
        else:
            meta[key] = facts


def _previous_bodies(session: Session, object_ids: Sequence[int], *, since: int) -> dict[int, str]:
    """Each object's content hash in its latest version with an id at most `since`."""
    found: dict[int, str] = {}
    for batch in chunked(list(object_ids)):
        latest = (
            select(func.max(ManifestVersion.id))
            .where(ManifestVersion.object_id.in_(batch), ManifestVersion.id <= since)
            .group_by(ManifestVersion.object_id)
        )
        found.update(
            core_rows(
                session,
                select(ManifestVersion.object_id, ManifestVersion.content_hash).where(
                    ManifestVersion.id.in_(latest)
                ),
            )
        )
    return found


def _stored_as(body: Any, content_hash: str) -> bool:
    """Whether `body` is the body stored under `content_hash`: the hash of its canonical JSON
    (`contracts.hashing.content_hash`, what the ingest hashes) is that one. Tried first with
    orjson, which writes the same bytes as `canonical_json` for a value without floats (the
    two spell some floats differently: then the standard library's). Equal hashes mean
    equal canonical JSON, so `1` and `1.0`, or `1` and `true`, are told apart."""
    try:
        if hash_of_canonical(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)) == content_hash:
            return True
    except TypeError:
        pass
    try:
        return hash_of_canonical(canonical_json(body)) == content_hash
    except (ValueError, RecursionError):  # not canonical JSON (NaN): never stored
        return False


class _NoReuse(Exception):
    """Why a rescan runs the cluster rules again (`_label_only_reuse`)."""


class _Live(NamedTuple):
    """One live object as a label-only rescan reads it (`_live_rows`)."""

    id: int
    ref_key: str
    content_hash: str
    version_id: int | None


def _live_rows(session: Session, cluster_id: str) -> list[_Live]:
    """The cluster's live objects (id, ref key, content hash, current version id), in id
    order: one read for what a label-only rescan needs of them (the changed ones, how many,
    the state before, a shard's counts)."""
    return [
        _Live(*row)
        for row in core_rows(
            session,
            select(
                KubeObject.id,
                KubeObject.ref_key,
                KubeObject.current_hash,
                KubeObject.current_version_id,
            )
            .where(KubeObject.cluster_id == cluster_id, KubeObject.deleted_at.is_(None))
            .order_by(KubeObject.id),
        )
    ]


def _range_counts(live: Sequence[_Live], *, first_id: int, last_id: int) -> tuple[int, int]:
    """`rule_cache.range_counts` of the live objects read (`_live_rows`)."""
    hashes = [row.content_hash for row in live if first_id <= row.id <= last_id]
    return len(hashes), len(set(hashes))


class _Before(NamedTuple):
    """The last finished scan's state digest, the objects changed since (id, ref key,
    content hash) and each one's content hash in that state (`_changes_since`)."""

    digest: str
    since: int
    changed: list[tuple[int, str, str]]
    old: dict[int, str]


def _changes_since(
    session: Session, live: Sequence[_Live], *, last: _LastFinished | None
) -> _Before:
    """What changed since the cluster's last finished scan (`last`, `_Before`) among its
    live objects (`_live_rows`); not yet checked against that scan's digest (`_state_was`);
    else `_NoReuse`."""
    if last is None or not last.digest or "version_watermark" not in last.counts:
        raise _NoReuse("no finished scan with a watermark")
    before, since = str(last.digest), int(last.counts["version_watermark"])
    changed = [
        (row.id, row.ref_key, row.content_hash) for row in live if (row.version_id or 0) > since
    ]
    if not changed or len(changed) > LABEL_REUSE_SHARE * len(live):
        raise _NoReuse(f"{len(changed)} of {len(live)} objects changed")
    old = _previous_bodies(session, [oid for oid, _k, _h in changed], since=since)
    if len(old) != len(changed):
        raise _NoReuse("an object is new since")
    return _Before(before, since, changed, old)


def _state_was(before: _Before, live: Sequence[_Live]) -> dict[str, str]:
    """The state the last finished scan saw (ref key -> content hash): the live objects
    (`_live_rows`), each changed one at its content hash then, checked against that scan's
    digest (an object added, deleted or changed since that scan makes it differ); else
    `_NoReuse`."""
    was = {row.ref_key: row.content_hash for row in live}
    was.update((key, before.old[oid]) for oid, key, _h in before.changed)
    if state_digest(was.items()) != before.digest:
        raise _NoReuse("not the state the last scan saw")
    return was


def _label_only_change(
    record: Mapping[str, Any],
    rules: EngineHandle,
    prior: str,
    labels_before: Any,
    body: Any,
    *,
    key: str,
) -> ObjectView:
    """The new version's view when an object changed only labels the cluster rules did not
    read (`rules.cluster.label_change_unread`) and stays valid; else `_NoReuse`. `prior`:
    the content hash of the version before, `labels_before` its labels (as stored): the
    new version with those labels must be that version (`_stored_as`), so its body need
    not be read. The version before must be known to be valid: then so is the new one when
    its labels are strings (a labels map of strings is all the schemas allow, and nothing
    else changed), and it is not schema-checked again."""
    if not isinstance(body, dict):
        raise _NoReuse(f"{key}: a body is not an object")
    meta = body.get("metadata")
    labels_after = meta.get("labels") if type(meta) is dict else None
    if not (type(meta) is dict and type(labels_before) is dict and type(labels_after) is dict):
        raise _NoReuse(f"{key}: no labels map before or after")
    if not _stored_as({**body, "metadata": {**meta, "labels": labels_before}}, prior):
        raise _NoReuse(f"{key}: more than labels changed")
    view = rules.view(
        body,
        valid=all(type(value) is str for value in labels_after.values()),
    )
    if view.problems:
        raise _NoReuse(f"{key}: not valid")
    if not label_change_unread(record, view, labels_before, labels_after):
        raise _NoReuse(f"{key}: a label the cluster rules read changed")
    return view


def _label_only_reuse(
    session: Session,
    rules: EngineHandle,
    live: Sequence[_Live],
    *,
    cluster_id: str,
    last: _LastFinished | None,
) -> _Reused | None:
    """The cluster step of the cluster's current state (its live objects, `_live_rows`)
    without running the cluster rules, when its last finished scan's state differs from it
    only in labels those rules did not read in that state (`rules.cluster.label_change_unread`):
    they would find the same.

    Only the changed objects' new bodies are read, and the labels of their versions before.
    The state before is the one whose digest the last finished scan recorded, rebuilt from
    the live objects with each changed one's version at that scan's watermark and checked
    against that digest (so an object added, deleted or changed twice since makes it fall
    back: None). Each changed object must keep everything but `metadata.labels` (a map
    before and after), stay structurally valid, and change no label key the rules read on
    it, through the label indexes of its kind and namespace, or (a Pod) through
    pod-template look-ups."""
    try:
        return _reuse(session, rules, live, cluster_id=cluster_id, last=last)
    except _NoReuse as reason:
        log.debug("cluster %s: cluster rules run again (%s)", cluster_id, reason)
        return None


def _reuse(
    session: Session,
    rules: EngineHandle,
    live: Sequence[_Live],
    *,
    cluster_id: str,
    last: _LastFinished | None,
) -> _Reused:
    found = _changes_since(session, live, last=last)
    before, changed, old = found.digest, found.changed, found.old
    version = rules.catalogue_version
    # The small records and the changed bodies first: a change that is not label-only (the
    # common case) falls back before the state's results are read.
    keys = {
        "reads": rule_cache.cluster_reads_key(before),
        "valid": rule_cache.cluster_valid_key(before),
    }
    small = rule_cache.cached_results(session, keys.values(), catalogue_version=version)
    if keys["reads"] not in small:
        raise _NoReuse("the state before has no record of label reads")
    if keys["valid"] not in small:
        raise _NoReuse("the state before is not cached")
    valid_before = set(small[keys["valid"]][0]["hashes"])
    if any(old[oid] not in valid_before for oid, _k, _h in changed):
        raise _NoReuse("a changed object was not valid")
    record = label_reads_index(small[keys["reads"]][0])
    views: dict[str, ObjectView] = {}
    # A few first, then the rest: a change that is not label-only is usually among the few.
    # Of the versions before, only their labels are read (`_label_only_change`).
    for batch in (changed[:64], changed[64:]) if len(changed) > 64 else (changed,):
        bodies, labels = bodies_and_labels(
            session,
            sorted({chash for _oid, _k, chash in batch}),
            labels_of=sorted({old[oid] for oid, _k, _h in batch}),
        )
        for oid, key, chash in batch:
            views[chash] = _label_only_change(
                record, rules, old[oid], labels.get(old[oid]), bodies.get(chash), key=key
            )
    was = _state_was(found, live)
    state_key = rule_cache.cluster_state_key(before)
    stored = _cluster_states(session, [state_key], catalogue_version=version)
    if state_key not in stored:
        raise _NoReuse("the state before is not cached")
    state, reference = stored[state_key]
    # The changed objects' facts, on top of those the state before had changed (both
    # relative to the state whose row holds the results).
    reference = reference or _Reference(before, {})
    changes = {
        **reference.meta_changes,
        **{view.ref.key: object_meta(view) for view in views.values()},
    }
    meta = dict(state.get("meta") or {})
    _apply_facts(meta, changes)
    current = set(was.values()) - {old[oid] for oid, _k, _h in changed}
    current.update(views)
    state = {**state, "meta": meta, "same_as": before, "label_reads": small[keys["reads"]][0]}
    return _Reused(
        state,
        (valid_before & current) | set(views),
        views,
        _Reference(reference.root, changes),
        found,
    )


def evaluate_inline(
    session: Session,
    *,
    cluster_id: str,
    first_id: int,
    last_id: int,
    rules: EngineHandle,
    shard_index: int = 0,
    judged: EngineHandle | None = None,
    changed_since: int | None = None,
    planned: PlannedState | None = None,
    prefetched: PrefetchedBodies | None = None,
) -> tuple[ShardOutcome, ClusterStepOutcome, Evaluated | None]:
    """A scan's only shard and its cluster step in one go, with the outcomes
    `evaluate_shard` and `evaluate_cluster_rules` would return: when the cluster rules must
    run, every live body is read, decoded, viewed and schema-checked once for both (the two
    steps would each do all of that), and the shard's uncached bodies are among them. What
    was evaluated is also returned (`Evaluated`) for a finalize in the same process.
    `judged`: the plan's `judged_as_deployed` of `rules` for this cluster (`ScanPlan.judged`);
    `changed_since`: the plan's `ScanPlan.since` (uncached bodies are looked for as it did);
    `planned`: what the plan found (`PlannedState`): its uncached bodies taken as they are
    while the cluster is still in that state (a body another scan cached since is evaluated
    again, and its results stored again as the same), its live objects' rows while the
    snapshot that made that state is still the cluster's (the same digest could be reached
    again by other objects); `prefetched`: the cluster's live bodies read beforehand
    (`_live_views`), for a step that reads every one."""
    judged = judged or judged_as_deployed(session, cluster_id, rules)
    version = judged.catalogue_version
    cluster_row = session.get(Cluster, cluster_id)
    digest = _state_digest(cluster_row)
    if rule_cache.cached_keys(
        session, [rule_cache.cluster_state_key(digest)], catalogue_version=version
    ):
        shard = evaluate_shard(
            session,
            cluster_id=cluster_id,
            first_id=first_id,
            last_id=last_id,
            rules=rules,
            shard_index=shard_index,
        )
        return shard, evaluate_cluster_rules(session, cluster_id=cluster_id, rules=rules), None
    same = planned is not None and planned.digest == digest
    live_rows = (
        list(planned.live)
        if planned is not None
        and same
        and planned.live is not None
        and planned.snapshot_id is not None
        and cluster_row is not None
        and planned.snapshot_id == cluster_row.current_snapshot_id
        else _live_rows(session, cluster_id)
    )
    if planned is not None and same:
        objects, hashes = _range_counts(live_rows, first_id=first_id, last_id=last_id)
        missing = list(planned.uncached)
    else:
        objects, hashes, missing = rule_cache.uncached_in_range(
            session,
            cluster_id,
            first_id=first_id,
            last_id=last_id,
            catalogue_version=version,
            changed_since=changed_since,
        )
    wanted = set(missing)
    kept = Evaluated(version)
    last = _last_finished(session, cluster_id)  # read once for the reuse and the views
    reused = _label_only_reuse(session, judged, live_rows, cluster_id=cluster_id, last=last)
    if reused is not None:
        # Only labels the cluster rules did not read changed: their results are the state
        # before's, and only the changed bodies (and any other uncached one) were read.
        kept.live = live_rows  # the state taken over, as finalize reconciles it
        views = reused.views
        more = [chash for chash in missing if chash not in views]
        views.update(
            (chash, judged.view(body)) for chash, body in bodies_by_hash(session, more).items()
        )
        fresh, errors = _evaluate_objects(
            judged,
            ((h, views[h]) for h in missing if h in views),
            shard_index=shard_index,
            kept=kept,
        )
        rule_cache.store_results(session, fresh, catalogue_version=version)
        cluster = _store_cluster_state(
            session,
            judged,
            digest=digest,
            valid=reused.valid,
            state=reused.state,
            kept=kept,
            reference=reused.reference,
        )
        _carry_inventory(session, cluster_id, state=_inventory_state(cluster_row), reused=reused)
    else:
        live = _live_views(
            session, cluster_id, rules=judged, live=live_rows, last=last, prefetched=prefetched
        )
        _cache_inventory(
            session, cluster_id, state=_inventory_state(cluster_row), live=live_rows, views=live
        )
        fresh, errors = _evaluate_objects(
            judged,
            ((h, view) for h, view in live if h in wanted),
            shard_index=shard_index,
            kept=kept,
        )
        # The cluster rules run while PostgreSQL stores the shard's results (not on the
        # session).
        with rule_cache.storing_results(session, fresh, catalogue_version=version):
            state = _cluster_state(judged, live)
        cluster = _cache_cluster_state(
            session, judged, digest=digest, views=live, state=state, kept=kept
        )
    shard = ShardOutcome(
        shard=shard_index,
        objects=objects,
        evaluated=len(fresh),
        cache_hits=hashes - len(missing),
        errors=tuple(errors),
    )
    return shard, cluster, kept


@dataclass(slots=True)
class FinalizeOutcome:
    scan_id: int
    cluster_id: str
    counts: dict[str, int]
    delivery_ids: list[int]
    already_done: bool = False


def _facts_from_bodies(session: Session, hashes: Sequence[str]) -> dict[str, ObjectFacts]:
    """The facts configuration reads, by ref key, from the given bodies (when the cluster
    step failed and recorded none)."""
    facts: dict[str, ObjectFacts] = {}
    for batch in chunked(sorted(set(hashes))):
        for body in bodies_by_hash(session, batch).values():
            metadata = body.get("metadata") or {}
            facts[ResourceRef.of(body).key] = ObjectFacts.of(
                metadata.get("labels"), metadata.get("annotations")
            )
    return facts


class Candidate(NamedTuple):
    """One evaluated result on its way to a finding: from an object's cached results (with
    the body's content hash) or from the cluster step. (A named tuple: a scan makes one per
    finding.)"""

    result: Result
    content_hash: str | None
    source: Literal["object", "cluster", "fleet"]


# What `observed_finding` writes, looked up rather than read through the enums' descriptors
# (a cold scan observes thousands of findings).
_SEVERITY_TEXT: dict[str, str] = {severity: severity.value for severity in Severity}
_EXEMPTED = FindingStatus.EXEMPTED.value


def observed_finding(
    candidate: Candidate,
    result: Result,
    *,
    shared: dict[tuple[Any, ...], dict[str, Any]] | None = None,
) -> ObservedFinding:
    """The finding a configured result makes (`result.status` is open or exempted).

    `shared`: details already made for other findings of one scan, reused (never mutated)
    for a finding without exemption whose rule metadata and source are the same, so that a
    scan's thousands of findings carry a few dozen details mappings (each encoded once)."""
    exemption = result.exemption
    key = (result.rule_id, result.title, result.category, result.cis, result.pss, candidate.source)
    details = shared.get(key) if shared is not None and not exemption else None
    if details is None:
        details = {
            "title": result.title,
            "category": result.category,
            "cis": list(result.cis),
            "pss": list(result.pss),
            "source": candidate.source,
        }
        if exemption:
            details["exemption"] = dict(exemption)
        elif shared is not None:
            shared[key] = details
    exempted = result.status == _EXEMPTED
    stored = exempted and exemption is not None and exemption["source"] == "database"
    return ObservedFinding(
        fingerprint=result.fingerprint,
        rule_id=result.rule_id,
        ref=result.resource,
        container=result.container,
        path=result.path or None,
        content_hash=candidate.content_hash,
        severity=_SEVERITY_TEXT[result.severity],
        message=result.message,
        exempted=exempted,
        exemption_id=exemption["index"] if stored and exemption else None,
        details=details,
    )


@dataclass(slots=True)
class _ClusterStep:
    """The cluster step's cached output: its cluster-rule records, the controller-owned
    objects, and each object's facts in their cached form (`ObjectFacts.to_dict`)."""

    records: list[dict[str, Any]]
    suppressed: set[str]
    meta: dict[str, Mapping[str, Any]]
    ok: bool
    # The digest of the state whose cluster-rule records these are as they were (a
    # label-only rescan's, `_label_only_reuse`), when one state was merged.
    same_as: str | None = None

    def facts(self, keys: Iterable[str]) -> dict[str, ObjectFacts]:
        """The facts of the objects with these ref keys (those configuration will read)."""
        meta = self.meta
        return {key: ObjectFacts.from_dict(meta[key]) for key in set(keys) if key in meta}


def _cluster_results(
    session: Session,
    outcomes: Sequence[StepOutcome],
    *,
    rules: EngineHandle,
    kept: Mapping[str, dict[str, Any]],
) -> _ClusterStep:
    """The cluster step's cached output: cluster-rule results, owned objects, object facts
    (the states in `kept` as they are, the others read from the cache)."""
    version = rules.catalogue_version
    cluster_keys = {
        o.cluster_key
        for o in outcomes
        if isinstance(o, ClusterStepOutcome) and o.cluster_key is not None
    }
    cached_cluster = {key: kept[key] for key in cluster_keys if key in kept}
    cached_cluster.update(
        (key, stored.state)
        for key, stored in _cluster_states(
            session, cluster_keys - cached_cluster.keys(), catalogue_version=version
        ).items()
    )
    cluster_ok = bool(cluster_keys) and set(cached_cluster) == cluster_keys
    step = _ClusterStep([], set(), {}, cluster_ok)
    for state in cached_cluster.values():
        step.records.extend(state["results"])
        step.suppressed.update(state.get("suppressed") or ())
        step.meta.update(state.get("meta") or {})
    if len(cached_cluster) == 1:
        (state,) = cached_cluster.values()
        step.same_as = state.get("same_as")
    return step


_Identity = tuple[str, str, str, str]  # what a finding's fingerprint hashes


def _record_keys(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each cluster-rule record's resource key, in order (each distinct resource's once)."""
    keys: dict[tuple[Any, ...], str] = {}
    found: list[str] = []
    for record in records:
        res = record["resource"]
        raw = (res["apiVersion"], res["kind"], res.get("namespace"), res["name"])
        key = keys.get(raw)
        if key is None:
            key = keys[raw] = ResourceRef.from_dict(res).key
        found.append(key)
    return found


def _identities(
    records: Sequence[Mapping[str, Any]],
) -> tuple[list[_Identity], list[tuple[Any, ...]]]:
    """Each cluster-rule record's identity (rule, resource key, container, path: what its
    finding's fingerprint is made of) and its whole content (identity, severity, message,
    status), in order."""
    identities: list[_Identity] = []
    contents: list[tuple[Any, ...]] = []
    for record, key in zip(records, _record_keys(records), strict=True):
        identity = (record["rule_id"], key, record.get("container") or "", record.get("path") or "")
        identities.append(identity)
        contents.append(
            (*identity, record["severity"], record.get("message", ""), record.get("status"))
        )
    return identities, contents


def _changed_cluster_records(
    session: Session,
    step: _ClusterStep,
    *,
    cluster_id: str,
    rules: EngineHandle,
    base: _Base,
    todo: Collection[str],
    live_keys: Collection[str],
) -> tuple[list[dict[str, Any]], frozenset[str]] | None:
    """Of an incremental scan's cluster-rule records, those whose findings can differ from
    what the previous complete scan left (None when its records are no longer cached): every
    record of an identity that was added, removed or changed since that scan's records, or
    whose subject changed (`todo`) or is no live object, or whose finding is exempted (an
    exempted finding is written again by every scan). The others would be configured and
    observed exactly as that scan did (same record, same subject facts, same exemptions:
    `_still_valid`). Also the fingerprints of every such identity (removed ones included)."""
    exempted = {
        (rule_id, ResourceRef(api, kind, ns, name).key, container or "", path or "")
        for rule_id, api, kind, ns, name, container, path in session.execute(
            select(Finding.rule_id, Finding.api_version, Finding.kind, Finding.namespace)
            .add_columns(Finding.name, Finding.container, Finding.path)
            .where(Finding.cluster_id == cluster_id, Finding.status == FindingStatus.EXEMPTED)
        )
    }
    wanted: set[_Identity]
    if step.same_as is not None and step.same_as == base.digest:
        # The records are that state's own (`_label_only_reuse`): none was added, removed
        # or changed. Only records on a changed or gone subject, or on an exempted
        # finding's, can be wanted: the others' identities are not worked out.
        exempted_keys = {identity[1] for identity in exempted}
        kept_records = [
            record
            for record, key in zip(step.records, _record_keys(step.records), strict=True)
            if key in todo or key not in live_keys or key in exempted_keys
        ]
        identities, _contents = _identities(kept_records)
        wanted = {
            identity
            for identity in identities
            if identity[1] in todo or identity[1] not in live_keys
        }
    else:
        identities, contents = _identities(step.records)
        kept_records = step.records
        key = rule_cache.cluster_state_key(base.digest)
        cached = _cluster_states(session, [key], catalogue_version=rules.catalogue_version)
        if key not in cached:
            return None
        before_identities, before_contents = _identities(cached[key].state["results"])
        now_set, before_set = set(contents), set(before_contents)
        wanted = {
            identity
            for identity, content in zip(before_identities, before_contents, strict=True)
            if content not in now_set
        }
        wanted.update(
            identity
            for identity, content in zip(identities, contents, strict=True)
            if content not in before_set or identity[1] in todo or identity[1] not in live_keys
        )
    wanted.update(exempted)
    records = [
        record
        for record, identity in zip(kept_records, identities, strict=True)
        if identity in wanted
    ]
    fingerprints = frozenset(
        finding_fingerprint(rule_id=rule_id, ref_key=ref_key, container=container, path=path)
        for rule_id, ref_key, container, path in wanted
    )
    return records, fingerprints


def _observe(
    candidates: Sequence[Candidate],
    *,
    cluster_id: str,
    rules: EngineHandle,
    facts: Mapping[str, ObjectFacts],
    exemptions: Sequence[Exemption],
    at: datetime,
) -> list[ObservedFinding]:
    """Apply the configuration and the database's exemptions (one pure function, the
    offline scan's) to candidate results (`exemptions`: the cluster's, as `list_exemptions`
    gives them, inactive ones included: only the active ones apply, `is_active`)."""
    configured = rules.apply_config(
        [c.result for c in candidates],
        cluster_id=cluster_id,
        facts=facts,
        stored=stored_exemptions([e for e in exemptions if is_active(e)]),
        now=at,
    )
    shared: dict[tuple[Any, ...], dict[str, Any]] = {}
    return [
        observed_finding(candidate, result, shared=shared)
        for candidate, result in zip(candidates, configured, strict=True)
    ]


def _object_candidates(
    session: Session,
    todo: Mapping[str, str],
    *,
    rules: EngineHandle,
    known: Evaluated,
    into: list[Candidate],
    suppressed: Collection[str] = frozenset(),
) -> set[str]:
    """Add the object-rule results of the `todo` objects (ref key -> content hash) to `into`,
    from `known` or else the cache; return the keys of objects with neither. The results
    finalize would drop next are left out: those, not errors, on a resource in `suppressed`
    (reported on its controller; in a fleet of workloads, most of a cold scan's results)."""
    kept = known.objects
    cached = rule_cache.cached_results(
        session,
        {h for h in todo.values() if h not in kept},
        catalogue_version=known.catalogue_version,
    )
    unevaluated: set[str] = set()
    for key, chash in todo.items():
        if chash in kept:
            found = kept[chash]
        elif chash in cached:
            found = [rules.result(r) for r in cached[chash]]
        else:
            unevaluated.add(key)
            continue
        if key in suppressed:  # what finalize would drop next (the same test, per result)
            found = [r for r in found if r.is_error or r.resource.key not in suppressed]
        into.extend(Candidate(result, chash, "object") for result in found)
    return unevaluated


@dataclass(slots=True)
class _FleetStep:
    """The fleet rules' part of a cluster scan: `owned` None when the scan leaves them to the
    fleet evaluation, else the fleet rules that ran (only their findings are reconciled)."""

    owned: frozenset[str] | None = None
    candidates: list[Candidate] = field(default_factory=list)
    facts: dict[str, ObjectFacts] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _fleet_step(session: Session, run: ScanRun, *, rules: EngineHandle, at: datetime) -> _FleetStep:
    """The fleet rules' results for the scan's cluster (`fleet_rules.fleet_results`, the
    fleet evaluation's function), with the facts of the workloads they name, unless a fleet
    scan started the scan (`fleet_rules_in_scan`). When the inventory takes too long, no
    fleet rule ran and their findings stay as they were."""
    if not fleet_rules_in_scan(run):
        return _FleetStep()
    try:
        found = fleet_results(
            session,
            rules=rules,
            timeout_seconds=FLEET_RULES_LIMIT_S,
            now=at,
            cluster_id=run.cluster_id,
        )
    except SearchTimeout as problem:
        log.error("fleet rules of cluster %s: %s", run.cluster_id, problem)
        error = {"stage": "fleet_rules", "error": f"{type(problem).__name__}: {problem}"[:500]}
        return _FleetStep(owned=frozenset(), errors=[error])
    return _FleetStep(
        owned=found.owned,
        candidates=[
            Candidate(result, None, "fleet") for result in found.results.get(run.cluster_id, [])
        ],
        facts=found.facts.get(run.cluster_id, {}),
        errors=[{"stage": "fleet_rules", "error": message[:500]} for message in found.errors],
    )


def _evaluated(
    rules: EngineHandle,
    *,
    cluster_ok: bool,
    fleet: _FleetStep,
    live_keys: set[str],
    reconciled: set[str],
) -> Callable[[KnownFinding], bool]:
    """Which known findings the scan evaluated (those not observed again are resolved):
    cluster rules' when the cluster step worked, fleet rules' when this scan ran them (else the
    fleet evaluation owns them), object rules' of the objects it reconciled, and every
    finding of an object that is gone."""
    cluster_rule_ids, fleet_rule_ids = rules.cluster_rule_ids, rules.fleet_rule_ids

    def evaluated(finding: KnownFinding) -> bool:
        if finding.rule_id in cluster_rule_ids:
            return cluster_ok
        if fleet.owned is not None and finding.rule_id in fleet_rule_ids:
            return finding.rule_id in fleet.owned  # evaluated here, for the whole cluster
        key = finding.ref.key
        if key not in live_keys:
            return True  # the object is gone: its findings are resolved
        return finding.rule_id not in fleet_rule_ids and key in reconciled

    return evaluated


def step_number(outcome: StepOutcome) -> int:
    return outcome.shard if isinstance(outcome, ShardOutcome) else CLUSTER_STEP


def merged_outcomes(
    results: Sequence[Mapping[str, Any] | StepOutcome], *, recorded: Mapping[int, Mapping[str, Any]]
) -> list[StepOutcome]:
    """Every step's outcome: those recorded in the database (all of them, after a re-drive
    whose chord carried only the lost steps), then those handed over that were not recorded."""
    outcomes = {step: step_outcome(data) for step, data in recorded.items()}
    for result in results:
        outcome = step_outcome(result)
        outcomes.setdefault(step_number(outcome), outcome)
    return [outcomes[step] for step in sorted(outcomes)]


class _Changed(NamedTuple):
    """What an incremental finalize knows changed: the objects to reconcile (ref keys), the
    live objects, and the fleet rules this scan ran (None: the fleet evaluation's)."""

    todo: Collection[str]
    live_keys: Collection[str]
    fleet_owned: frozenset[str] | None


def _reconcile_scope(
    session: Session,
    step: _ClusterStep,
    *,
    cluster_id: str,
    rules: EngineHandle,
    base: _Base | None,
    changed: _Changed,
) -> tuple[list[dict[str, Any]], FindingScope | None]:
    """The cluster-rule records a finalize reconciles, and the `FindingScope` of its
    reconciliation (None: every active finding, with every record): an incremental scan's
    `_changed_cluster_records`, unless there are more than `SCOPED_LIMIT`."""
    found = (
        _changed_cluster_records(
            session,
            step,
            cluster_id=cluster_id,
            rules=rules,
            base=base,
            todo=changed.todo,
            live_keys=changed.live_keys,
        )
        if base is not None and step.ok and len(changed.todo) <= SCOPED_LIMIT
        else None
    )
    if found is None or len(found[1]) > SCOPED_LIMIT:
        return step.records, None
    records, fingerprints = found
    return records, FindingScope(
        fingerprints=fingerprints,
        ref_keys=frozenset(changed.todo),
        rule_ids=changed.fleet_owned or frozenset(),
        observed_rule_ids=rules.cluster_rule_ids,
    )


def finalize_scan(
    session: Session,
    *,
    scan_id: int,
    cluster_id: str,
    results: Sequence[Mapping[str, Any] | StepOutcome],
    rules: EngineHandle,
    public_url: str,
    now: datetime | None = None,
    known: Evaluated | None = None,
    judged: EngineHandle | None = None,
) -> FinalizeOutcome:
    """Merge shard and cluster-rule results, exempt, diff against the previous scan, record;
    a delivery of the news is created with the report as this scan left it. `known`:
    results this process just evaluated and cached (used instead of reading them back when
    they are of the catalogue version this step judges by). `judged`: the plan's
    `judged_as_deployed` of `rules` for this cluster, when the plan runs in this process."""
    rules = judged or judged_as_deployed(session, cluster_id, rules)
    at = now or utcnow()
    cluster = session.scalar(select(Cluster).where(Cluster.id == cluster_id).with_for_update())
    # Locked now (as `finish_scan_run` would at the end): a step finishing late writes the
    # run row first too, so neither waits on the other's next row.
    run = session.get(ScanRun, scan_id, with_for_update=True)
    if cluster is None or run is None:
        raise LookupError(f"scan {scan_id} of cluster {cluster_id} does not exist")
    if run.state != ScanState.RUNNING:
        return FinalizeOutcome(scan_id, cluster_id, dict(run.counts), [], already_done=True)
    version = rules.catalogue_version
    outcomes = merged_outcomes(results, recorded=step_outcomes(session, scan_id))
    errors = [dict(e) for o in outcomes for e in o.errors]

    if known is None or known.catalogue_version != version:
        known = Evaluated(version)
    step = _cluster_results(session, outcomes, rules=rules, kept=known.states)
    suppressed, cluster_ok = step.suppressed, step.ok
    live = (
        [(row.ref_key, row.content_hash, row.version_id) for row in known.live]
        if known.live is not None
        else core_rows(
            session,
            select(
                KubeObject.ref_key, KubeObject.current_hash, KubeObject.current_version_id
            ).where(KubeObject.cluster_id == cluster_id, KubeObject.deleted_at.is_(None)),
        )
    )
    watermark = max((vid or 0 for _k, _h, vid in live), default=0)
    # One read of the cluster's exemptions (inactive ones included) for both uses.
    exemptions = list_exemptions(session, cluster_id=cluster_id, include_inactive=True)
    base = (
        _incremental_base(session, run, rules=rules, step=step, exemptions=exemptions)
        if cluster_ok
        else None
    )
    if base is not None:
        # Only objects changed since the last complete scan (and objects whose controller
        # dedup status flipped) can have different object-rule findings.
        todo = {
            key: chash for key, chash, vid in live if (vid or 0) > base.since or key in base.flipped
        }
    else:
        todo = {key: chash for key, chash, _vid in live}
    live_keys = {key for key, _h, _v in live}
    # An incremental scan reconciles only the cluster-rule records that can differ from the
    # previous scan's findings, and reads only the findings they and the changed objects can
    # change (`FindingScope`).
    fleet = _fleet_step(session, run, rules=rules, at=at)
    records, scope = _reconcile_scope(
        session,
        step,
        cluster_id=cluster_id,
        rules=rules,
        base=base,
        changed=_Changed(todo.keys(), live_keys, fleet.owned),
    )
    candidates = [Candidate(rules.result(record), None, "cluster") for record in records]
    unevaluated = _object_candidates(
        session, todo, rules=rules, known=known, into=candidates, suppressed=suppressed
    )
    candidates.extend(fleet.candidates)
    if cluster_ok:
        facts = step.facts(c.result.resource.key for c in candidates)
    else:
        facts = _facts_from_bodies(session, [c.content_hash for c in candidates if c.content_hash])
    facts = {**fleet.facts, **facts}
    errors.extend(fleet.errors)

    for candidate in candidates:
        if candidate.result.is_error:
            errors.append(
                {
                    "stage": "rule",
                    "rule_id": candidate.result.rule_id,
                    "resource": candidate.result.resource.to_dict(),
                    "error": candidate.result.message,
                }
            )
    candidates = [
        c for c in candidates if not c.result.is_error and c.result.resource.key not in suppressed
    ]

    observed = _observe(
        candidates,
        cluster_id=cluster_id,
        rules=rules,
        facts=facts,
        exemptions=exemptions,
        at=at,
    )

    evaluated = _evaluated(
        rules,
        cluster_ok=cluster_ok,
        fleet=fleet,
        live_keys=live_keys,
        reconciled={key for key in todo if key not in unevaluated},
    )
    settle_new(session, cluster_id, scan_id=scan_id)
    lifecycle = reconcile_findings(
        session,
        cluster_id,
        scan_id=scan_id,
        observed=observed,
        evaluated=evaluated,
        at=at,
        versions={key: vid for key, _h, vid in live},
        scope=scope,
    )
    statuses, severities = finding_counts(session, cluster_id)
    counts = {
        **lifecycle.as_counts(),
        "open": statuses["open"],
        "exempted": statuses["exempted"],
        "incremental": int(base is not None),
        "reconciled_objects": len(todo),
        "version_watermark": watermark,
        "objects": run.object_count,
        "evaluated": sum(o.evaluated for o in outcomes if isinstance(o, ShardOutcome)),
        "cache_hits": sum(o.cache_hits for o in outcomes if isinstance(o, ShardOutcome)),
        "unevaluated": len(unevaluated),
        "violations": statuses["new"] + statuses["open"] + statuses["exempted"],
        **{f"severity_{s}": severities.get(s, 0) for s in SEVERITIES},
    }
    finish_scan_run(session, scan_id, counts=counts, errors=errors, at=utcnow(), locked=run)
    delivery_ids = []
    changed = lifecycle.new + lifecycle.resolved + lifecycle.unexempted
    if cluster.channel and changed:  # only news is worth a message
        content = report_content(
            session, cluster_id=cluster_id, scan_id=scan_id, public_url=public_url
        )
        delivery_ids.append(
            ensure_delivery(
                session,
                cluster_id=cluster_id,
                scan_run_id=scan_id,
                channel=cluster.channel,
                content=content,
            ).id
        )
    return FinalizeOutcome(scan_id, cluster_id, counts, delivery_ids)
