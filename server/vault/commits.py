"""The bodies of the transactions that add a version: upload or round, erasure, rollback.

Each runs inside one write transaction the Vault opens, moves the head by compare-and-swap first (so a lost
race aborts before anything else is written), then checks what the new version depends on, then inserts it.
Any exception rolls the whole transaction back: a refused commit leaves no trace in the database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, update

from loravault.core import FailedPreconditionError

from . import versions as version_rows
from .blobs import StagedBlob
from .records import VersionKind, VersionRecord
from .tables import adapters

__all__ = ["commit_blob", "commit_erasure", "commit_rollback", "label_of"]


def label_of(*, tenant: str, adapter: str) -> str:
    return f"{tenant}/{adapter}"


def check_bound(adapter: dict[str, Any], *, label: str, base_fingerprint: str) -> None:
    """Refuse to extend an adapter bound to a base model this vault does not serve."""
    if adapter["base_fingerprint"] != base_fingerprint:
        raise FailedPreconditionError(
            f"adapter {label} is bound to base {adapter['base_fingerprint'][:12]}…, this server holds "
            f"{base_fingerprint[:12]}…; serve the base it was made for"
        )


def commit_blob(
    conn: Connection,
    *,
    adapter: dict[str, Any],
    label: str,
    parent: int,
    blob: StagedBlob,
    kind: VersionKind,
    manifest_hash: str | None,
) -> VersionRecord:
    """Add version parent+1 holding `blob`, if `parent` is still the head (else AbortedError)."""
    number = version_rows.advance_head(conn, adapter=adapter, label=label, parent=parent)
    return version_rows.insert_version(
        conn,
        adapter_id=adapter["id"],
        number=number,
        blob_sha256=blob.sha256,
        size=blob.size,
        kind=kind,
        manifest_hash=manifest_hash,
    )


def commit_erasure(
    conn: Connection,
    *,
    adapter: dict[str, Any],
    label: str,
    parent: int,
    parent_sha256: str | None,
    blob: StagedBlob,
    manifest_hash: str,
) -> tuple[VersionRecord, set[str]]:
    """Add an erasure version, raise the floor to it, purge every older version.

    Returns the new version and the digests the purged versions used, whose files the caller deletes after
    the commit (if nothing live still uses them).
    """
    if parent_sha256 is not None and parent > 0:
        head = version_rows.version_record(conn, adapter=adapter, label=label, number=parent)
        if head.blob_sha256 != parent_sha256:
            raise FailedPreconditionError(
                f"adapter {label} v{parent} has blob {head.blob_sha256[:12]}…, the erasure was computed on "
                f"{parent_sha256[:12]}…; download the head and recompute"
            )
    record = commit_blob(
        conn, adapter=adapter, label=label, parent=parent, blob=blob, kind="erasure", manifest_hash=manifest_hash
    )
    conn.execute(update(adapters).where(adapters.c.id == adapter["id"]).values(erasure_floor=record.number))
    purged = version_rows.purge_below(conn, adapter_id=adapter["id"], floor=record.number)
    return record, purged


def commit_rollback(
    conn: Connection, *, adapter: dict[str, Any], label: str, parent: int, to_version: int
) -> VersionRecord:
    """Add version parent+1 of kind rollback that reuses the blob of `to_version`.

    `to_version` must be older than the head, at or above the erasure floor, and not purged. The adapter row
    was read before the compare-and-swap; the swap succeeding proves no erasure moved the head (and with it
    the floor) in between.
    """
    number = version_rows.advance_head(conn, adapter=adapter, label=label, parent=parent)
    if to_version == parent:
        raise FailedPreconditionError(f"adapter {label}: v{to_version} is already the head; nothing to roll back")
    target = version_rows.version_record(conn, adapter=adapter, label=label, number=to_version)
    floor = adapter["erasure_floor"]
    if target.purged or to_version < floor:
        raise FailedPreconditionError(
            f"adapter {label}: v{to_version} is below the erasure floor v{floor} and was purged; "
            "roll back to the floor or a later version"
        )
    return version_rows.insert_version(
        conn,
        adapter_id=adapter["id"],
        number=number,
        blob_sha256=target.blob_sha256,
        size=target.size,
        kind="rollback",
        manifest_hash=None,
    )
