"""Initial schema: tenants, tokens, keys, adapters, versions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Portable types only (Integer, BigInteger, String, Text, Boolean, DateTime with time zone), so PostgreSQL runs
this unchanged. Blob reference counts are not stored: they are derived from `versions` by query.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("signing_threshold", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(role = 'admin' AND tenant_id IS NULL) OR (role = 'tenant' AND tenant_id IS NOT NULL)",
            name="ck_tokens_role_tenant",
        ),
    )
    op.create_index("ix_tokens_tenant_id", "tokens", ["tenant_id"])
    op.create_table(
        "keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("keyid", sa.String(64), nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "keyid", name="uq_keys_tenant_keyid"),
        sa.CheckConstraint("status IN ('active', 'revoked')", name="ck_keys_status"),
    )
    op.create_table(
        "adapters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("schema_json", sa.Text, nullable=False),
        sa.Column("base_fingerprint", sa.String(64), nullable=False),
        sa.Column("head_version", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("erasure_floor", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_adapters_tenant_name"),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("adapter_id", sa.Integer, sa.ForeignKey("adapters.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("parent_version", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("manifest_hash", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("adapter_id", "number", name="uq_versions_adapter_number"),
        sa.CheckConstraint(
            "kind IN ('upload', 'erasure', 'federation-round', 'rollback')", name="ck_versions_kind"
        ),
    )
    op.create_index("ix_versions_blob_sha256", "versions", ["blob_sha256"])


def downgrade() -> None:
    op.drop_index("ix_versions_blob_sha256", table_name="versions")
    op.drop_table("versions")
    op.drop_table("adapters")
    op.drop_table("keys")
    op.drop_index("ix_tokens_tenant_id", table_name="tokens")
    op.drop_table("tokens")
    op.drop_table("tenants")
