"""The metadata tables as SQLAlchemy Core objects: what queries are written against.

The schema itself is created and evolved only by the alembic migrations in `migrations/versions`; this module
must describe the same tables as the newest migration (a test compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

__all__ = [
    "adapters",
    "audit_checkpoints",
    "audit_log",
    "blob_pins",
    "keys",
    "metadata",
    "server_identity",
    "tenants",
    "tokens",
    "versions",
]

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("signing_threshold", Integer, nullable=False, server_default=text("1")),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("label", String(200), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(
        "(role = 'admin' AND tenant_id IS NULL) OR (role = 'tenant' AND tenant_id IS NOT NULL)",
        name="ck_tokens_role_tenant",
    ),
)

keys = Table(
    "keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("keyid", String(64), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "keyid", name="uq_keys_tenant_keyid"),
    CheckConstraint("status IN ('active', 'revoked')", name="ck_keys_status"),
)

adapters = Table(
    "adapters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("schema_json", Text, nullable=False),
    Column("base_fingerprint", String(64), nullable=False),
    Column("head_version", Integer, nullable=False, server_default=text("0")),
    Column("erasure_floor", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_adapters_tenant_name"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("adapter_id", Integer, ForeignKey("adapters.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("blob_sha256", String(64), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("parent_version", Integer, nullable=True),
    Column("kind", String(32), nullable=False),
    Column("manifest_hash", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("purged", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("adapter_id", "number", name="uq_versions_adapter_number"),
    CheckConstraint("kind IN ('upload', 'erasure', 'federation-round', 'rollback')", name="ck_versions_kind"),
)

# the audit log's rows (migration 0002); written and read only by loravault.server.audit
audit_log = Table(
    "audit_log",
    metadata,
    Column("index", Integer, primary_key=True, autoincrement=False),
    Column("entry_hash", String(64), nullable=False, unique=True),
    Column("previous_hash", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("adapter", String(64), nullable=False),
    Column("request_id", String(32), nullable=False),
    Column("manifest_hash", String(64), nullable=False),
    Column("receipt", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant", "request_id", name="uq_audit_log_tenant_request"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", Integer, primary_key=True, autoincrement=False),
    Column("head_hash", String(64), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# scale-out (migration 0003): pins on blobs staged in a shared bucket, and the deployment's server key
blob_pins = Table(
    "blob_pins",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("blob_sha256", String(64), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

server_identity = Table(
    "server_identity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("keyid", String(64), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("id = 1", name="ck_server_identity_one_row"),
)
