"""Pins on staged blobs kept in the metadata database, so every replica sharing a bucket honours them.

A blob written to a shared bucket but not yet committed is referenced by no version; without a pin that all
replicas see, a purge on another replica that drops the last version using the same bytes would delete the
object just before this replica's commit references it. Pinning and deleting take the same per-digest lock in
the database (db_locks.transaction_lock), so "no version and no pin uses it, delete the object" is one step
that a new pin cannot interleave with.

Each process remembers the pin rows it wrote and removes only those. A replica that crashes leaves its rows
behind: the blob is then kept (never lost), and fsck --repair removes pins older than STALE_PIN_S.
"""

from __future__ import annotations

import secrets
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Connection, Engine, delete, insert, select

from loravault.core import InvalidArgumentError

from .clock import utc_now
from .database import read_transaction, write_transaction
from .db_locks import transaction_lock
from .tables import blob_pins

__all__ = ["DatabasePins", "STALE_PIN_S"]

STALE_PIN_S = 3600  # a pin older than this belongs to a writer that died (an upload takes seconds)
_NAMESPACE = "blob"


class DatabasePins:
    """Pin rows for one process, over the vault's engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._guard = threading.Lock()
        self._mine: defaultdict[str, list[str]] = defaultdict(list)

    def pin(self, sha256: str) -> None:
        """Add a pin on `sha256` (committed before this returns, so other replicas see it)."""
        pin_id = secrets.token_hex(16)
        with write_transaction(self._engine) as conn:
            transaction_lock(conn, namespace=_NAMESPACE, name=sha256)
            conn.execute(insert(blob_pins).values(id=pin_id, blob_sha256=sha256, created_at=utc_now()))
        with self._guard:
            self._mine[sha256].append(pin_id)

    def unpin(self, sha256: str) -> None:
        """Remove one pin this process took on `sha256`; InvalidArgumentError when it holds none."""
        with self._guard:
            if not self._mine.get(sha256):
                raise InvalidArgumentError(f"blob {sha256} is not staged (already committed or discarded)")
            pin_id = self._mine[sha256].pop()
            if not self._mine[sha256]:
                del self._mine[sha256]
        with write_transaction(self._engine) as conn:
            conn.execute(delete(blob_pins).where(blob_pins.c.id == pin_id))

    def holds(self, sha256: str) -> bool:
        """True while this process holds a pin on `sha256` (what check_staged asks)."""
        with self._guard:
            return bool(self._mine.get(sha256))

    def is_pinned(self, sha256: str) -> bool:
        """True while any replica holds a pin on `sha256`."""
        with read_transaction(self._engine) as conn:
            return _pinned(conn, sha256)

    @contextmanager
    def deleting(self, sha256: str) -> Iterator[bool]:
        """Hold the digest's lock for the body, which may delete the object when the value is False (unpinned).

        The lock is the one `pin` takes, so no pin can be added between the check and the deletion.
        """
        with write_transaction(self._engine) as conn:
            transaction_lock(conn, namespace=_NAMESPACE, name=sha256)
            yield _pinned(conn, sha256)

    def stale(self) -> list[str]:
        """Ids of pins older than STALE_PIN_S that no live writer of this process holds."""
        cutoff = utc_now() - timedelta(seconds=STALE_PIN_S)
        with self._guard:
            mine = {pin for pins in self._mine.values() for pin in pins}
        with read_transaction(self._engine) as conn:
            rows: list[str] = list(conn.execute(select(blob_pins.c.id).where(blob_pins.c.created_at < cutoff)).scalars())
            return sorted(pin for pin in rows if pin not in mine)

    def remove(self, pin_id: str) -> None:
        """Remove a stale pin (fsck --repair)."""
        with write_transaction(self._engine) as conn:
            conn.execute(delete(blob_pins).where(blob_pins.c.id == pin_id))


def _pinned(conn: Connection, sha256: str) -> bool:
    return conn.scalar(select(blob_pins.c.id).where(blob_pins.c.blob_sha256 == sha256).limit(1)) is not None
