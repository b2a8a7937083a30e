"""SQLAlchemy 2.x typed models: clusters, keys, telemetry, snapshots, manifests, scans, findings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from contracts.states import ClusterStatus, DeliveryState, FindingStatus, ScanState, SnapshotState
from contracts.timeline import FindingEventKind
from store.types import CachedJson, EnumText, JsonDocument, UtcDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Which `rule_result_cache` rows are image inventories (`store.rule_cache.INVENTORY_CACHE`
# begins with this prefix): the predicate of their partial index, which a query must repeat
# word for word for the planner to use it (migration 0020).
INVENTORY_ROWS = "catalogue_version LIKE 'inventory/%'"

# SQLite's INTEGER PRIMARY KEY is the rowid; BigInteger would not auto-increment there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Cluster(Base):
    """A monitored cluster and who owns it."""

    __tablename__ = "clusters"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(500))
    labels: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    status: Mapped[ClusterStatus] = mapped_column(
        EnumText(ClusterStatus, 16), default=ClusterStatus.ACTIVE
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Materialised state: digest and time of the last applied snapshot.
    current_digest: Mapped[str | None] = mapped_column(String(80))
    current_snapshot_id: Mapped[int | None] = mapped_column(BigId)
    state_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_telemetry_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    keys: Mapped[list[ClusterKey]] = relationship(
        back_populates="cluster", order_by="ClusterKey.id"
    )


class ClusterKey(Base):
    """An Ed25519 public key an agent signs pushes with; two may be active during a rotation."""

    __tablename__ = "cluster_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_id: Mapped[str] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), index=True
    )
    key_id: Mapped[str] = mapped_column(String(128), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    cluster: Mapped[Cluster] = relationship(back_populates="keys")


class TelemetryPing(Base):
    """One telemetry ping from an agent."""

    __tablename__ = "telemetry_pings"
    __table_args__ = (Index("ix_telemetry_cluster_received", "cluster_id", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    agent_version: Mapped[str | None] = mapped_column(String(64))
    kubernetes_version: Mapped[str | None] = mapped_column(String(64))
    platform: Mapped[str | None] = mapped_column(String(32))
    node_count: Mapped[int | None] = mapped_column(Integer)
    namespace_count: Mapped[int | None] = mapped_column(Integer)
    object_count: Mapped[int | None] = mapped_column(Integer)
    object_counts: Mapped[dict[str, int]] = mapped_column(JsonDocument, default=dict)
    collection_duration_s: Mapped[float | None] = mapped_column(Float)
    errors: Mapped[dict[str, str]] = mapped_column(JsonDocument, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)


class Snapshot(Base):
    """A pushed snapshot (full or delta); its document waits in snapshot_documents until
    applied."""

    __tablename__ = "snapshots"
    __table_args__ = (
        Index("ix_snapshots_cluster_id_id", "cluster_id", "id"),
        Index("ix_snapshots_pending", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    digest: Mapped[str] = mapped_column(String(80))
    type: Mapped[str] = mapped_column(String(8))  # full | delta
    base_digest: Mapped[str | None] = mapped_column(String(80))
    object_count: Mapped[int] = mapped_column(Integer, default=0)
    removed_count: Mapped[int] = mapped_column(Integer, default=0)
    collected_at: Mapped[str | None] = mapped_column(String(40))
    agent_version: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[SnapshotState] = mapped_column(
        EnumText(SnapshotState, 12), default=SnapshotState.PENDING
    )
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SnapshotDocument(Base):
    """A pushed snapshot's verified, validated document awaiting materialisation: its JSON as
    one gzip member (the bytes the agent sent, when it sent gzip). Committed before the push
    is acknowledged; the snapshot worker splits it into bodies, image index rows and versions
    (`store.snapshots.apply_pending`) and deletes it.
    """

    __tablename__ = "snapshot_documents"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    # Whether a manifest holds a float (the canonical JSON its hash is of is then written by
    # the standard library's encoder: `store.snapshots.prepare_objects`).
    floats: Mapped[bool] = mapped_column(Boolean)
    document: Mapped[bytes] = mapped_column(LargeBinary)


class SnapshotItem(Base):
    """One object of a snapshot awaiting materialisation; content_hash NULL means removed.

    Written by versions before migration 0014 (a snapshot staged now keeps its document in
    `snapshot_documents` instead); items are deleted once the snapshot is applied.
    """

    __tablename__ = "snapshot_items"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    ref_key: Mapped[str] = mapped_column(String(800), primary_key=True)
    uid: Mapped[str | None] = mapped_column(String(64))
    content_hash: Mapped[str | None] = mapped_column(String(64))


class ManifestBody(Base):
    """A manifest body, stored once per distinct content (content-addressed by SHA-256)."""

    __tablename__ = "manifest_bodies"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BodyImage(Base):
    """One member named `image` in one manifest body (`store.image_index`): where it is
    (`shape`), its value, and its place (`ord`) in the order `$..image` yields them."""

    __tablename__ = "body_images"

    content_hash: Mapped[str] = mapped_column(
        ForeignKey("manifest_bodies.content_hash", ondelete="CASCADE"), primary_key=True
    )
    ord: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    shape: Mapped[str] = mapped_column(Text)
    value: Mapped[Any] = mapped_column(JsonDocument, nullable=False)  # JSON null stays 'null'


class ImageGroup(Base):
    """One kind of image slot (`store.image_presence`): a cluster, kind, namespace, shape (where
    in the body) and value, named by a small integer that `image_changes` and `image_present`
    carry instead of the five columns. `key` is the SHA-256 of the five (`group_key`), the one
    lookup from a slot to its group on every engine (a value may be any JSON)."""

    __tablename__ = "image_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(200))
    namespace: Mapped[str] = mapped_column(String(253))
    shape: Mapped[str] = mapped_column(Text)
    value: Mapped[Any] = mapped_column(JsonDocument, nullable=False)  # JSON null stays 'null'


class ImageChange(Base):
    """How many image slots of one group (`image_groups`) began (`started`) and ended (`ended`)
    being current at one instant (`store.image_presence`): four fixed-width columns a row."""

    __tablename__ = "image_changes"

    __table_args__ = (
        # The purge's merge of the rows before its cutoff finds them by instant.
        Index("ix_image_changes_at", "at"),
    )

    group_id: Mapped[int] = mapped_column(
        ForeignKey("image_groups.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    started: Mapped[int] = mapped_column(Integer)
    ended: Mapped[int] = mapped_column(Integer)


class ImagePresent(Base):
    """How many image slots of one group are current now: the sum of its `image_changes` rows'
    `started - ended`, kept in the same transactions (`store.image_presence`), so the present
    costs one row per group. A group with no current slot has no row. The group's five columns
    are repeated here (a row per current group, not per version), so the present search reads
    this table alone.
    """

    __tablename__ = "image_present"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("image_groups.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(200))
    namespace: Mapped[str] = mapped_column(String(253))
    shape: Mapped[str] = mapped_column(Text)
    value: Mapped[Any] = mapped_column(JsonDocument, nullable=False)
    slots: Mapped[int] = mapped_column(Integer)


class ImageCheckpoint(Base):
    """An instant (a UTC midnight) at which every group's current slots were counted
    (`image_checkpoint_slots`), so a search back in time adds up one checkpoint and the rows
    after it (`store.image_presence`)."""

    __tablename__ = "image_checkpoints"

    at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)


class ImageCheckpointSlots(Base):
    """How many image slots of one group were current at one checkpoint: its `image_changes`
    rows' `started - ended` up to and including that instant (groups with none have no row)."""

    __tablename__ = "image_checkpoint_slots"

    at: Mapped[datetime] = mapped_column(
        ForeignKey("image_checkpoints.at", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("image_groups.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    slots: Mapped[int] = mapped_column(Integer)


class ImageValue(Base):
    """One image value at one shape (`store.presence_days`): named by a small integer, so the
    day summaries group integers, not JSON. `image_groups` rows with this shape and value are
    its groups (one per cluster, kind and namespace)."""

    __tablename__ = "image_values"
    __table_args__ = (UniqueConstraint("shape", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shape: Mapped[str] = mapped_column(Text)
    value: Mapped[Any] = mapped_column(JsonDocument, nullable=False)


class ImageDerivedDay(Base):
    """A checkpoint whose day summaries are derived (`store.presence_days`): its per-value
    counts (`image_checkpoint_values`) and, when `base` (the checkpoint a day before) is set,
    the day from `base` to it (`image_day_changes`, `image_day_events`)."""

    __tablename__ = "image_derived_days"

    at: Mapped[datetime] = mapped_column(
        ForeignKey("image_checkpoints.at", ondelete="CASCADE"), primary_key=True
    )
    base: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ImageCheckpointValue(Base):
    """At one derived checkpoint, per image value (`image_values`): the slots current then
    (`slots`) and the clusters with any (`pairs`)."""

    __tablename__ = "image_checkpoint_values"

    at: Mapped[datetime] = mapped_column(
        ForeignKey("image_derived_days.at", ondelete="CASCADE"), primary_key=True
    )
    value_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    slots: Mapped[int] = mapped_column(Integer)
    pairs: Mapped[int] = mapped_column(Integer)


class ImageDayChange(Base):
    """`image_changes` of one derived day per image value and cluster: the slots that began
    and ended at one instant."""

    __tablename__ = "image_day_changes"
    __table_args__ = (Index("ix_image_day_changes_day", "day"),)

    at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    value_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cluster_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[datetime] = mapped_column(ForeignKey("image_derived_days.at", ondelete="CASCADE"))
    started: Mapped[int] = mapped_column(Integer)
    ended: Mapped[int] = mapped_column(Integer)


class ImageHourChange(Base):
    """`image_day_changes` of one hour of a derived day per image value: the slots that began
    and ended after `hour` - 1 h, up to and including `hour` (a whole UTC hour)."""

    __tablename__ = "image_hour_changes"
    __table_args__ = (Index("ix_image_hour_changes_day", "day"),)

    hour: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    value_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day: Mapped[datetime] = mapped_column(ForeignKey("image_derived_days.at", ondelete="CASCADE"))
    started: Mapped[int] = mapped_column(Integer)
    ended: Mapped[int] = mapped_column(Integer)


class ImageDayEvent(Base):
    """An instant of one derived day at which an image value came into a cluster (`delta` 1:
    its first current slot there) or left it (-1: its last one ended); a coming carries the
    instant it last left before (`prev_left`; None: not since the first derived checkpoint)."""

    __tablename__ = "image_day_events"
    __table_args__ = (
        Index("ix_image_day_events_day", "day"),
        Index("ix_image_day_events_pair", "value_id", "cluster_id", "at"),
    )

    at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    value_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cluster_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[datetime] = mapped_column(ForeignKey("image_derived_days.at", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(Integer)
    prev_left: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ImageHorizon(Base):
    """The instant before which the purge merged `image_changes` (one row, `id` 1): each
    group's rows before it are one row at it, so a period from it on is answered exactly and
    an earlier one is not answered from the table (`store.image_presence.covers`)."""

    __tablename__ = "image_horizon"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merged_before: Mapped[datetime] = mapped_column(UtcDateTime)


class KubeObject(Base):
    """One Kubernetes object's identity within a cluster, and its current version.

    `namespace` is '' for cluster-scoped objects (so the identity is uniquely indexable on
    every engine); `deleted_at` is set when the object disappears from the cluster.
    """

    __tablename__ = "objects"
    __table_args__ = (
        UniqueConstraint("cluster_id", "ref_key", "uid", name="uq_objects_identity"),
        # "current manifests of cluster X (optionally one kind)": partial index, live rows only.
        Index(
            "ix_objects_live_cluster_kind",
            "cluster_id",
            "kind",
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
        # "current manifests of every cluster of one kind".
        Index(
            "ix_objects_live_kind",
            "kind",
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    ref_key: Mapped[str] = mapped_column(String(800))
    api_version: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(200))
    namespace: Mapped[str] = mapped_column(String(253), default="")
    name: Mapped[str] = mapped_column(String(253))
    uid: Mapped[str] = mapped_column(String(64), default="")
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    current_hash: Mapped[str] = mapped_column(ForeignKey("manifest_bodies.content_hash"))
    current_version_id: Mapped[int | None] = mapped_column(BigId)


class ManifestVersion(Base):
    """A distinct version of one object: which body, and when it was first and last seen.

    `last_seen` is stored when the version ends (superseded, or its object deleted); for the
    current version of a live object it is the cluster's `state_updated_at`
    (`store.manifests.object_history` reads it so), which saves rewriting every row per push.
    """

    __tablename__ = "manifest_versions"
    __table_args__ = (
        Index("ix_manifest_versions_object_first_seen", "object_id", "first_seen"),
        Index("ix_manifest_versions_last_seen", "last_seen"),
        # The daily purge's victims (superseded before the cutoff): without it each of its
        # batches scanned the table (31,000,000 rows at fleet scale) from the start.
        Index(
            "ix_manifest_versions_superseded_at",
            "superseded_at",
            postgresql_where=text("superseded_at IS NOT NULL"),
            sqlite_where=text("superseded_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("objects.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(
        ForeignKey("manifest_bodies.content_hash"), index=True
    )
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ScanRun(Base):
    """One scan of one cluster: trigger, timings, counts and errors."""

    __tablename__ = "scan_runs"
    __table_args__ = (
        Index("ix_scan_runs_cluster_started", "cluster_id", "started_at"),
        # Each cluster's last finished scans, for the fleet page's trends (migration 0017).
        Index(
            "ix_scan_runs_cluster_done",
            "cluster_id",
            "id",
            postgresql_where=text("state = 'done'"),
            sqlite_where=text("state = 'done'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(32), default="schedule")
    state: Mapped[ScanState] = mapped_column(EnumText(ScanState, 16), default=ScanState.RUNNING)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)
    catalogue_version: Mapped[str | None] = mapped_column(String(80))
    snapshot_digest: Mapped[str | None] = mapped_column(String(80))
    object_count: Mapped[int] = mapped_column(Integer, default=0)
    shard_count: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, int]] = mapped_column(JsonDocument, default=dict)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument, default=list)
    task_id: Mapped[str | None] = mapped_column(String(64))
    # The scan watchdog's view (workers.services.watchdog): when a step last finished, when
    # the scan must be over, the finalize task's id, how often lost steps were re-sent, and
    # why a failed scan failed.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finalize_task_id: Mapped[str | None] = mapped_column(String(64))
    redrives: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failure_reason: Mapped[str | None] = mapped_column(Text)


class ScanStep(Base):
    """One step of a running scan (a shard, or the cluster rules as step -1): its task id and,
    once finished, its outcome. Rows live while the scan runs; finalize reads and deletes them."""

    __tablename__ = "scan_steps"

    scan_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("scan_runs.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first_id: Mapped[int | None] = mapped_column(BigId)
    last_id: Mapped[int | None] = mapped_column(BigId)
    task_id: Mapped[str] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)


class Finding(Base):
    """A rule violation on one resource, tracked across scans (new/open/resolved/exempted)."""

    __tablename__ = "findings"
    __table_args__ = (
        UniqueConstraint("cluster_id", "fingerprint", name="uq_findings_cluster_fingerprint"),
        Index("ix_findings_cluster_status", "cluster_id", "status"),
        Index("ix_findings_rule_status", "rule_id", "status"),
        # A resource's findings (its page, its timeline).
        Index("ix_findings_cluster_resource", "cluster_id", "kind", "name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign key (migration 0016: a check per row of a scan's COPY): the writer,
    # `store.findings.reconcile_findings`, key-share locks the cluster row once, and a
    # trigger on `clusters` deletes a cluster's findings with it.
    cluster_id: Mapped[str] = mapped_column(String(63))
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(64))
    api_version: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(200))
    namespace: Mapped[str | None] = mapped_column(String(253))
    name: Mapped[str] = mapped_column(String(253))
    container: Mapped[str | None] = mapped_column(String(253))
    path: Mapped[str | None] = mapped_column(String(1000))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[FindingStatus] = mapped_column(
        EnumText(FindingStatus, 16), default=FindingStatus.NEW
    )
    exemption_id: Mapped[int | None] = mapped_column(BigId)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_scan_id: Mapped[int | None] = mapped_column(BigId)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)


class FindingEvent(Base):
    """A finding opened (first seen, or seen again after being resolved) or resolved by a scan,
    with the manifest version of its object that was current then (the change that caused it).

    `version_id` is None when the object was gone (a finding resolved by the object's removal)
    or unknown (cluster-level findings on no stored object). The finding row keeps only its
    latest cycle; these rows keep every one (`store.timeline` reads them).
    """

    __tablename__ = "finding_events"
    __table_args__ = (
        Index("ix_finding_events_cluster_at", "cluster_id", "at", "id"),
        Index("ix_finding_events_finding", "finding_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign keys (migration 0013: a check per row of a scan's COPY, which no query needs):
    # a trigger on `findings` deletes a finding's events with it (a cluster's too, so).
    cluster_id: Mapped[str] = mapped_column(String(63))
    finding_id: Mapped[int] = mapped_column(BigId)
    event: Mapped[FindingEventKind] = mapped_column(EnumText(FindingEventKind, 16))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    scan_id: Mapped[int | None] = mapped_column(BigId)
    version_id: Mapped[int | None] = mapped_column(BigId)


class Exemption(Base):
    """Accepted risk: rules that do not apply to selected resources, globally or in one cluster."""

    __tablename__ = "exemptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_ids: Mapped[list[str]] = mapped_column(JsonDocument)
    scope: Mapped[str] = mapped_column(String(16), default="global")  # global|cluster
    cluster_id: Mapped[str | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), index=True
    )
    selector: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RuleResultCache(Base):
    """Object-rule results keyed by (manifest content hash, catalogue version); also a cluster
    state's cluster-rule results (`store.rule_cache`) and each cluster's image-inventory rows
    (`store.images.INVENTORY_CACHE`), under keys derived from the state digest."""

    __tablename__ = "rule_result_cache"
    __table_args__ = (
        # The clusters' image-inventory rows (`store.rule_cache.inventory_row_of`), one per
        # cluster among a result per manifest body: replacing one reads this index, not the
        # table (migration 0020). Partial, so a cached result costs no insertion into it.
        Index(
            "ix_rule_result_cache_inventory",
            "catalogue_version",
            postgresql_where=text(INVENTORY_ROWS),
            sqlite_where=text(INVENTORY_ROWS),
        ),
    )

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    catalogue_version: Mapped[str] = mapped_column(String(80), primary_key=True)
    # Text on PostgreSQL, not json or jsonb: written whole and read whole, never queried
    # inside, so the server need not parse it (migrations 0010, 0019).
    results: Mapped[list[dict[str, Any]]] = mapped_column(CachedJson)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # An image-inventory row's: the digest of the uses it holds (`store.images.uses_digest`),
    # carried over with them; what a fleet evaluation compares without reading the rows
    # (migration 0021). None on every other row.
    uses_digest: Mapped[str | None] = mapped_column(String(64))


class FleetEvaluation(Base):
    """The fleet rules' last evaluation, one row (`store.fleet_state`): the digest of the
    inputs it judged and until when its results hold with time, so that an evaluation of the
    same inputs before then is skipped; and the history epoch, which the retention purge moves
    when it deletes versions (the since values an inventory row holds may then be stale)."""

    __tablename__ = "fleet_evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    history_epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    inputs: Mapped[str | None] = mapped_column(String(64))
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    evaluated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AdminKey(Base):
    """A security engineer's Ed25519 key for signed admin API requests."""

    __tablename__ = "admin_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer|admin
    key_id: Mapped[str] = mapped_column(String(128), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AdminUser(Base):
    """A local account for the admin pages (password hashed, never stored in clear)."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16))  # viewer|admin
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Raised by sign-out, password, role and enabled changes: older sessions stop working.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AuditEntry(Base):
    """Who did what, when: every admin action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    source: Mapped[str | None] = mapped_column(String(100))


class Delivery(Base):
    """One scan's report to one channel: its content, bound when the scan finished, and its
    attempts (store.deliveries): pending until acknowledged (sent) or dead-lettered (dead)."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_state", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    scan_run_id: Mapped[int | None] = mapped_column(BigId)
    channel: Mapped[str] = mapped_column(String(500))
    state: Mapped[DeliveryState] = mapped_column(
        EnumText(DeliveryState, 16), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Sent as the Idempotency-Key header (and in a webhook's body): the same for every attempt.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    # The report as it stood when its scan finished (reports.model.ClusterReport.to_dict).
    content: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    retry_since: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the retry window's start
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Advisory(Base):
    """An image advisory operators loaded (`contracts.advisories`): its record as loaded.

    `record` is `Advisory.to_dict()`; the columns beside it are what listings filter and
    sort on. Loading the same `advisory_id` again replaces the record.
    """

    __tablename__ = "advisories"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    advisory_id: Mapped[str] = mapped_column(String(100), unique=True)
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(2000))
    record: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    loaded_by: Mapped[str] = mapped_column(String(200))
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
