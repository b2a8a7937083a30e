"""scan_runs: an index of each cluster's finished scans by id, for the fleet page's trends

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 07:10:00

The fleet page's trend column shows each cluster's open findings after its last 8 finished
scans. Read with a window over every finished scan run, the page sorted all of them (55,800
rows at 300 clusters, a scan every 4 hours for 31 days: about 214 ms of a 320 ms fleet page);
with this partial index on (cluster_id, id) each cluster's last 8 are one short index scan
(a LATERAL subquery, `ingest.web.queries.recent_trends`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

INDEX = "ix_scan_runs_cluster_done"
FINISHED = "state = 'done'"


def upgrade() -> None:
    op.create_index(
        INDEX,
        "scan_runs",
        ["cluster_id", "id"],
        postgresql_where=sa.text(FINISHED),
        sqlite_where=sa.text(FINISHED),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="scan_runs")
