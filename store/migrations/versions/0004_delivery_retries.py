"""deliveries: idempotency key, content bound at the scan, retry window and dead letters

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column(
                "content",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("retry_since", WHEN, nullable=True))
        batch.add_column(sa.Column("last_attempt_at", WHEN, nullable=True))
        batch.add_column(sa.Column("dead_at", WHEN, nullable=True))
    # Rows from before: a key from their id, and the old silent give-ups become dead letters.
    op.execute(
        "UPDATE deliveries SET idempotency_key = 'delivery-' || CAST(id AS VARCHAR(20)), "
        "retry_since = created_at"
    )
    op.execute("UPDATE deliveries SET state = 'dead', dead_at = created_at WHERE state = 'failed'")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("idempotency_key", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint(op.f("uq_deliveries_idempotency_key"), ["idempotency_key"])


def downgrade() -> None:
    op.execute("UPDATE deliveries SET state = 'failed' WHERE state = 'dead'")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(op.f("uq_deliveries_idempotency_key"), type_="unique")
        batch.drop_column("dead_at")
        batch.drop_column("last_attempt_at")
        batch.drop_column("retry_since")
        batch.drop_column("content")
        batch.drop_column("idempotency_key")
