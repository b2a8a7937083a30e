"""body_images: the image-occurrence index of every manifest body (store.image_index)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 03:40:00

Backfill: every stored body is indexed, 1,000 bodies per batch by content hash, with the same
function ingest uses (`store.image_index.backfill`), on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from store.image_index import backfill

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "body_images",
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("ord", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("shape", sa.Text(), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["content_hash"],
            ["manifest_bodies.content_hash"],
            name=op.f("fk_body_images_content_hash_manifest_bodies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("content_hash", "ord", name=op.f("pk_body_images")),
    )
    backfill(Session(bind=op.get_bind()))


def downgrade() -> None:
    op.drop_table("body_images")
