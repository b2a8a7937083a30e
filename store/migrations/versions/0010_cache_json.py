"""rule_result_cache.results: json (lz4-compressed where the server can), not jsonb

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 21:50:00

Cached rule results are written by every cold scan (a row of about 2 KB per manifest body) and
read back only whole, by the workers: nothing queries inside them. As jsonb each was parsed into
PostgreSQL's binary form on the way in, compressed with pglz, and turned back into text on the
way out; as json the server only checks the text, and lz4 compresses several times faster than
pglz. On the benchmark's rows (16,016 bodies, PostgreSQL 15) inserting took 740 ms as jsonb with
pglz and 196 ms as json with lz4, reading them back as text 660 ms and 250 ms. lz4 needs
PostgreSQL 14 built with it; elsewhere the column keeps the server's default compression.
Existing rows are converted in place (the cache stays warm). SQLite stores JSON as text anyway.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from store.migrate import set_compression

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TYPES = {"json": sa.JSON(), "jsonb": postgresql.JSONB()}


def _results_as(new: str, old: str) -> None:
    """Convert the column (PostgreSQL only: SQLite stores JSON as text either way)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "rule_result_cache",
        "results",
        type_=TYPES[new],
        existing_type=TYPES[old],
        existing_nullable=False,
        postgresql_using=f"results::{new}",
    )


def upgrade() -> None:
    _results_as("json", "jsonb")
    set_compression("rule_result_cache", "results", "lz4")


def downgrade() -> None:
    set_compression("rule_result_cache", "results", "pglz")
    _results_as("jsonb", "json")
