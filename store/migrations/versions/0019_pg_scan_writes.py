"""rule_result_cache: results as text (lz4), no index on created_at

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 15:30:00

A cold scan writes a cached row of about 2 KB of JSON per manifest body. As `json` (0010) the
server still parsed every row's text to check it, on the way in; nothing but this program
writes those rows, and nothing reads inside them: the workers read each one whole and decode
it themselves. As `text` the server only checks the encoding. Nothing reads the rows by
`created_at` either (the clean-up deletes by catalogue version), so its index, another
insertion per row, goes (on both engines). Existing rows are converted in place (the cache
stays warm); SQLite stores JSON as text anyway.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from store.migrate import set_compression

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

INDEX = "ix_rule_result_cache_created_at"


def _results_as(new: str, old: str) -> None:
    """Convert the column (PostgreSQL only), keeping its lz4 compression."""
    if op.get_bind().dialect.name != "postgresql":
        return
    types: dict[str, sa.types.TypeEngine[Any]] = {"text": sa.Text(), "json": sa.JSON()}
    op.alter_column(
        "rule_result_cache",
        "results",
        type_=types[new],
        existing_type=types[old],
        existing_nullable=False,
        postgresql_using=f"results::{new}",
    )
    set_compression("rule_result_cache", "results", "lz4")


def upgrade() -> None:
    _results_as("text", "json")
    op.drop_index(INDEX, table_name="rule_result_cache")


def downgrade() -> None:
    op.create_index(INDEX, "rule_result_cache", ["created_at"], unique=False)
    _results_as("json", "text")
