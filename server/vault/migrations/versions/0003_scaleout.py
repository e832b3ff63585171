"""Scale-out: pins on staged blobs that every replica sees, and the deployment's one server signing key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

`blob_pins`: a blob written to a shared bucket but not yet committed is pinned by a row here, so a purge on
another replica never deletes it (the file store keeps its pins in its one process and writes no rows).
`server_identity`: the public half of the key that signs receipts and checkpoints; every replica of a
deployment must hold that key, so a receipt verifies whichever replica issued it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_pins",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("blob_sha256", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "server_identity",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("keyid", sa.String(64), nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_server_identity_one_row"),
    )


def downgrade() -> None:
    op.drop_table("server_identity")
    op.drop_table("blob_pins")
