"""finding_events: when each finding opened and resolved, and at which manifest version;
an index on a resource's findings

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 23:45:00

Backfill, best effort: one `opened` event per existing finding at its first_seen, and one
`resolved` event per resolved finding at its resolved_at, each with the version of the object
that was current then (none when the object was already gone, or is not stored). Earlier
open/resolve cycles of a finding were not recorded before this revision and stay unknown.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The version of the finding's object current at `moment` (objects are keyed by ref_key,
# `apiVersion|kind|namespace|name`; a cluster-scoped finding has a NULL namespace).
_VERSION_AT = """(
    SELECT mv.id FROM manifest_versions mv JOIN objects o ON o.id = mv.object_id
    WHERE o.cluster_id = f.cluster_id
      AND o.ref_key = f.api_version || '|' || f.kind || '|' || COALESCE(f.namespace, '')
                      || '|' || f.name
      AND mv.first_seen <= {moment}
      AND (o.deleted_at IS NULL OR o.deleted_at > {moment})
    ORDER BY mv.first_seen DESC, mv.id DESC
    LIMIT 1
)"""


def upgrade() -> None:
    op.create_table(
        "finding_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("cluster_id", sa.String(length=63), nullable=False),
        sa.Column("finding_id", BigId, nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scan_id", BigId, nullable=True),
        sa.Column("version_id", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_finding_events_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["findings.id"],
            name=op.f("fk_finding_events_finding_id_findings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finding_events")),
    )
    op.create_index(
        "ix_finding_events_cluster_at", "finding_events", ["cluster_id", "at", "id"], unique=False
    )
    op.create_index(
        "ix_finding_events_finding", "finding_events", ["finding_id", "at"], unique=False
    )
    op.create_index(
        "ix_findings_cluster_resource", "findings", ["cluster_id", "kind", "name"], unique=False
    )
    op.execute(
        "INSERT INTO finding_events (cluster_id, finding_id, event, at, scan_id, version_id) "  # noqa: S608
        "SELECT f.cluster_id, f.id, 'opened', f.first_seen, NULL, "
        + _VERSION_AT.format(moment="f.first_seen")
        + " FROM findings f"
    )
    op.execute(
        "INSERT INTO finding_events (cluster_id, finding_id, event, at, scan_id, version_id) "  # noqa: S608
        "SELECT f.cluster_id, f.id, 'resolved', f.resolved_at, f.last_scan_id, "
        + _VERSION_AT.format(moment="f.resolved_at")
        + " FROM findings f WHERE f.status = 'resolved' AND f.resolved_at IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_findings_cluster_resource", table_name="findings")
    op.drop_index("ix_finding_events_finding", table_name="finding_events")
    op.drop_index("ix_finding_events_cluster_at", table_name="finding_events")
    op.drop_table("finding_events")
