"""`AdapterStore`: adapters, their immutable versions and the content-addressed blobs those versions hold.

    >>> adapters = vault.adapters
    >>> adapters.create_adapter(tenant="acme", name="support", schema=schema)
    >>> with adapters.new_blob_writer(max_bytes=schema.max_blob_bytes()) as writer:
    ...     writer.write(safetensors_bytes)
    ...     staged = writer.finish()
    >>> adapters.commit_version(tenant="acme", adapter="support", parent_version=0, blob=staged, kind="upload")

Guarantees: the head moves only by compare-and-swap on the parent version; a blob is durable before any row
references it; a blob file is deleted only after the commit that made it unreferenced, and never while a live
version or a staged upload still uses it. The only lock held in memory is the blob store's, for file renames
and unlinks; whatever must be serialized across replicas takes a lock in the database (db_locks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Set
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection

from loravault.core import AbortedError, AdapterSchema, AlreadyExistsError, DataLossError, FailedPreconditionError
from loravault.core import InvalidArgumentError, NotFoundError
from loravault.proto.names import check_name

from . import adapters as adapter_rows
from . import commits
from . import db_locks
from . import versions as version_rows
from .blob_backend import BlobBackend, BlobSink
from .blobs import BlobReader, StagedBlob, check_sha256
from .commits import label_of
from .fsck import run_fsck
from .metadata import MetadataDB, tenant_id_of
from .records import AdapterRecord, FsckReport, VersionRecord
from .versions import check_version_number

__all__ = ["AdapterStore"]

log = logging.getLogger(__name__)

_COMMIT_KINDS = ("upload", "federation-round")
_T = TypeVar("_T")


class AdapterStore:
    """Adapters and versions over the metadata database and one blob backend (`vault.adapters`)."""

    def __init__(self, db: MetadataDB, store: BlobBackend, *, base_fingerprint: str) -> None:
        self._db = db
        self._store = store
        self._base_fingerprint = base_fingerprint

    @property
    def base_fingerprint(self) -> str:
        return self._base_fingerprint

    def create_adapter(self, *, tenant: str, name: str, schema: AdapterSchema) -> AdapterRecord:
        """Create an empty adapter (head 0); FailedPreconditionError when the schema binds another base."""
        check_name(name, what="adapter")
        schema.check_binding(self._base_fingerprint)
        with self._db.write() as conn:
            tenant_id = tenant_id_of(conn, tenant)
            return adapter_rows.insert_adapter(conn, tenant_id=tenant_id, tenant=tenant, name=name, schema=schema)

    def get_adapter(self, *, tenant: str, name: str) -> AdapterRecord:
        with self._db.read() as conn:
            return adapter_rows.to_record(self._adapter(conn, tenant=tenant, name=name), tenant=tenant)

    def list_adapters(self, *, tenant: str) -> list[AdapterRecord]:
        with self._db.read() as conn:
            tenant_id = tenant_id_of(conn, tenant)
            return adapter_rows.list_adapter_records(conn, tenant_id=tenant_id, tenant=tenant)

    def floors(self, adapters: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The erasure floor of each (tenant, adapter) that exists, as of one read (the purge watch's query)."""
        with self._db.read() as conn:
            return adapter_rows.floors_of(conn, adapters)

    def delete_adapter(self, *, tenant: str, name: str) -> int:
        """Delete an adapter and all its versions; returns how many blob files were deleted."""
        with self._db.write() as conn:
            row = self._adapter(conn, tenant=tenant, name=name)
            _, digests = adapter_rows.delete_adapter_rows(conn, adapter_id=row["id"])
        return self.collect_garbage(digests)

    def list_versions(
        self, *, tenant: str, adapter: str, after: int = 0, limit: int | None = None
    ) -> list[VersionRecord]:
        """Versions oldest first, purged ones included (their hashes stay); `after`/`limit` page through them."""
        with self._db.read() as conn:
            row = self._adapter(conn, tenant=tenant, name=adapter)
            return version_rows.list_version_records(conn, adapter_id=row["id"], after=after, limit=limit)

    def get_version(self, *, tenant: str, adapter: str, version: int | None = None) -> VersionRecord:
        """One version, or the head for None; NotFoundError when there is no such version (or none yet)."""
        with self._db.read() as conn:
            row = self._adapter(conn, tenant=tenant, name=adapter)
            label = label_of(tenant=tenant, adapter=adapter)
            number = row["head_version"] if version is None else check_version_number(version, what="version")
            if version is None and number == 0:
                raise NotFoundError(f"adapter {label} has no versions yet; upload one")
            return version_rows.version_record(conn, adapter=row, label=label, number=number)

    def get_adapter_and_head(self, *, tenant: str, name: str) -> tuple[AdapterRecord, VersionRecord | None]:
        """The adapter and its head version (None before the first) as of one read."""
        with self._db.read() as conn:
            row = self._adapter(conn, tenant=tenant, name=name)
            head = None
            if row["head_version"]:
                label = label_of(tenant=tenant, adapter=name)
                head = version_rows.version_record(conn, adapter=row, label=label, number=row["head_version"])
            return adapter_rows.to_record(row, tenant=tenant), head

    def new_blob_writer(self, *, max_bytes: int) -> BlobSink:
        """A streaming writer for one blob of at most `max_bytes`; pass its StagedBlob to a commit."""
        self._db.check_open()
        return self._store.new_writer(max_bytes=max_bytes)

    def stage_blob(self, data: bytes | memoryview, *, expected_sha256: str) -> StagedBlob:
        """Stage bytes held in memory through the store's hashing writer, as an upload is staged.

        The blob is named by the digest the store computes while it writes; `expected_sha256` (what the caller
        computed or was signed) is only compared with it: DataLossError, and the blob discarded, on a mismatch.
        """
        with self.new_blob_writer(max_bytes=len(data)) as writer:
            writer.write(data)
            staged = writer.finish()
        if staged.sha256 != expected_sha256:
            self.discard_blob(staged)
            raise DataLossError(f"bytes to stage hash to {staged.sha256[:12]}…, not the expected "
                                f"{expected_sha256[:12]}…; nothing was staged")
        return staged

    def discard_blob(self, blob: StagedBlob) -> None:
        """Give up a staged blob that will not be committed; its file goes unless a version uses it."""
        self._store.release(blob.sha256)
        self.collect_garbage({blob.sha256})

    def commit_version(
        self,
        *,
        tenant: str,
        adapter: str,
        parent_version: int,
        blob: StagedBlob,
        kind: str = "upload",
        manifest_hash: str | None = None,
        in_transaction: Callable[[Connection, VersionRecord], None] | None = None,
        create: AdapterSchema | None = None,
    ) -> VersionRecord:
        """Add version parent_version+1 holding `blob` if parent_version is still the head.

        With `create`, an adapter that does not exist yet is created with that schema in the same transaction
        as its first version (a refused first upload leaves nothing behind); one that exists must have it.

        `kind` is upload or federation-round (erasures and rollbacks have their own methods). The staged blob
        is consumed whatever happens. `in_transaction(conn, new_version)` runs inside the same transaction
        after the version is written (a federation round appends its audit entry there); if it raises,
        nothing commits. Raises AbortedError naming the head when another commit won, NotFoundError,
        FailedPreconditionError (adapter bound to another base), InvalidArgumentError.
        """

        def body(conn: Connection, row: dict[str, Any], label: str) -> VersionRecord:
            if kind not in _COMMIT_KINDS:
                raise InvalidArgumentError(
                    f"version kind {kind!r} is not one of {', '.join(_COMMIT_KINDS)}; "
                    "use erasure_commit or rollback"
                )
            record = commits.commit_blob(
                conn, adapter=row, label=label, parent=parent_version, blob=blob,
                kind="upload" if kind == "upload" else "federation-round", manifest_hash=manifest_hash,
            )
            if in_transaction is not None:
                in_transaction(conn, record)
            return record

        return self._commit_staged(
            tenant=tenant, adapter=adapter, parent_version=parent_version, blob=blob, manifest_hash=manifest_hash,
            body=body, create=create,
        )

    def erasure_commit(
        self,
        *,
        tenant: str,
        adapter: str,
        parent_version: int,
        blob: StagedBlob,
        manifest_hash: str,
        parent_sha256: str | None = None,
        in_transaction: Callable[[Connection, VersionRecord], None] | None = None,
    ) -> VersionRecord:
        """Commit an erasure: new version, floor raised to it, every older version purged, in one transaction.

        With `parent_sha256`, the parent version's blob must have that digest (FailedPreconditionError).
        `in_transaction(conn, new_version)` runs inside the same transaction after the version is written (the
        audit log appends its entry there); if it raises, nothing commits. Purged versions' blob files are
        deleted after the commit unless a live version (of any tenant) uses them; a crash in between leaves
        orphans that `fsck(repair=True)` removes.
        """
        if parent_sha256 is not None:
            check_sha256(parent_sha256)

        def body(conn: Connection, row: dict[str, Any], label: str) -> tuple[VersionRecord, set[str]]:
            record, purged = commits.commit_erasure(
                conn, adapter=row, label=label, parent=parent_version, parent_sha256=parent_sha256, blob=blob,
                manifest_hash=manifest_hash,
            )
            if in_transaction is not None:
                in_transaction(conn, record)
            return record, purged

        record, purged = self._commit_staged(
            tenant=tenant, adapter=adapter, parent_version=parent_version, blob=blob, manifest_hash=manifest_hash,
            body=body,
        )
        deleted = self.collect_garbage(purged)
        log.info("erasure %s/%s v%d: floor raised, %d blob(s) deleted", tenant, adapter, record.number, deleted)
        return record

    def rollback(self, *, tenant: str, adapter: str, to_version: int, parent_version: int) -> VersionRecord:
        """Add a version of kind rollback reusing the blob of `to_version`, if parent_version is the head.

        Refused with FailedPreconditionError below the erasure floor (purged), and DataLossError when the
        older blob no longer hashes right.
        """
        check_version_number(parent_version, what="parent version", allow_zero=True)
        check_version_number(to_version, what="rollback target")
        target = self.get_version(tenant=tenant, adapter=adapter, version=to_version)
        if not target.purged:
            self._store.read(target.blob_sha256)  # DataLossError before any row is written
        with self._db.write() as conn:
            row = self._adapter(conn, tenant=tenant, name=adapter)
            label = label_of(tenant=tenant, adapter=adapter)
            commits.check_bound(row, label=label, base_fingerprint=self._base_fingerprint)
            return commits.commit_rollback(conn, adapter=row, label=label, parent=parent_version, to_version=to_version)

    def open_version_blob(self, *, tenant: str, adapter: str, version: int | None = None) -> BlobReader:
        """A reader over a version's bytes that verifies the digest at the end (see BlobReader).

        FailedPreconditionError for a purged version; DataLossError when the blob is missing or corrupt.
        """
        record = self._downloadable(tenant=tenant, adapter=adapter, version=version)
        try:
            return self._store.open(record.blob_sha256)
        except DataLossError:
            # purged meanwhile (a concurrent erasure): say so instead of reporting data loss
            self._downloadable(tenant=tenant, adapter=adapter, version=record.number)
            raise

    def read_version_blob(self, *, tenant: str, adapter: str, version: int | None = None) -> bytes:
        """A version's bytes, verified against its digest before they are returned."""
        record = self._downloadable(tenant=tenant, adapter=adapter, version=version)
        try:
            return self._store.read(record.blob_sha256)
        except DataLossError:
            self._downloadable(tenant=tenant, adapter=adapter, version=record.number)
            raise

    def fsck(self, *, repair: bool = False) -> FsckReport:
        """Check every live version's blob; report (and with `repair`, remove) orphans and temporary files."""
        with self._db.read() as conn:
            live = version_rows.live_blob_counts(conn)
        return run_fsck(self._store, live, is_live=self._blob_is_live, repair=repair)

    @contextmanager
    def hold_adapter_lock(self, *, tenant: str, adapter: str) -> Iterator[None]:
        """Exclude every other replica's holder of this adapter's lock for the body (see db_locks.session_lock).

        The erasure pipeline holds it from binding to commit, so two replicas never verify and merge against
        the same head at once; the compare-and-swap stays the final word.
        """
        self._db.check_open()
        with db_locks.session_lock(self._db.engine, namespace="adapter", name=f"{tenant}/{adapter}"):
            yield

    def _commit_staged(
        self,
        *,
        tenant: str,
        adapter: str,
        parent_version: int,
        blob: StagedBlob,
        manifest_hash: str | None,
        body: Callable[[Connection, dict[str, Any], str], _T],
        create: AdapterSchema | None = None,
    ) -> _T:
        """Run a commit body in a write transaction, then release the staged blob (deleting it on failure).

        A blob that is not staged (already committed or discarded) is refused before anything else, so a
        caller's mistake never releases a pin another upload of the same bytes holds.
        """
        self._store.check_staged(blob)
        try:
            check_version_number(parent_version, what="parent version", allow_zero=True)
            if manifest_hash is not None:
                check_sha256(manifest_hash)
            with self._db.write() as conn:
                row = self._adapter_or_create(conn, tenant=tenant, name=adapter, create=create)
                label = label_of(tenant=tenant, adapter=adapter)
                commits.check_bound(row, label=label, base_fingerprint=self._base_fingerprint)
                result = body(conn, row, label)
        except BaseException:
            self.discard_blob(blob)
            raise
        self._store.release(blob.sha256)
        return result

    def _downloadable(self, *, tenant: str, adapter: str, version: int | None) -> VersionRecord:
        record = self.get_version(tenant=tenant, adapter=adapter, version=version)
        if record.purged:
            floor = self.get_adapter(tenant=tenant, name=adapter).floor
            raise FailedPreconditionError(
                f"adapter {label_of(tenant=tenant, adapter=adapter)} v{record.number} is below the erasure floor "
                f"v{floor} and was purged; download the head instead"
            )
        return record

    def collect_garbage(self, digests: Set[str]) -> int:
        """Delete the blob files of `digests` that no live version and no staged upload uses."""
        return len(self._store.delete_unreferenced(digests, is_referenced=self._blob_is_live))

    def _blob_is_live(self, sha256: str) -> bool:
        with self._db.read() as conn:
            return version_rows.blob_is_live(conn, sha256)

    def _adapter_or_create(
        self, conn: Connection, *, tenant: str, name: str, create: AdapterSchema | None
    ) -> dict[str, Any]:
        try:
            row = self._adapter(conn, tenant=tenant, name=name)
        except NotFoundError:
            if create is None:
                raise
            create.check_binding(self._base_fingerprint)
            try:
                adapter_rows.insert_adapter(conn, tenant_id=tenant_id_of(conn, tenant), tenant=tenant, name=name,
                                            schema=create)
            except AlreadyExistsError as exc:  # another replica's first upload committed in between
                raise AbortedError(f"another first upload of {label_of(tenant=tenant, adapter=name)} won; "
                                   "retry on its head") from exc
            return adapter_rows.find_adapter(conn, tenant=tenant, name=name)
        if create is not None and not adapter_rows.stored_schema(row["schema_json"]).describes_the_same_adapter(create):
            raise FailedPreconditionError(
                f"adapter {label_of(tenant=tenant, adapter=name)} exists with another schema than this upload's")
        return row

    def _adapter(self, conn: Connection, *, tenant: str, name: str) -> dict[str, Any]:
        check_name(tenant, what="tenant")
        check_name(name, what="adapter")
        return adapter_rows.find_adapter(conn, tenant=tenant, name=name)
