"""Adapter rows: (tenant, name), the schema fixed at creation, the head version and the erasure floor.

Every lookup goes through the tenant's name, so a tenant can only ever reach its own rows, and the miss for
another tenant's adapter raises exactly the same NotFoundError as for one that does not exist.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, insert, select, tuple_
from sqlalchemy.exc import IntegrityError

from loravault.core import AdapterSchema, AlreadyExistsError, NotFoundError

from .clock import as_utc, utc_now
from .records import AdapterRecord
from .tables import adapters, tenants, versions

__all__ = ["adapter_not_found", "delete_adapter_rows", "find_adapter", "insert_adapter", "list_adapter_records"]


def adapter_not_found(tenant: str, name: str) -> NotFoundError:
    """The one message for a missing adapter, whoever owns the name (see module docstring)."""
    return NotFoundError(f"adapter {tenant}/{name} does not exist")


def insert_adapter(conn: Connection, *, tenant_id: int, tenant: str, name: str, schema: AdapterSchema) -> AdapterRecord:
    taken = select(adapters.c.id).where(adapters.c.tenant_id == tenant_id, adapters.c.name == name)
    if conn.scalar(taken) is not None:
        raise AlreadyExistsError(f"adapter {tenant}/{name} already exists; choose another name or delete it")
    now = utc_now()
    values = {
        "tenant_id": tenant_id,
        "name": name,
        "schema_json": schema.to_json(),
        "base_fingerprint": schema.base_fingerprint,
        "head_version": 0,
        "erasure_floor": 0,
        "created_at": now,
    }
    try:
        conn.execute(insert(adapters).values(**values))
    except IntegrityError as exc:
        raise AlreadyExistsError(f"adapter {tenant}/{name} already exists") from exc
    return AdapterRecord(tenant=tenant, name=name, schema=schema, head_version=0, floor=0, created_at=now)


def find_adapter(conn: Connection, *, tenant: str, name: str) -> dict[str, Any]:
    """The adapter's row (id, head_version, erasure_floor, ...); NotFoundError when the tenant has none."""
    query = (
        select(adapters)
        .join(tenants, adapters.c.tenant_id == tenants.c.id)
        .where(tenants.c.name == tenant, adapters.c.name == name)
    )
    row = conn.execute(query).mappings().first()
    if row is None:
        raise adapter_not_found(tenant, name)
    return dict(row)


def floors_of(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The erasure floor of each (tenant, adapter) that exists, in one query."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    query = (
        select(tenants.c.name.label("tenant"), adapters.c.name.label("adapter"), adapters.c.erasure_floor)
        .join(tenants, adapters.c.tenant_id == tenants.c.id)
        .where(tuple_(tenants.c.name, adapters.c.name).in_(wanted))
    )
    return {(str(row["tenant"]), str(row["adapter"])): int(row["erasure_floor"])
            for row in conn.execute(query).mappings()}


@functools.lru_cache(maxsize=256)
def stored_schema(schema_json: str) -> AdapterSchema:
    """A stored schema, parsed and validated once per distinct text: every read of an adapter needs its schema,
    and a large one costs milliseconds to check. Schemas are immutable, so readers may share one object."""
    return AdapterSchema.from_json(schema_json)


def to_record(row: dict[str, Any], *, tenant: str) -> AdapterRecord:
    return AdapterRecord(
        tenant=tenant,
        name=row["name"],
        schema=stored_schema(row["schema_json"]),
        head_version=row["head_version"],
        floor=row["erasure_floor"],
        created_at=as_utc(row["created_at"]),
    )


def list_adapter_records(conn: Connection, *, tenant_id: int, tenant: str) -> list[AdapterRecord]:
    rows = conn.execute(select(adapters).where(adapters.c.tenant_id == tenant_id).order_by(adapters.c.name))
    return [to_record(dict(row), tenant=tenant) for row in rows.mappings()]


def delete_adapter_rows(conn: Connection, *, adapter_id: int) -> tuple[int, set[str]]:
    """Delete an adapter and its versions; return (versions deleted, the blob digests they used)."""
    digests: set[str] = set(conn.scalars(select(versions.c.blob_sha256).where(versions.c.adapter_id == adapter_id)))
    deleted = conn.execute(delete(versions).where(versions.c.adapter_id == adapter_id)).rowcount
    conn.execute(delete(adapters).where(adapters.c.id == adapter_id))
    return deleted, digests
