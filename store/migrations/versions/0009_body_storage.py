"""manifest_bodies: bodies compressed with lz4, and no GIN index over them

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 21:40:00

PostgreSQL only (SQLite has neither). Storing a push's new bodies was most of a full push's
time, in the database: for 5,000 new bodies (15 MB of JSON) the backend spent 0.48 CPU s on
the COPY, of which about 0.16 s compressing the bodies with pglz (TOAST's default) and 0.14 s
adding them to the GIN index `ix_manifest_bodies_body_gin`.

- The GIN index (`jsonb_path_ops`) serves only the operators `@>`, `@?` and `@@`, which no query
  uses: the searches evaluate `jsonb_path_query` (which no index serves) or read the image index
  (`body_images`). It is dropped; the downgrade builds it again.
- New bodies are compressed with lz4 (PostgreSQL 14 and later, when built with lz4, as the
  Debian and official images are): compressing and decompressing are several times faster than
  pglz, and the bodies come out a little smaller. Bodies already stored keep their pglz form
  (both read the same) until rewritten; on a server without lz4 nothing changes.
"""

from __future__ import annotations

from alembic import op

from store.migrate import set_compression

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

GIN_INDEX = "ix_manifest_bodies_body_gin"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(GIN_INDEX, table_name="manifest_bodies", if_exists=True)
    set_compression("manifest_bodies", "body", "lz4")


def downgrade() -> None:
    set_compression("manifest_bodies", "body", "pglz")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            GIN_INDEX,
            "manifest_bodies",
            ["body"],
            postgresql_using="gin",
            postgresql_ops={"body": "jsonb_path_ops"},
        )
