"""The metadata database: engine set-up (SQLite in WAL mode by default, or PostgreSQL), migrations, and
transactions.

SQLite note: Python's sqlite3 module begins transactions lazily and only before writes, which would let two
writers read the same head and then deadlock on the upgrade to a write lock. We take control of BEGIN
(SQLAlchemy's documented recipe) and open write transactions with BEGIN IMMEDIATE, so writers queue on the
busy timeout instead: every write transaction is serialized.

PostgreSQL note: several server replicas share one database, so writers are not serialized. Isolation levels:
write transactions run at READ COMMITTED, where the compare-and-swap UPDATE on the head decides (a concurrent
writer blocks on the row lock, then re-reads the row and finds the head moved, so it updates nothing and
aborts); whatever must be serialized beyond one row (the audit chain, key changes, the admin bootstrap, blob
deletion) takes an advisory lock in the database (see db_locks). Read transactions run at REPEATABLE READ READ
ONLY: one snapshot for every query in them, as on SQLite, and a read-only transaction never fails to serialize.
Connections come from a bounded pool, checked before use (a replica survives a database restart).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError

from loravault.core import AbortedError, UnavailableError

__all__ = [
    "READ_ISOLATION",
    "WRITE_ISOLATION",
    "open_engine",
    "read_transaction",
    "upgrade",
    "upgrade_sql",
    "write_transaction",
]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
_WRITE = "loravault_write"
# PostgreSQL (see the module docstring); SQLite transactions are always serializable
WRITE_ISOLATION = "READ COMMITTED"
READ_ISOLATION = "REPEATABLE READ"
POOL_SIZE = 10  # connections a replica keeps open: about its RPC threads (ServerConfig.max_workers is 16)
POOL_OVERFLOW = 10  # more, opened under load and closed when returned
POOL_TIMEOUT_S = 30  # how long a thread waits for a free connection before UnavailableError
# SQLSTATEs a transaction may be retried after: serialization failure, deadlock detected, lock timeout
_RETRYABLE = {"40001": "lost a serialization race", "40P01": "deadlocked", "55P03": "timed out waiting for a lock"}
_MIGRATION_LOCK = 0x6C76_6D69_6772  # advisory lock key: replicas starting together migrate one at a time


def open_engine(database_url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """An engine for `database_url`: SQLite (WAL, FULL sync, foreign keys) or PostgreSQL (pooled, psycopg 3).

    `busy_timeout_ms` is how long a SQLite writer waits for another writer's transaction to finish. A
    `postgresql://` URL is given the psycopg 3 driver (`postgresql+psycopg://`), the one the project ships.
    """
    if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    if database_url.startswith("postgresql"):
        return create_engine(
            database_url, isolation_level=WRITE_ISOLATION, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW,
            pool_timeout=POOL_TIMEOUT_S, pool_pre_ping=True,
        )
    engine = create_engine(database_url)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout_ms=busy_timeout_ms)
    return engine


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: committed on normal exit, rolled back on any exception.

    SQLite's "database is locked" after the busy timeout becomes UnavailableError (retry later), and so does
    a PostgreSQL server that cannot be reached; a PostgreSQL serialization failure, deadlock or lock timeout
    becomes AbortedError (retry the request). Callers see our errors, never a driver's.
    """
    try:
        with engine.connect() as connection:
            connection.execution_options(**{_WRITE: True})
            with connection.begin():
                yield connection
    except DBAPIError as exc:
        if (translated := _translated(exc)) is exc:
            raise
        raise translated from exc


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction: one consistent snapshot for several queries (REPEATABLE READ on PostgreSQL)."""
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execution_options(isolation_level=READ_ISOLATION, postgresql_readonly=True)
            with connection.begin():
                yield connection
    except DBAPIError as exc:
        if (translated := _translated(exc)) is exc:
            raise
        raise translated from exc


def _translated(exc: DBAPIError) -> Exception:
    """Our error for a driver's error that a retry may cure; anything else (a bug, a constraint) as it was."""
    if "database is locked" in str(exc.orig):
        return UnavailableError(
            "the metadata database stayed locked by another writer past the busy timeout; retry later")
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE:
        return AbortedError(f"the metadata transaction {_RETRYABLE[sqlstate]} with a concurrent one; retry")
    if isinstance(exc, OperationalError) and exc.connection_invalidated or sqlstate is not None and (
            sqlstate.startswith("08") or sqlstate.startswith("57P")):
        return UnavailableError("the metadata database cannot be reached; retry later")
    return exc


def _config() -> Config:
    """Alembic's configuration, built in code: the scripts ship inside this package, there is no ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


def upgrade(engine: Engine) -> None:
    """Run every pending alembic migration; a database already at head is left untouched."""
    config = _config()
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})  # SQLite: BEGIN IMMEDIATE, so migrators queue
        postgresql = connection.dialect.name == "postgresql"
        if postgresql:  # a session lock, held past the migration's commit below
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        except BaseException:
            if postgresql:
                connection.invalidate()  # closing the session drops its lock; never pool it still locked
            raise
        if postgresql:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
    log.info("vault database is at the newest schema revision")


def upgrade_sql(database_url: str) -> str:
    """The DDL every migration would run on `database_url`'s dialect, rendered without connecting."""
    buffer = io.StringIO()
    config = _config()
    config.output_buffer = buffer
    config.set_main_option("sqlalchemy.url", database_url)
    command.upgrade(config, "head", sql=True)
    return buffer.getvalue()
