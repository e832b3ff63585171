"""The metadata database as the vault's two halves share it: one engine, its transactions, the closed check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from loravault.core import UnavailableError
from loravault.proto.names import check_name

from . import tenants as tenant_rows
from .database import read_transaction, write_transaction

__all__ = ["MetadataDB", "tenant_id_of"]


class MetadataDB:
    """Credentials and the adapter store each open their transactions here, so a closed vault refuses both."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._closed = False

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One consistent read snapshot."""
        self.check_open()
        with read_transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on normal exit, rolled back on any exception."""
        self.check_open()
        with write_transaction(self.engine) as conn:
            yield conn

    def check_open(self) -> None:
        if self._closed:
            raise UnavailableError("the vault is closed (the server is shutting down)")

    def close(self) -> None:
        self._closed = True
        self.engine.dispose()


def tenant_id_of(conn: Connection, tenant: str) -> int:
    """The tenant's row id, the key both halves' tables hang off; NotFoundError when there is no such tenant."""
    return tenant_rows.get_tenant_id(conn, check_name(tenant, what="tenant"))
