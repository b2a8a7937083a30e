"""rule_result_cache.uses_digest and fleet_evaluations: a fleet evaluation of unchanged inputs is skipped

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 16:10:00

The fleet evaluation after every fleet scan judged the whole fleet's image inventory again
even when nothing it reads had changed (~5 ms of CPU per cluster). Each cluster's inventory row
now carries the digest of the uses it holds (`uses_digest`, carried with them when a label-only
rescan moves the row), and `fleet_evaluations` (one row) records the digest of the inputs the
last evaluation judged and until when its results hold with time (`store.fleet_state`). Rows
of the stored form before (`inventory/3:`) have no digest: the form's version moved to 4, so
they are worked out again once and the purge of other catalogue versions deletes them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rule_result_cache", sa.Column("uses_digest", sa.String(64), nullable=True))
    op.create_table(
        "fleet_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("history_epoch", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("inputs", sa.String(64), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_evaluations")),
    )


def downgrade() -> None:
    op.drop_table("fleet_evaluations")
    op.drop_column("rule_result_cache", "uses_digest")
