"""The audit tables' rows (migration 0002 of the vault database): SQL only, on a connection the caller holds.

Writers run inside the vault's erasure transaction, so an entry exists exactly when its erasure committed.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, insert, select

from ..vault.db_locks import transaction_lock
from ..vault.tables import audit_checkpoints, audit_log
from .chain import AuditEntry

__all__ = [
    "StoredCheckpoint",
    "StoredErasure",
    "bodies_by_manifest_hash",
    "entries_from",
    "find_erasure",
    "insert_checkpoint",
    "insert_entry",
    "last_entry",
    "list_checkpoints",
    "lock_log",
    "receipts_by_index",
]


@dataclass(frozen=True)
class StoredErasure:
    """What idempotency and GetReceipt need about a committed request."""

    index: int
    entry_hash: str
    tenant: str
    adapter: str
    request_id: str
    manifest_hash: str
    new_version: int
    receipt: bytes  # the server-signed DSSE envelope


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    head_hash: str
    envelope: bytes


def lock_log(conn: Connection) -> None:
    """Serialize appends until the caller's transaction ends (see log.py): taken before reading the last entry."""
    transaction_lock(conn, namespace="audit", name="log")


def last_entry(conn: Connection) -> AuditEntry | None:
    row = conn.execute(select(audit_log).order_by(audit_log.c.index.desc()).limit(1)).mappings().first()
    return None if row is None else _entry(row)


def insert_entry(conn: Connection, entry: AuditEntry, *, stored: StoredErasure, created_at: datetime) -> None:
    conn.execute(
        insert(audit_log).values(
            index=entry.index, entry_hash=entry.entry_hash, previous_hash=entry.previous_hash,
            body=entry.body.decode("ascii"), tenant=stored.tenant, adapter=stored.adapter,
            request_id=stored.request_id, manifest_hash=stored.manifest_hash,
            receipt=stored.receipt.decode("ascii"), created_at=created_at,
        )
    )


def entries_from(conn: Connection, *, start: int, limit: int) -> list[AuditEntry]:
    """Up to `limit` entries with index >= start, in order."""
    query = select(audit_log).where(audit_log.c.index >= start).order_by(audit_log.c.index).limit(limit)
    return [_entry(row) for row in conn.execute(query).mappings()]


def find_erasure(conn: Connection, *, tenant: str, request_id: str) -> StoredErasure | None:
    query = select(audit_log).where(audit_log.c.tenant == tenant, audit_log.c.request_id == request_id,
                                    audit_log.c.adapter != "")  # key-change entries have no adapter
    row = conn.execute(query).mappings().first()
    if row is None:
        return None
    return StoredErasure(
        index=row["index"], entry_hash=row["entry_hash"], tenant=row["tenant"], adapter=row["adapter"],
        request_id=row["request_id"], manifest_hash=row["manifest_hash"],
        new_version=int(json.loads(row["body"])["new_version"]), receipt=row["receipt"].encode("ascii"),
    )


def bodies_by_manifest_hash(
    conn: Connection, *, tenant: str, adapter: str, manifest_hashes: Collection[str]
) -> dict[str, bytes]:
    """The entry bodies of this adapter whose manifest hash is one of `manifest_hashes`, by that hash."""
    if not manifest_hashes:
        return {}
    query = select(audit_log.c.manifest_hash, audit_log.c.body).where(
        audit_log.c.tenant == tenant, audit_log.c.adapter == adapter,
        audit_log.c.manifest_hash.in_(sorted(manifest_hashes)))
    return {row.manifest_hash: row.body.encode("ascii") for row in conn.execute(query)}


def receipts_by_index(conn: Connection) -> dict[int, bytes]:
    """Every entry's receipt by index; entries without one (key changes) are absent."""
    rows = conn.execute(select(audit_log.c.index, audit_log.c.receipt).order_by(audit_log.c.index))
    return {row["index"]: row["receipt"].encode("ascii") for row in rows.mappings() if row["receipt"]}


def insert_checkpoint(conn: Connection, checkpoint: StoredCheckpoint, *, created_at: datetime) -> None:
    conn.execute(
        insert(audit_checkpoints).values(
            size=checkpoint.size, head_hash=checkpoint.head_hash, envelope=checkpoint.envelope.decode("ascii"),
            created_at=created_at,
        )
    )


def list_checkpoints(conn: Connection) -> list[StoredCheckpoint]:
    rows = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.size)).mappings()
    return [StoredCheckpoint(r["size"], r["head_hash"], r["envelope"].encode("ascii")) for r in rows]


def _entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(index=row["index"], entry_hash=row["entry_hash"], previous_hash=row["previous_hash"],
                      body=row["body"].encode("ascii"))
