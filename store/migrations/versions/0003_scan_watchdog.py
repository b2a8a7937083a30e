"""scan watchdog: scan_runs heartbeat, deadline, finalize task, re-drives, failure reason;
scan_steps (one row per step of a running scan)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("scan_runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("finalize_task_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("redrives", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("failure_reason", sa.Text(), nullable=True))
    op.create_table(
        "scan_steps",
        sa.Column("scan_id", BIG_ID, nullable=False),
        sa.Column("step", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("first_id", BIG_ID, nullable=True),
        sa.Column("last_id", BIG_ID, nullable=True),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "outcome",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scan_runs.id"],
            name=op.f("fk_scan_steps_scan_id_scan_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scan_id", "step", name=op.f("pk_scan_steps")),
    )


def downgrade() -> None:
    op.drop_table("scan_steps")
    with op.batch_alter_table("scan_runs") as batch:
        batch.drop_column("failure_reason")
        batch.drop_column("redrives")
        batch.drop_column("finalize_task_id")
        batch.drop_column("deadline_at")
        batch.drop_column("heartbeat_at")
