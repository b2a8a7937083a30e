"""snapshot_documents: a pushed snapshot is staged as one compressed document, split later

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 00:10:00

A push used to store each new manifest body, its image index rows and the snapshot's item
list before answering 202: for 5,000 new objects (15 MB of JSON) most of the push's time, in a
COPY of the bodies and the index walk. Now the push stores the verified, validated document as
one row (its gzip form, as the agent sent it) and the snapshot worker splits it
(`store.snapshots.apply_pending`). Snapshots staged before this migration keep their items in
`snapshot_items` and are applied from there.

PostgreSQL: the document is already compressed, so TOAST stores it as it is (`STORAGE
EXTERNAL`: no second compression attempt).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshot_documents",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("floats", sa.Boolean(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_snapshot_documents_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", name=op.f("pk_snapshot_documents")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE snapshot_documents ALTER COLUMN document SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("snapshot_documents")
