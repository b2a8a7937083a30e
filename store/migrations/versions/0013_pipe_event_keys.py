"""finding_events: no foreign-key checks per event row; a finding's events are deleted with it by
a trigger

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 00:10:00

A cold scan writes an `opened` event for each new finding, in the same transaction as the
finding, by COPY: thousands of rows per cluster. Each row ran two foreign-key checks, a query
each: `cluster_id` against `clusters` (redundant: a finding belongs to its cluster, and deleting
a cluster deletes its findings, hence their events) and `finding_id` against `findings`, which
locks the finding just inserted (a row lock, written to the WAL, per event). The two checks
were about two thirds of PostgreSQL's time for those rows. No query needs them: the only
writer is `store.findings.reconcile_findings`, which names findings it has just written or read.

What the `finding_id` key did besides checking, deleting a finding's events with it (the purge
of resolved findings, a cluster's deletion), is done by a trigger on `findings`: on PostgreSQL
one per statement over its deleted rows (a purge batch deletes its events in one join), on
SQLite one per row.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

CLUSTER_KEY = "fk_finding_events_cluster_id_clusters"
FINDING_KEY = "fk_finding_events_finding_id_findings"
TRIGGER = "trg_findings_delete_events"
FUNCTION = "k8smon_delete_finding_events"
CREATE_FUNCTION = (
    "CREATE FUNCTION k8smon_delete_finding_events() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN DELETE FROM finding_events e USING gone_findings g WHERE e.finding_id = g.id; "
    "RETURN NULL; END $$"
)
CREATE_STATEMENT_TRIGGER = (
    "CREATE TRIGGER trg_findings_delete_events AFTER DELETE ON findings "
    "REFERENCING OLD TABLE AS gone_findings FOR EACH STATEMENT "
    "EXECUTE FUNCTION k8smon_delete_finding_events()"
)
CREATE_ROW_TRIGGER = (
    "CREATE TRIGGER trg_findings_delete_events AFTER DELETE ON findings FOR EACH ROW "
    "BEGIN DELETE FROM finding_events WHERE finding_id = OLD.id; END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(CLUSTER_KEY, "finding_events", type_="foreignkey")
        op.drop_constraint(FINDING_KEY, "finding_events", type_="foreignkey")
        op.execute(CREATE_FUNCTION)
        op.execute(CREATE_STATEMENT_TRIGGER)
        return
    with op.batch_alter_table("finding_events", recreate="always") as batch:
        batch.drop_constraint(CLUSTER_KEY, type_="foreignkey")
        batch.drop_constraint(FINDING_KEY, type_="foreignkey")
    op.execute(CREATE_ROW_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TRIGGER} ON findings")
        op.execute(f"DROP FUNCTION {FUNCTION}()")
        op.create_foreign_key(
            FINDING_KEY, "finding_events", "findings", ["finding_id"], ["id"], ondelete="CASCADE"
        )
        op.create_foreign_key(
            CLUSTER_KEY, "finding_events", "clusters", ["cluster_id"], ["id"], ondelete="CASCADE"
        )
        return
    op.execute(f"DROP TRIGGER {TRIGGER}")
    with op.batch_alter_table("finding_events", recreate="always") as batch:
        batch.create_foreign_key(
            FINDING_KEY, "findings", ["finding_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_foreign_key(
            CLUSTER_KEY, "clusters", ["cluster_id"], ["id"], ondelete="CASCADE"
        )
