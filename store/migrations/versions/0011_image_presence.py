"""image_changes: image presence over time, per cluster, kind, namespace, shape and value
(store.image_presence)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 21:40:00

Backfill: migration 0012 fills it (with `store.image_presence.backfill`, which since 0012 also
writes `image_present`); a database that ran this revision before 0012 existed was filled here,
and 0012 then fills `image_present` from it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_changes",
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cluster_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=200), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("shape", sa.Text(), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_image_changes_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_key", "at", name=op.f("pk_image_changes")),
    )


def downgrade() -> None:
    op.drop_table("image_changes")
