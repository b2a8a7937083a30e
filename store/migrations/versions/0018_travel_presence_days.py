"""image presence day summaries: an integer per image value and shape (image_values), per
derived checkpoint the slots and clusters of each value (image_checkpoint_values), and per
derived day its changes and the instants a value came into or left a cluster
(image_day_changes, image_day_events) (store.presence_days)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 09:30:00

The time-travel `distinct` image searches added up, per JSON value and cluster, every group's
slots at the checkpoint before their period and every change after it: about 2,900 rows per
cluster at the checkpoint and 4,600 per cluster and day of changes in the fleet-scale bench,
joined to their groups and hashed per (JSON value, cluster), so they grew with the fleet
(7.55 s at 300 clusters). A day's changes touch nearly every (value, cluster) pair, so a
summary per value at the checkpoint alone does not help; what is rare is a value coming into
or leaving a cluster (about 230 per cluster and day against 4,600 changes). The searches read
the per-value counts at the checkpoint, the per-value changes after it and those instants.

Empty after the upgrade: the expiry purge derives the days of the checkpoints it has
(`store.presence_days.derive_days`, PostgreSQL); until then the searches read what they read
before. Deleting a cluster empties them (a trigger on `clusters`; derived again by the purge).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_DERIVED = (
    "image_day_events",
    "image_hour_changes",
    "image_day_changes",
    "image_checkpoint_values",
)
TRIGGER = "trg_clusters_delete_presence_days"
FUNCTION = "k8smon_forget_presence_days"
CREATE_FUNCTION = (
    "CREATE FUNCTION k8smon_forget_presence_days() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN IF EXISTS (SELECT FROM gone_clusters) THEN "
    "TRUNCATE image_day_events, image_hour_changes, image_day_changes, image_checkpoint_values, "
    "image_derived_days; "
    "END IF; RETURN NULL; END $$"
)
CREATE_STATEMENT_TRIGGER = (
    "CREATE TRIGGER trg_clusters_delete_presence_days AFTER DELETE ON clusters "
    "REFERENCING OLD TABLE AS gone_clusters FOR EACH STATEMENT "
    "EXECUTE FUNCTION k8smon_forget_presence_days()"
)
CREATE_ROW_TRIGGER = (
    "CREATE TRIGGER trg_clusters_delete_presence_days AFTER DELETE ON clusters FOR EACH ROW "
    "BEGIN DELETE FROM image_day_events; DELETE FROM image_hour_changes; "
    "DELETE FROM image_day_changes; "
    "DELETE FROM image_checkpoint_values; DELETE FROM image_derived_days; END"
)


def _day_column() -> sa.Column[object]:
    return sa.Column("day", sa.DateTime(timezone=True), nullable=False)


def _derived_key(table: str, column: str = "day") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        ["image_derived_days.at"],
        name=op.f(f"fk_{table}_{column}_image_derived_days"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "image_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shape", sa.Text(), nullable=False),
        sa.Column("value", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_values")),
        sa.UniqueConstraint("shape", "value", name=op.f("uq_image_values_shape")),
    )
    op.create_table(
        "image_derived_days",
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("base", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["at"],
            ["image_checkpoints.at"],
            name=op.f("fk_image_derived_days_at_image_checkpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("at", name=op.f("pk_image_derived_days")),
    )
    op.create_table(
        "image_checkpoint_values",
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value_id", sa.Integer(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("pairs", sa.Integer(), nullable=False),
        _derived_key("image_checkpoint_values", "at"),
        sa.PrimaryKeyConstraint("at", "value_id", name=op.f("pk_image_checkpoint_values")),
    )
    op.create_table(
        "image_day_changes",
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value_id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.String(length=63), nullable=False),
        _day_column(),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
        _derived_key("image_day_changes"),
        sa.PrimaryKeyConstraint("at", "value_id", "cluster_id", name=op.f("pk_image_day_changes")),
    )
    op.create_index("ix_image_day_changes_day", "image_day_changes", ["day"])
    op.create_table(
        "image_hour_changes",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value_id", sa.Integer(), nullable=False),
        _day_column(),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
        _derived_key("image_hour_changes"),
        sa.PrimaryKeyConstraint("hour", "value_id", name=op.f("pk_image_hour_changes")),
    )
    op.create_index("ix_image_hour_changes_day", "image_hour_changes", ["day"])
    op.create_table(
        "image_day_events",
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value_id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.String(length=63), nullable=False),
        _day_column(),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("prev_left", sa.DateTime(timezone=True), nullable=True),
        _derived_key("image_day_events"),
        sa.PrimaryKeyConstraint("at", "value_id", "cluster_id", name=op.f("pk_image_day_events")),
    )
    op.create_index("ix_image_day_events_day", "image_day_events", ["day"])
    op.create_index(
        "ix_image_day_events_pair", "image_day_events", ["value_id", "cluster_id", "at"]
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE_FUNCTION)
        op.execute(CREATE_STATEMENT_TRIGGER)
    else:
        op.execute(CREATE_ROW_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TRIGGER} ON clusters")
        op.execute(f"DROP FUNCTION {FUNCTION}()")
    else:
        op.execute(f"DROP TRIGGER {TRIGGER}")
    for table in (*_DERIVED, "image_derived_days", "image_values"):
        op.drop_table(table)
