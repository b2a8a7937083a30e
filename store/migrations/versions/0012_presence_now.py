"""image_present (the present image slots per group), image_horizon (the purge's merge
horizon) and an index on image_changes.at (store.image_presence)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 00:20:00

Fill, on PostgreSQL and SQLite alike: a database whose `image_changes` revision 0011 filled
gets `image_present` from it (each group's started - ended, groups with current slots only);
otherwise both stay empty and migration 0015 fills its tables from the stored versions (it
used to be done here by `store.image_presence.backfill`, which writes 0015's tables since).
`image_horizon` starts empty (nothing merged yet: until now the purge took deleted versions
back, which leaves the table exact for every period).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_present",
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("cluster_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=200), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("shape", sa.Text(), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_image_present_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_key", name=op.f("pk_image_present")),
    )
    op.create_table(
        "image_horizon",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merged_before", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_horizon")),
    )
    op.create_index("ix_image_changes_at", "image_changes", ["at"])
    op.execute(
        "INSERT INTO image_present (group_key, cluster_id, kind, namespace, shape, value, slots) "
        "SELECT group_key, min(cluster_id), min(kind), min(namespace), min(shape), "
        "(SELECT c.value FROM image_changes c WHERE c.group_key = g.group_key LIMIT 1), "
        "sum(started) - sum(ended) "
        "FROM image_changes g GROUP BY group_key HAVING sum(started) - sum(ended) <> 0"
    )


def downgrade() -> None:
    op.drop_index("ix_image_changes_at", table_name="image_changes")
    op.drop_table("image_horizon")
    op.drop_table("image_present")
