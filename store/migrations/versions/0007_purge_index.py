"""manifest_versions: a partial index on superseded_at, for the daily purge

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 03:40:00

The purge deletes versions superseded before the retention cutoff in batches; without an index
on `superseded_at` every batch scanned `manifest_versions` from the start (measured with the
fleet-scale bench). Only superseded versions are indexed (a live object's current version has
none), so the index holds the history the purge will one day remove.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_manifest_versions_superseded_at",
        "manifest_versions",
        ["superseded_at"],
        unique=False,
        postgresql_where=sa.text("superseded_at IS NOT NULL"),
        sqlite_where=sa.text("superseded_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_manifest_versions_superseded_at", table_name="manifest_versions")
