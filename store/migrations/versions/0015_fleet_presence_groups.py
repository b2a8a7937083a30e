"""image_groups (the five grouping columns once per group, named by an integer), image_changes
and image_present keyed by that integer, and daily checkpoints of the slots current per group
(image_checkpoints, image_checkpoint_slots) (store.image_presence)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 03:00:00

An `image_changes` row was a 64-character key, the five grouping columns (cluster, kind,
namespace, the shape's path text, the JSON value) and two counts, about 1.5 rows per stored
version; it becomes (group_id, at, started, ended). `image_present` (a row per group with
current slots) keeps the five columns beside its group id, so the present search reads it alone. Fill, on PostgreSQL and SQLite alike: the
rows revision 0014 holds move to the new tables with one INSERT ... SELECT each (the groups from
the old rows, then the old rows' counts joined to their group by key); a database whose
`image_changes` is empty (it was migrated past 0011 before any version was stored, or from
before 0011 with its versions) is filled from the stored versions by the function a loader
calls (`store.image_presence.backfill`). No checkpoint is taken here: the expiry purge takes
them (`store.image_presence.take_checkpoints`); until then the searches add up every row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from store.image_presence import backfill

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# One row per group: PostgreSQL picks each key's first row, SQLite a row of each key.
_GROUPS_POSTGRES = """
    INSERT INTO image_groups (key, cluster_id, kind, namespace, shape, value)
    SELECT DISTINCT ON (group_key) group_key, cluster_id, kind, namespace, shape, value
    FROM image_changes ORDER BY group_key
"""
_GROUPS_SQLITE = """
    INSERT INTO image_groups (key, cluster_id, kind, namespace, shape, value)
    SELECT group_key, cluster_id, kind, namespace, shape, value
    FROM image_changes GROUP BY group_key ORDER BY group_key
"""
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _group_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("cluster_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=200), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("shape", sa.Text(), nullable=False),
        sa.Column("value", _JSON, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "image_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        *_group_columns(),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_image_groups_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_groups")),
        sa.UniqueConstraint("key", name=op.f("uq_image_groups_key")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    # One row per group: PostgreSQL picks each key's first row, SQLite a row of each key.
    op.execute(_GROUPS_POSTGRES if postgres else _GROUPS_SQLITE)
    op.rename_table("image_changes", "image_changes_0014")
    op.rename_table("image_present", "image_present_0014")
    op.drop_index("ix_image_changes_at", table_name="image_changes_0014")
    if postgres:  # constraint names are the schema's: free them for the new tables
        for table, constraint in (
            ("image_changes_0014", "pk_image_changes"),
            ("image_changes_0014", "fk_image_changes_cluster_id_clusters"),
            ("image_present_0014", "pk_image_present"),
            ("image_present_0014", "fk_image_present_cluster_id_clusters"),
        ):
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")
    _create_counts()
    op.execute(
        "INSERT INTO image_changes (group_id, at, started, ended) "
        "SELECT g.id, c.at, c.started, c.ended FROM image_changes_0014 c "
        "JOIN image_groups g ON g.key = c.group_key"
    )
    op.execute(
        "INSERT INTO image_present (group_id, cluster_id, kind, namespace, shape, value, slots) "
        "SELECT g.id, g.cluster_id, g.kind, g.namespace, g.shape, g.value, p.slots "
        "FROM image_present_0014 p JOIN image_groups g ON g.key = p.group_key"
    )
    op.drop_table("image_changes_0014")
    op.drop_table("image_present_0014")
    if postgres:  # new tables: the planner's statistics now, not when autovacuum gets to them
        op.execute("ANALYZE image_groups, image_changes, image_present")
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM image_changes LIMIT 1")).first() is None:
        backfill(Session(bind=bind))


def _create_counts() -> None:
    op.create_table(
        "image_changes",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["image_groups.id"],
            name=op.f("fk_image_changes_group_id_image_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "at", name=op.f("pk_image_changes")),
    )
    op.create_index("ix_image_changes_at", "image_changes", ["at"])
    op.create_table(
        "image_present",
        sa.Column("group_id", sa.Integer(), nullable=False),
        *_group_columns(),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_image_present_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["image_groups.id"],
            name=op.f("fk_image_present_group_id_image_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_image_present")),
    )
    op.create_table(
        "image_checkpoints",
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("at", name=op.f("pk_image_checkpoints")),
    )
    op.create_table(
        "image_checkpoint_slots",
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["at"],
            ["image_checkpoints.at"],
            name=op.f("fk_image_checkpoint_slots_at_image_checkpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["image_groups.id"],
            name=op.f("fk_image_checkpoint_slots_group_id_image_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("at", "group_id", name=op.f("pk_image_checkpoint_slots")),
    )


def downgrade() -> None:
    """Back to one wide row per group and instant (checkpoints dropped: 0014 had none)."""
    op.drop_table("image_checkpoint_slots")
    op.drop_table("image_checkpoints")
    op.create_table(
        "image_changes_0014",
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        *_group_columns(),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
    )
    op.create_table(
        "image_present_0014",
        sa.Column("group_key", sa.String(length=64), nullable=False),
        *_group_columns(),
        sa.Column("slots", sa.Integer(), nullable=False),
    )
    op.execute(
        "INSERT INTO image_changes_0014 SELECT g.key, c.at, g.cluster_id, g.kind, g.namespace, "
        "g.shape, g.value, c.started, c.ended FROM image_changes c JOIN image_groups g "
        "ON g.id = c.group_id"
    )
    op.execute(
        "INSERT INTO image_present_0014 SELECT g.key, p.cluster_id, p.kind, p.namespace, "
        "p.shape, p.value, p.slots FROM image_present p JOIN image_groups g ON g.id = p.group_id"
    )
    op.drop_table("image_changes")
    op.drop_table("image_present")
    op.drop_table("image_groups")
    op.create_table(
        "image_changes",
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        *_group_columns(),
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
    op.create_index("ix_image_changes_at", "image_changes", ["at"])
    op.create_table(
        "image_present",
        sa.Column("group_key", sa.String(length=64), nullable=False),
        *_group_columns(),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_image_present_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_key", name=op.f("pk_image_present")),
    )
    op.execute("INSERT INTO image_changes SELECT * FROM image_changes_0014")
    op.execute("INSERT INTO image_present SELECT * FROM image_present_0014")
    op.drop_table("image_changes_0014")
    op.drop_table("image_present_0014")
