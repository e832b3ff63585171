"""The `Vault`: the one object the server uses to store tenants, credentials, adapters and their versions.

    >>> vault = Vault.open(Path("data"), base_fingerprint=base.fingerprint)
    >>> vault.create_tenant("acme")
    >>> adapter = vault.create_adapter(tenant="acme", name="support", schema=schema)
    >>> with vault.new_blob_writer(max_bytes=schema.max_blob_bytes()) as writer:
    ...     writer.write(safetensors_bytes)
    ...     staged = writer.finish()
    >>> vault.commit_version(tenant="acme", adapter="support", parent_version=0, blob=staged, kind="upload")

Guarantees: the head moves only by compare-and-swap on the parent version; a blob is durable before any row
references it; a blob file is deleted only after the commit that made it unreferenced, and never while a live
version or a staged upload still uses it. Thread-safe: share one Vault across a gRPC thread pool. The only
lock it holds is the blob store's, for file renames and unlinks, never during model compute.

Several server replicas may open Vaults on one PostgreSQL database and one bucket (each with its own data
folder): whatever must be serialized across them takes a lock in the database (db_locks), never in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Set
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from loravault.core import (
    AbortedError,
    AdapterSchema,
    AlreadyExistsError,
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from loravault.proto.digests import is_sha256_hex
from loravault.proto.names import check_name

from . import adapters as adapter_rows
from . import commits
from . import keys as key_rows
from . import tenants as tenant_rows
from . import tokens as token_rows
from . import versions as version_rows
from . import db_locks, identity
from .blob_backend import BlobBackend, open_blob_store
from .blobs import BlobReader, BlobWriter, StagedBlob, check_sha256
from .commits import label_of
from .datadir_lock import DataDirLock
from .database import open_engine, read_transaction, upgrade, write_transaction
from .durable import write_file_durably
from .fsck import run_fsck
from .records import (
    AdapterRecord,
    DeleteResult,
    FsckReport,
    IssuedToken,
    KeyRecord,
    Principal,
    SigningPolicy,
    TenantRecord,
    TokenRecord,
    VersionRecord,
)
from .versions import check_version_number

__all__ = ["Vault"]

log = logging.getLogger(__name__)

_COMMIT_KINDS = ("upload", "federation-round")
_T = TypeVar("_T")
# runs inside a key change's transaction with the tenant's keys and threshold after the change (the audit entry)
KeyChangeHook = Callable[[Connection, SigningPolicy], None]


def _require_no_active_key(conn: Connection, *, tenant_id: int, tenant: str, change: str) -> None:
    """A token alone may set up a tenant's first key (trust on first use), never change keys it already has."""
    active = key_rows.active_key_count(conn, tenant_id=tenant_id)
    if active:
        raise PermissionDeniedError(
            f"tenant {tenant} has {active} active signing key(s): to {change}, send a key rotation signed by a "
            "threshold of them (`loravault keys ... --key FILE`), or ask an admin to reset the keys"
        )


class Vault:
    """Tenants, tokens, keys, adapters and versions over one database and one blob folder. Use `Vault.open`."""

    def __init__(self, *, engine: Engine, store: BlobBackend, lock: DataDirLock, base_fingerprint: str) -> None:
        self._engine = engine
        self._store = store
        self._lock = lock
        self._base_fingerprint = base_fingerprint
        self._closed = False

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

    @property
    def base_fingerprint(self) -> str:
        return self._base_fingerprint

    def close(self) -> None:
        """Release database connections and the folder lock; later calls raise UnavailableError."""
        self._closed = True
        self._engine.dispose()
        self._store.close()
        self._lock.release()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # tenants

    def create_tenant(self, name: str) -> TenantRecord:
        check_name(name, what="tenant")
        with self._write() as conn:
            return tenant_rows.insert_tenant(conn, name)

    def list_tenants(self) -> list[TenantRecord]:
        with self._read() as conn:
            return tenant_rows.list_tenant_records(conn)

    def delete_tenant(self, name: str) -> DeleteResult:
        """Delete a tenant with its adapters, versions, tokens and keys, then the blobs nobody else uses."""
        check_name(name, what="tenant")
        with self._write() as conn:
            tenant_id = tenant_rows.get_tenant_id(conn, name)
            adapter_count, version_count, digests = tenant_rows.delete_tenant_rows(conn, tenant_id)
        purged = self._collect_garbage(digests)
        log.info("deleted tenant %s: %d adapters, %d blobs", name, adapter_count, purged)
        return DeleteResult(deleted_adapters=adapter_count, deleted_versions=version_count, purged_blobs=purged)

    # tokens

    def issue_token(self, *, role: str, tenant: str | None = None, label: str = "") -> IssuedToken:
        """A new token; its secret is in the result only. NotFoundError when the tenant does not exist."""
        checked_role = token_rows.check_role(role=role, tenant=tenant)
        with self._write() as conn:
            tenant_id = None if tenant is None else self._tenant_id(conn, tenant)
            return token_rows.insert_token(conn, role=checked_role, tenant_id=tenant_id, label=label)

    def revoke_token(self, token_id: str, *, tenant: str | None = None) -> None:
        """Revoke a token; with `tenant`, another tenant's token is NotFoundError, like a missing one."""
        with self._write() as conn:
            tenant_id = None if tenant is None else self._tenant_id(conn, tenant)
            token_rows.revoke_token_row(conn, token_id, tenant_id=tenant_id)

    def list_tokens(self, *, tenant: str | None = None) -> list[TokenRecord]:
        """Every token (tenant=None) or one tenant's tokens; never their secrets."""
        with self._read() as conn:
            tenant_id = None if tenant is None else self._tenant_id(conn, tenant)
            return token_rows.list_token_records(conn, tenant_id=tenant_id)

    def authenticate(self, secret: str) -> Principal:
        """Who `secret` speaks for; UnauthenticatedError if it is unknown or revoked."""
        with self._read() as conn:
            return token_rows.authenticate_secret(conn, secret)

    def ensure_admin_token(self, path: Path) -> str | None:
        """On a vault with no tokens at all, issue an admin token and write it to `path` (mode 0600).

        Returns the secret, or None when the vault already has tokens. The file is created exclusively and
        with mode 0600 from the start; an existing file is never overwritten (AlreadyExistsError). The token
        row commits only if the file was written, and the file is removed if the commit fails.
        """
        path = Path(path)
        written = False
        try:
            with self._write() as conn:
                db_locks.transaction_lock(conn, namespace="bootstrap", name="admin-token")  # replicas start together
                issued = token_rows.insert_first_admin(conn)
                if issued is None:
                    return None
                write_file_durably(path, (issued.secret + "\n").encode(), mode=0o600, exclusive=True)
                written = True
        except BaseException:
            if written:  # the commit failed after the file was written: a token nobody can use
                path.unlink(missing_ok=True)
            raise
        log.info("wrote the initial admin token to %s", path)
        return issued.secret

    # keys

    def add_key(self, *, tenant: str, public_key: dict[str, Any], trust_on_first_use: bool = False,
                in_transaction: KeyChangeHook | None = None) -> str:
        """Register an ed25519 public key (securesystemslib form) and return its key id.

        With `trust_on_first_use` (a caller holding only a tenant token), refused with PermissionDeniedError
        once the tenant has an active key: later changes are rotations signed by a threshold of its keys.
        `in_transaction(conn, policy)` runs in the same transaction with the resulting keys and threshold.
        """
        with self._write() as conn:
            tenant_id = self._keys_locked(conn, tenant)
            if trust_on_first_use:
                _require_no_active_key(conn, tenant_id=tenant_id, tenant=tenant, change="add a key")
            keyid = key_rows.insert_key(conn, tenant_id=tenant_id, tenant=tenant, public_key=public_key)
            self._key_change_done(conn, tenant_id, in_transaction)
            return keyid

    def list_keys(self, *, tenant: str) -> list[KeyRecord]:
        with self._read() as conn:
            return key_rows.list_key_records(conn, tenant_id=self._tenant_id(conn, tenant))

    def revoke_key(self, *, tenant: str, keyid: str, trust_on_first_use: bool = False,
                   in_transaction: KeyChangeHook | None = None) -> None:
        """Revoke a key; refused (FailedPreconditionError) if fewer active keys than the threshold would remain.

        `trust_on_first_use` and `in_transaction` as for `add_key`.
        """
        with self._write() as conn:
            tenant_id = self._keys_locked(conn, tenant)
            if trust_on_first_use:
                _require_no_active_key(conn, tenant_id=tenant_id, tenant=tenant, change="revoke a key")
            key_rows.revoke_key_row(conn, tenant_id=tenant_id, tenant=tenant, keyid=keyid)
            self._key_change_done(conn, tenant_id, in_transaction)

    def set_threshold(self, *, tenant: str, threshold: int, trust_on_first_use: bool = False,
                      in_transaction: KeyChangeHook | None = None) -> None:
        """Set how many active keys must sign; 1 up to the number of active keys.

        `trust_on_first_use` and `in_transaction` as for `add_key`.
        """
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            raise InvalidArgumentError(f"signing threshold must be an integer, got {threshold!r}")
        with self._write() as conn:
            tenant_id = self._keys_locked(conn, tenant)
            if trust_on_first_use:
                _require_no_active_key(conn, tenant_id=tenant_id, tenant=tenant, change="change the threshold")
            active = key_rows.active_key_count(conn, tenant_id=tenant_id)
            if not 1 <= threshold <= active:
                raise FailedPreconditionError(
                    f"tenant {tenant}: threshold {threshold} must be between 1 and its {active} active key(s)"
                )
            tenant_rows.set_signing_threshold(conn, tenant_id=tenant_id, threshold=threshold)
            self._key_change_done(conn, tenant_id, in_transaction)

    @staticmethod
    def _key_change_done(conn: Connection, tenant_id: int, hook: KeyChangeHook | None) -> None:
        if hook is not None:
            hook(conn, SigningPolicy(keys=key_rows.list_key_records(conn, tenant_id=tenant_id),
                                     threshold=tenant_rows.get_signing_threshold(conn, tenant_id)))

    def get_threshold(self, *, tenant: str) -> int:
        with self._read() as conn:
            return tenant_rows.get_signing_threshold(conn, self._tenant_id(conn, tenant))

    def signing_policy(self, *, tenant: str) -> SigningPolicy:
        """Keys and threshold from one read, so a rotation between two reads cannot pair old keys with a new
        threshold (verifying a signature needs both as of the same moment)."""
        with self._read() as conn:
            tenant_id = self._tenant_id(conn, tenant)
            return SigningPolicy(keys=key_rows.list_key_records(conn, tenant_id=tenant_id),
                                 threshold=tenant_rows.get_signing_threshold(conn, tenant_id))

    def rotate_keys(
        self, *, tenant: str, public_keys: list[dict[str, Any]], threshold: int, expected_active: Set[str]
    ) -> None:
        """Make `public_keys` the tenant's active keys and `threshold` its threshold, in one transaction.

        Keys not yet registered are added, active keys not listed are revoked. `expected_active` are the
        key ids the caller verified the rotation against: if the active set changed since, AbortedError.
        A key revoked earlier cannot come back (AlreadyExistsError); the threshold must be 1..len(public_keys).
        """
        with self._write() as conn:
            tenant_id = self._keys_locked(conn, tenant)
            records = key_rows.list_key_records(conn, tenant_id=tenant_id)
            active = {k.keyid for k in records if k.status == "active"}
            if active != set(expected_active):
                raise AbortedError(f"tenant {tenant}: its active keys changed while the rotation was checked; retry")
            known = {k.keyid for k in records}
            wanted = [key_rows.parse_public_key(key)[0] for key in public_keys]
            for keyid, key in zip(wanted, public_keys, strict=True):
                if keyid not in known:
                    key_rows.insert_key(conn, tenant_id=tenant_id, tenant=tenant, public_key=key)
                elif keyid not in active:
                    raise AlreadyExistsError(f"tenant {tenant}: key {keyid[:12]}… was revoked and cannot return")
            if not 1 <= threshold <= len(set(wanted)):
                raise FailedPreconditionError(
                    f"tenant {tenant}: threshold {threshold} must be between 1 and the {len(set(wanted))} new key(s)"
                )
            tenant_rows.set_signing_threshold(conn, tenant_id=tenant_id, threshold=1)
            for keyid in sorted(active - set(wanted)):
                key_rows.revoke_key_row(conn, tenant_id=tenant_id, tenant=tenant, keyid=keyid)
            tenant_rows.set_signing_threshold(conn, tenant_id=tenant_id, threshold=threshold)

    # adapters

    def create_adapter(self, *, tenant: str, name: str, schema: AdapterSchema) -> AdapterRecord:
        """Create an empty adapter (head 0); FailedPreconditionError when the schema binds another base."""
        check_name(name, what="adapter")
        schema.check_binding(self._base_fingerprint)
        with self._write() as conn:
            tenant_id = self._tenant_id(conn, tenant)
            return adapter_rows.insert_adapter(conn, tenant_id=tenant_id, tenant=tenant, name=name, schema=schema)

    def get_adapter(self, *, tenant: str, name: str) -> AdapterRecord:
        with self._read() as conn:
            return adapter_rows.to_record(self._adapter(conn, tenant=tenant, name=name), tenant=tenant)

    def list_adapters(self, *, tenant: str) -> list[AdapterRecord]:
        with self._read() as conn:
            tenant_id = self._tenant_id(conn, tenant)
            return adapter_rows.list_adapter_records(conn, tenant_id=tenant_id, tenant=tenant)

    def delete_adapter(self, *, tenant: str, name: str) -> int:
        """Delete an adapter and all its versions; returns how many blob files were deleted."""
        with self._write() as conn:
            row = self._adapter(conn, tenant=tenant, name=name)
            _, digests = adapter_rows.delete_adapter_rows(conn, adapter_id=row["id"])
        return self._collect_garbage(digests)

    # versions

    def list_versions(
        self, *, tenant: str, adapter: str, after: int = 0, limit: int | None = None
    ) -> list[VersionRecord]:
        """Versions oldest first, purged ones included (their hashes stay); `after`/`limit` page through them."""
        with self._read() as conn:
            row = self._adapter(conn, tenant=tenant, name=adapter)
            return version_rows.list_version_records(conn, adapter_id=row["id"], after=after, limit=limit)

    def get_version(self, *, tenant: str, adapter: str, version: int | None = None) -> VersionRecord:
        """One version, or the head for None; NotFoundError when there is no such version (or none yet)."""
        with self._read() as conn:
            row = self._adapter(conn, tenant=tenant, name=adapter)
            label = label_of(tenant=tenant, adapter=adapter)
            number = row["head_version"] if version is None else check_version_number(version, what="version")
            if version is None and number == 0:
                raise NotFoundError(f"adapter {label} has no versions yet; upload one")
            return version_rows.version_record(conn, adapter=row, label=label, number=number)

    def get_adapter_and_head(self, *, tenant: str, name: str) -> tuple[AdapterRecord, VersionRecord | None]:
        """The adapter and its head version (None before the first) as of one read."""
        with self._read() as conn:
            row = self._adapter(conn, tenant=tenant, name=name)
            head = None
            if row["head_version"]:
                label = label_of(tenant=tenant, adapter=name)
                head = version_rows.version_record(conn, adapter=row, label=label, number=row["head_version"])
            return adapter_rows.to_record(row, tenant=tenant), head

    def new_blob_writer(self, *, max_bytes: int) -> BlobWriter:
        """A streaming writer for one blob of at most `max_bytes`; pass its StagedBlob to a commit."""
        self._check_open()
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
        self._collect_garbage({blob.sha256})

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
        deleted = self._collect_garbage(purged)
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
        with self._write() as conn:
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
        with self._read() as conn:
            live = version_rows.live_blob_counts(conn)
        return run_fsck(self._store, live, is_live=self._blob_is_live, repair=repair)

    def claim_server_key(self, *, keyid: str, public_key: dict[str, Any]) -> bool:
        """Record (True) or check (False) the deployment's receipt-signing key; see identity.claim_server_key."""
        with self._write() as conn:
            return identity.claim_server_key(conn, keyid=keyid, public_key=public_key)

    @contextmanager
    def hold_adapter_lock(self, *, tenant: str, adapter: str) -> Iterator[None]:
        """Exclude every other replica's holder of this adapter's lock for the body (see db_locks.session_lock).

        The erasure pipeline holds it from binding to commit, so two replicas never verify and merge against
        the same head at once; the compare-and-swap stays the final word.
        """
        self._check_open()
        with db_locks.session_lock(self._engine, namespace="adapter", name=f"{tenant}/{adapter}"):
            yield

    # transactions lent to the audit log (loravault.server.audit owns the audit tables' rows)

    @contextmanager
    def read_transaction(self) -> Iterator[Connection]:
        """One consistent read snapshot of the metadata database."""
        with self._read() as conn:
            yield conn

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A write transaction: committed on normal exit, rolled back on any exception."""
        with self._write() as conn:
            yield conn

    # helpers

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
            with self._write() as conn:
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

    def _collect_garbage(self, digests: Set[str]) -> int:
        """Delete the blob files of `digests` that no live version and no staged upload uses."""
        return len(self._store.delete_unreferenced(digests, is_referenced=self._blob_is_live))

    def _blob_is_live(self, sha256: str) -> bool:
        with self._read() as conn:
            return version_rows.blob_is_live(conn, sha256)

    def _keys_locked(self, conn: Connection, tenant: str) -> int:
        """The tenant's id, with its keys and threshold locked for this transaction (replicas change them one
        at a time: each change reads the active keys, then writes)."""
        tenant_id = self._tenant_id(conn, tenant)
        db_locks.transaction_lock(conn, namespace="tenant-keys", name=tenant)
        return tenant_id

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
                adapter_rows.insert_adapter(conn, tenant_id=self._tenant_id(conn, tenant), tenant=tenant, name=name,
                                            schema=create)
            except AlreadyExistsError as exc:  # another replica's first upload committed in between
                raise AbortedError(f"another first upload of {label_of(tenant=tenant, adapter=name)} won; "
                                   "retry on its head") from exc
            return adapter_rows.find_adapter(conn, tenant=tenant, name=name)
        if create is not None and adapter_rows.stored_schema(row["schema_json"]) != create:
            raise FailedPreconditionError(
                f"adapter {label_of(tenant=tenant, adapter=name)} exists with another schema than this upload's")
        return row

    def _tenant_id(self, conn: Connection, tenant: str) -> int:
        return tenant_rows.get_tenant_id(conn, check_name(tenant, what="tenant"))

    def _adapter(self, conn: Connection, *, tenant: str, name: str) -> dict[str, Any]:
        check_name(tenant, what="tenant")
        check_name(name, what="adapter")
        return adapter_rows.find_adapter(conn, tenant=tenant, name=name)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._check_open()
        with read_transaction(self._engine) as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        self._check_open()
        with write_transaction(self._engine) as conn:
            yield conn

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("the vault is closed (the server is shutting down)")

