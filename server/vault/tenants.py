"""Tenant rows: create, look up by name, list, and delete with everything that hangs off them."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loravault.core import AlreadyExistsError, NotFoundError

from .clock import as_utc, utc_now
from .records import TenantRecord
from .tables import adapters, keys, tenants, tokens, versions

__all__ = [
    "delete_tenant_rows",
    "get_signing_threshold",
    "get_tenant_id",
    "insert_tenant",
    "list_tenant_records",
    "set_signing_threshold",
]


def insert_tenant(conn: Connection, name: str) -> TenantRecord:
    """Insert a tenant; AlreadyExistsError when the name is taken."""
    if conn.scalar(select(tenants.c.id).where(tenants.c.name == name)) is not None:
        raise AlreadyExistsError(f"tenant {name} already exists")
    now = utc_now()
    try:
        conn.execute(insert(tenants).values(name=name, created_at=now, signing_threshold=1))
    except IntegrityError as exc:  # a concurrent create won between the check and the insert
        raise AlreadyExistsError(f"tenant {name} already exists") from exc
    return TenantRecord(name=name, created_at=now, signing_threshold=1)


def get_tenant_id(conn: Connection, name: str) -> int:
    """The tenant's row id; NotFoundError when there is none."""
    tenant_id = conn.scalar(select(tenants.c.id).where(tenants.c.name == name))
    if tenant_id is None:
        raise NotFoundError(f"tenant {name} does not exist")
    return int(tenant_id)


def list_tenant_records(conn: Connection) -> list[TenantRecord]:
    rows = conn.execute(select(tenants).order_by(tenants.c.name)).mappings()
    return [
        TenantRecord(name=r["name"], created_at=as_utc(r["created_at"]), signing_threshold=r["signing_threshold"])
        for r in rows
    ]


def get_signing_threshold(conn: Connection, tenant_id: int) -> int:
    return int(conn.execute(select(tenants.c.signing_threshold).where(tenants.c.id == tenant_id)).scalar_one())


def set_signing_threshold(conn: Connection, *, tenant_id: int, threshold: int) -> None:
    conn.execute(update(tenants).where(tenants.c.id == tenant_id).values(signing_threshold=threshold))


def delete_tenant_rows(conn: Connection, tenant_id: int) -> tuple[int, int, set[str]]:
    """Delete the tenant and its adapters, versions, tokens and keys.

    Returns (adapters deleted, versions deleted, blob digests those versions used), so the caller can delete
    the blob files after the commit. Rows are deleted explicitly, children first; the foreign keys' ON DELETE
    CASCADE is only a backstop.
    """
    adapter_ids = select(adapters.c.id).where(adapters.c.tenant_id == tenant_id)
    digests: set[str] = set(conn.scalars(select(versions.c.blob_sha256).where(versions.c.adapter_id.in_(adapter_ids))))
    count_query = select(func.count()).select_from(versions).where(versions.c.adapter_id.in_(adapter_ids))
    version_count = conn.scalar(count_query) or 0
    conn.execute(delete(versions).where(versions.c.adapter_id.in_(adapter_ids)))
    adapter_count = conn.execute(delete(adapters).where(adapters.c.tenant_id == tenant_id)).rowcount
    conn.execute(delete(tokens).where(tokens.c.tenant_id == tenant_id))
    conn.execute(delete(keys).where(keys.c.tenant_id == tenant_id))
    conn.execute(delete(tenants).where(tenants.c.id == tenant_id))
    return adapter_count, int(version_count), digests
