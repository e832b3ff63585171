"""The metadata database: engine set-up (SQLite in WAL mode by default), migrations, and transactions.

SQLite note: Python's sqlite3 module begins transactions lazily and only before writes, which would let two
writers read the same head and then deadlock on the upgrade to a write lock. We take control of BEGIN
(SQLAlchemy's documented recipe) and open write transactions with BEGIN IMMEDIATE, so writers queue on the
busy timeout instead. PostgreSQL needs none of this: its row locks make the compare-and-swap UPDATE decide.
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
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError

from loravault.core import UnavailableError

__all__ = ["open_engine", "read_transaction", "upgrade", "upgrade_sql", "write_transaction"]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
_WRITE = "loravault_write"


def open_engine(database_url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """An engine for `database_url`; for SQLite, every connection gets WAL, FULL sync, foreign keys on.

    `busy_timeout_ms` is how long a SQLite writer waits for another writer's transaction to finish.
    """
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

    SQLite's "database is locked" after the busy timeout becomes UnavailableError (retry later), so callers
    see one of our errors rather than a driver's.
    """
    try:
        with engine.connect() as connection:
            connection.execution_options(**{_WRITE: True})
            with connection.begin():
                yield connection
    except OperationalError as exc:
        if "locked" not in str(exc.orig):
            raise
        raise UnavailableError(
            "the metadata database stayed locked by another writer past the busy timeout; retry later"
        ) from exc


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction: one consistent snapshot for several queries."""
    with engine.connect() as connection, connection.begin():
        yield connection


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
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
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
