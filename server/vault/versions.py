"""Version rows and the head: the compare-and-swap that moves the head, and purging below the floor."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from loravault.core import AbortedError, InvalidArgumentError, NotFoundError

from .clock import as_utc, utc_now
from .records import VersionKind, VersionRecord
from .tables import adapters, versions

__all__ = [
    "advance_head",
    "check_version_number",
    "blob_is_live",
    "insert_version",
    "list_version_records",
    "live_blob_counts",
    "purge_below",
    "version_record",
]


def check_version_number(number: object, *, what: str, allow_zero: bool = False) -> int:
    """Version numbers are ints >= 1 (a parent may be 0: no version yet); bools are refused."""
    low = 0 if allow_zero else 1
    if not isinstance(number, int) or isinstance(number, bool) or number < low:
        raise InvalidArgumentError(f"{what} must be an integer >= {low}, got {number!r}")
    return number


def advance_head(conn: Connection, *, adapter: dict[str, Any], label: str, parent: int) -> int:
    """Move the head from `parent` to `parent + 1`, or raise AbortedError naming the current head.

    The UPDATE's row count decides: on PostgreSQL a concurrent writer blocks on the row lock and then finds
    `head_version` changed; on SQLite, write transactions are serialized by BEGIN IMMEDIATE.
    """
    new = parent + 1
    result = conn.execute(
        update(adapters)
        .where(adapters.c.id == adapter["id"], adapters.c.head_version == parent)
        .values(head_version=new)
    )
    if result.rowcount != 1:
        head = conn.scalar(select(adapters.c.head_version).where(adapters.c.id == adapter["id"]))
        raise AbortedError(
            f"adapter {label}: parent version {parent} is not the head (head is {head}); re-read and retry"
        )
    return new


def insert_version(
    conn: Connection,
    *,
    adapter_id: int,
    number: int,
    blob_sha256: str,
    size: int,
    kind: VersionKind,
    manifest_hash: str | None,
) -> VersionRecord:
    """Insert version `number`, whose parent is `number - 1` (None for the first)."""
    parent = number - 1 if number > 1 else None
    now = utc_now()
    conn.execute(
        insert(versions).values(
            adapter_id=adapter_id,
            number=number,
            blob_sha256=blob_sha256,
            size=size,
            parent_version=parent,
            kind=kind,
            manifest_hash=manifest_hash,
            created_at=now,
            purged=False,
        )
    )
    return VersionRecord(
        number=number,
        blob_sha256=blob_sha256,
        size=size,
        parent=parent,
        kind=kind,
        manifest_hash=manifest_hash,
        created_at=now,
        purged=False,
    )


def _to_record(row: Any) -> VersionRecord:
    return VersionRecord(
        number=row["number"],
        blob_sha256=row["blob_sha256"],
        size=row["size"],
        parent=row["parent_version"],
        kind=row["kind"],
        manifest_hash=row["manifest_hash"],
        created_at=as_utc(row["created_at"]),
        purged=bool(row["purged"]),
    )


def version_record(conn: Connection, *, adapter: dict[str, Any], label: str, number: int) -> VersionRecord:
    """Version `number` of the adapter; NotFoundError naming the head when there is no such version."""
    query = select(versions).where(versions.c.adapter_id == adapter["id"], versions.c.number == number)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(f"adapter {label} has no version {number} (head is {adapter['head_version']})")
    return _to_record(row)


def list_version_records(
    conn: Connection, *, adapter_id: int, after: int = 0, limit: int | None = None
) -> list[VersionRecord]:
    """Versions numbered above `after`, oldest first, at most `limit` of them (a page, served by the index)."""
    query = (select(versions)
             .where(versions.c.adapter_id == adapter_id, versions.c.number > after)
             .order_by(versions.c.number)
             .limit(limit))
    return [_to_record(row) for row in conn.execute(query).mappings()]


def purge_below(conn: Connection, *, adapter_id: int, floor: int) -> set[str]:
    """Mark every version below `floor` purged (hash kept) and return the digests they used."""
    below = (versions.c.adapter_id == adapter_id) & (versions.c.number < floor) & (versions.c.purged.is_(False))
    digests: set[str] = set(conn.scalars(select(versions.c.blob_sha256).where(below)))
    conn.execute(update(versions).where(below).values(purged=True))
    return digests


def blob_is_live(conn: Connection, sha256: str) -> bool:
    """True while any unpurged version of any tenant references the blob (reference counts are derived)."""
    query = select(versions.c.id).where(versions.c.blob_sha256 == sha256, versions.c.purged.is_(False)).limit(1)
    return conn.scalar(query) is not None


def live_blob_counts(conn: Connection) -> Counter[str]:
    """How many unpurged versions reference each blob."""
    query = (
        select(versions.c.blob_sha256, func.count().label("live"))
        .where(versions.c.purged.is_(False))
        .group_by(versions.c.blob_sha256)
    )
    return Counter({row.blob_sha256: int(row.live) for row in conn.execute(query)})
