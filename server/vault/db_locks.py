"""Locks that hold across server replicas, kept in the metadata database (never in one process's memory).

PostgreSQL: advisory locks keyed by a 64-bit hash of (namespace, name). `transaction_lock` is held until the
caller's write transaction ends (pg_advisory_xact_lock); `session_lock` holds one pooled connection for a
longer step (an erasure from binding to commit) and is released when the step ends, or by the server when
the session dies, so a crashed replica never leaves a lock behind.

SQLite: every write transaction already runs alone (BEGIN IMMEDIATE, see database.py), so `transaction_lock`
has nothing to add; and a SQLite vault is one process (the data-folder lock), so `session_lock` leaves the
exclusion to the caller's in-process lock.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from loravault.core import UnavailableError

__all__ = ["LOCK_TIMEOUT_S", "lock_key", "session_lock", "transaction_lock"]

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 120  # a replica waits this long for another's erasure of the same adapter, then UNAVAILABLE


def lock_key(*, namespace: str, name: str) -> int:
    """The advisory lock's key: the first 8 bytes of SHA-256(namespace NUL name), as a signed bigint."""
    digest = hashlib.sha256(f"{namespace}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def transaction_lock(conn: Connection, *, namespace: str, name: str) -> None:
    """Hold the lock (namespace, name) until `conn`'s transaction commits or rolls back."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(namespace=namespace, name=name)})


@contextmanager
def session_lock(engine: Engine, *, namespace: str, name: str, timeout_s: float | None = None) -> Iterator[None]:
    """Hold the lock (namespace, name) for the body, on a connection of its own; UnavailableError after
    `timeout_s` (default LOCK_TIMEOUT_S) of waiting for another holder."""
    if engine.dialect.name != "postgresql":
        yield
        return
    timeout_s = LOCK_TIMEOUT_S if timeout_s is None else timeout_s
    key = lock_key(namespace=namespace, name=name)
    with engine.connect() as conn:
        try:
            conn.execute(text("SELECT set_config('lock_timeout', :t, false)"), {"t": f"{int(timeout_s * 1000)}ms"})
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
        except DBAPIError as exc:
            conn.invalidate()
            if getattr(exc.orig, "sqlstate", None) == "55P03":
                raise UnavailableError(
                    f"{namespace} {name} stayed locked by another replica for {timeout_s:.0f} s; retry later"
                ) from exc
            raise
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.execute(text("SELECT set_config('lock_timeout', '0', false)"))
                conn.commit()
            except DBAPIError:
                log.warning("could not release lock %s %s; dropping its connection instead", namespace, name)
                conn.invalidate()
