"""The `Vault`: what the server stores, in two halves over one metadata database and one blob backend.

    >>> vault = Vault.open(Path("data"), base_fingerprint=base.fingerprint)
    >>> vault.credentials.create_tenant("acme")          # tenants, tokens, keys (credentials.py)
    >>> vault.adapters.create_adapter(tenant="acme", name="support", schema=schema)   # adapters (adapter_store.py)

Thread-safe: share one Vault across a gRPC thread pool. Several server replicas may open Vaults on one
PostgreSQL database and one bucket (each with its own data folder): whatever must be serialized across them
takes a lock in the database (db_locks), never in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine

from loravault.core import InvalidArgumentError
from loravault.proto.digests import is_sha256_hex
from loravault.proto.names import check_name

from . import tenants as tenant_rows
from .adapter_store import AdapterStore
from .blob_backend import BlobBackend, open_blob_store
from .credentials import Credentials
from .datadir_lock import DataDirLock
from .database import open_engine, upgrade
from .metadata import MetadataDB
from .records import DeleteResult

__all__ = ["Vault"]

log = logging.getLogger(__name__)


class Vault:
    """`credentials` (tenants, tokens, keys) and `adapters` (adapters, versions, blobs). Use `Vault.open`."""

    def __init__(self, *, engine: Engine, store: BlobBackend, lock: DataDirLock, base_fingerprint: str) -> None:
        self._engine, self._db = engine, MetadataDB(engine)
        self._store = store
        self._lock = lock
        self.credentials = Credentials(self._db)
        self.adapters = AdapterStore(self._db, store, base_fingerprint=base_fingerprint)

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        base_fingerprint: str,
        database_url: str | None = None,
        blobs: str | None = None,
        s3_endpoint: str | None = None,
    ) -> Vault:
        """Open (creating if needed) the vault in `data_dir` and bring its schema to the newest migration.

        The default database is SQLite at `<data_dir>/vault.db`; blobs live in `<data_dir>/blobs`, or with
        `blobs="s3://bucket/prefix"` in that bucket (at `s3_endpoint`, see blob_backend). One open Vault per
        folder (UnavailableError otherwise, see datadir_lock); temporary files left by a crashed predecessor
        are removed here, so an interrupted upload leaves nothing behind.
        """
        if not is_sha256_hex(base_fingerprint):
            raise InvalidArgumentError("base fingerprint must be 64 lowercase hex digits (a SHA-256)")
        data_dir = Path(data_dir)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = DataDirLock(data_dir)
        try:
            engine = open_engine(database_url or f"sqlite:///{data_dir.resolve() / 'vault.db'}")
            try:
                upgrade(engine)
            except BaseException:
                engine.dispose()
                raise
            try:
                store = open_blob_store(blobs, data_dir=data_dir, engine=engine, s3_endpoint=s3_endpoint)
            except BaseException:
                engine.dispose()
                raise
        except BaseException:
            lock.release()
            raise
        leftovers = store.remove_crash_leftovers()
        if leftovers:
            log.warning("removed %d temporary file(s) left by an interrupted write", leftovers)
        log.info("opened vault in %s (%s)", data_dir, engine.dialect.name)
        return cls(engine=engine, store=store, lock=lock, base_fingerprint=base_fingerprint)

    def close(self) -> None:
        """Release database connections and the folder lock; later calls raise UnavailableError."""
        self._db.close()
        self._store.close()
        self._lock.release()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def delete_tenant(self, name: str) -> DeleteResult:
        """Delete a tenant with its adapters, versions, tokens and keys, then the blobs nobody else uses."""
        check_name(name, what="tenant")
        with self._db.write() as conn:
            tenant_id = tenant_rows.get_tenant_id(conn, name)
            adapter_count, version_count, digests = tenant_rows.delete_tenant_rows(conn, tenant_id)
        purged = self.adapters.collect_garbage(digests)
        log.info("deleted tenant %s: %d adapters, %d blobs", name, adapter_count, purged)
        return DeleteResult(deleted_adapters=adapter_count, deleted_versions=version_count, purged_blobs=purged)

    # transactions lent to the audit log (loravault.server.audit owns the audit tables' rows)

    @contextmanager
    def read_transaction(self) -> Iterator[Connection]:
        """One consistent read snapshot of the metadata database."""
        with self._db.read() as conn:
            yield conn

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A write transaction: committed on normal exit, rolled back on any exception."""
        with self._db.write() as conn:
            yield conn
