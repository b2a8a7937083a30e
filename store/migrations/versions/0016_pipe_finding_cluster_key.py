"""findings: no foreign-key check of `cluster_id` per finding row; a cluster's findings are
deleted with it by a trigger

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 06:15:00

A cold scan COPYs thousands of findings per cluster, all of the one cluster whose row its
finalize holds locked (`SELECT ... FOR UPDATE`). Each row ran the foreign-key check of
`cluster_id` against `clusters`: a query and a row lock per finding, about a third of
PostgreSQL's time for those rows (54,143 findings of 16 bench clusters: 1.07 s of backend CPU
with the key, 0.72 s without). `store.findings.reconcile_findings`, the only writer of
findings, now takes that key-share lock once for the cluster before it inserts any.

What the key did besides checking, deleting a cluster's findings with it (and so their events,
migration 0013's trigger), is done by a trigger on `clusters`: on PostgreSQL one per statement
over its deleted rows, on SQLite one per row.
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

CLUSTER_KEY = "fk_findings_cluster_id_clusters"
TRIGGER = "trg_clusters_delete_findings"
FUNCTION = "k8smon_delete_cluster_findings"
CREATE_FUNCTION = (
    "CREATE FUNCTION k8smon_delete_cluster_findings() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN DELETE FROM findings f USING gone_clusters g WHERE f.cluster_id = g.id; "
    "RETURN NULL; END $$"
)
CREATE_STATEMENT_TRIGGER = (
    "CREATE TRIGGER trg_clusters_delete_findings AFTER DELETE ON clusters "
    "REFERENCING OLD TABLE AS gone_clusters FOR EACH STATEMENT "
    "EXECUTE FUNCTION k8smon_delete_cluster_findings()"
)
CREATE_ROW_TRIGGER = (
    "CREATE TRIGGER trg_clusters_delete_findings AFTER DELETE ON clusters FOR EACH ROW "
    "BEGIN DELETE FROM findings WHERE cluster_id = OLD.id; END"
)
# SQLite: recreating `findings` drops the triggers on it; migration 0013's is made again.
EVENTS_TRIGGER = "trg_findings_delete_events"
CREATE_EVENTS_ROW_TRIGGER = (
    "CREATE TRIGGER trg_findings_delete_events AFTER DELETE ON findings FOR EACH ROW "
    "BEGIN DELETE FROM finding_events WHERE finding_id = OLD.id; END"
)


def _recreate_events_trigger() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {EVENTS_TRIGGER}")
    op.execute(CREATE_EVENTS_ROW_TRIGGER)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(CLUSTER_KEY, "findings", type_="foreignkey")
        op.execute(CREATE_FUNCTION)
        op.execute(CREATE_STATEMENT_TRIGGER)
        return
    with op.batch_alter_table("findings", recreate="always") as batch:
        batch.drop_constraint(CLUSTER_KEY, type_="foreignkey")
    _recreate_events_trigger()
    op.execute(CREATE_ROW_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TRIGGER} ON clusters")
        op.execute(f"DROP FUNCTION {FUNCTION}()")
        op.create_foreign_key(
            CLUSTER_KEY, "findings", "clusters", ["cluster_id"], ["id"], ondelete="CASCADE"
        )
        return
    op.execute(f"DROP TRIGGER {TRIGGER}")
    with op.batch_alter_table("findings", recreate="always") as batch:
        batch.create_foreign_key(
            CLUSTER_KEY, "clusters", ["cluster_id"], ["id"], ondelete="CASCADE"
        )
    _recreate_events_trigger()
