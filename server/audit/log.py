"""The `AuditLog`: appends entries (erasures, admins' key changes) inside the vault's transaction that makes
the change, signs receipts and checkpoints; reads entries, receipts and checkpoints back.

    >>> log = AuditLog(vault, signer=server_signer, checkpoint_every=16)
    >>> vault.adapters.erasure_commit(..., in_transaction=lambda conn, version: log.append(conn, record))

Guarantees: an entry and its erasure commit together or not at all (one transaction); entries are never
updated or deleted; each receipt is signed over the entry's final index and hash. Appends are serialized by
the log's lock in the database (db_locks.transaction_lock, held to the end of the erasure's transaction): on
SQLite every write transaction already runs alone (BEGIN IMMEDIATE), on PostgreSQL an advisory lock makes
replicas append one at a time, each reading the last entry only after the previous append committed, so the
chain never forks and no append is lost.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from securesystemslib.signer import Signer
from sqlalchemy import Connection

from loravault.core.errors import UnavailableError
from loravault.proto.receipt import Receipt, sign_receipt

from ..vault import Vault
from ..vault.clock import utc_now
from . import rows
from .body import ErasureRecord, FederationRoundRecord, KeyChangeRecord, parse_round_body
from .chain import GENESIS_HASH, AuditEntry, entry_hash
from .checkpoints import Checkpoint, sign_checkpoint
from .rows import StoredCheckpoint, StoredErasure

__all__ = ["AuditLog", "Appended"]

logger = logging.getLogger(__name__)
_PAGE = 256


@dataclass(frozen=True)
class Appended:
    """An entry just appended, with the receipt signed over it."""

    entry: AuditEntry
    receipt: bytes


class AuditLog:
    """The hash-chained log of committed erasures in the vault's database, and the key that signs for it."""

    def __init__(self, vault: Vault, *, signer: Signer | None, checkpoint_every: int = 16) -> None:
        self._vault = vault
        self._signer = signer
        self._checkpoint_every = checkpoint_every

    @property
    def signer(self) -> Signer | None:
        return self._signer

    # writing (inside the caller's transaction)

    def append(self, conn: Connection, record: ErasureRecord | FederationRoundRecord) -> Appended:
        """Append `record` (an erasure or a federation round) and sign its receipt; every `checkpoint_every`
        entries, sign a checkpoint too."""
        signer = self._require_signer()
        entry = self._next_entry(conn, record.to_bytes())
        receipt = sign_receipt(
            Receipt(tenant=record.tenant, adapter=record.adapter, request_id=record.request_id, log_index=entry.index,
                    entry_hash=entry.entry_hash, new_version=record.new_version, new_adapter_hash=record.new_hash,
                    committed_at=record.committed_at),
            signer=signer,
        )
        stored = StoredErasure(index=entry.index, entry_hash=entry.entry_hash, tenant=record.tenant,
                               adapter=record.adapter, request_id=record.request_id,
                               manifest_hash=record.manifest_hash, new_version=record.new_version, receipt=receipt)
        self._insert(conn, entry, stored=stored, time=record.committed_at)
        return Appended(entry=entry, receipt=receipt)

    def append_key_change(self, conn: Connection, record: KeyChangeRecord) -> AuditEntry:
        """Append an admin's key change. It has no receipt and no adapter: the chain and its checkpoints cover
        it, and its request id is random, so no erasure's idempotency lookup can ever find it."""
        self._require_signer()  # the checkpoints it may trigger are signed
        body = record.to_bytes()
        entry = self._next_entry(conn, body)
        stored = StoredErasure(index=entry.index, entry_hash=entry.entry_hash, tenant=record.tenant, adapter="",
                               request_id=secrets.token_hex(16), manifest_hash=hashlib.sha256(body).hexdigest(),
                               new_version=0, receipt=b"")
        self._insert(conn, entry, stored=stored, time=record.committed_at)
        logger.info("audit: %s of tenant %s by an admin at index %d", record.action, record.tenant, entry.index)
        return entry

    def _next_entry(self, conn: Connection, body: bytes) -> AuditEntry:
        """`body` linked after the log's last entry (not yet inserted), with the log locked to the end of the
        caller's transaction, so no other append can link after the same entry."""
        rows.lock_log(conn)
        last = rows.last_entry(conn)
        previous = GENESIS_HASH if last is None else last.entry_hash
        return AuditEntry(index=0 if last is None else last.index + 1,
                          entry_hash=entry_hash(previous_hash=previous, body=body), previous_hash=previous, body=body)

    def _insert(self, conn: Connection, entry: AuditEntry, *, stored: StoredErasure, time: int) -> None:
        """Insert the entry; every `checkpoint_every` entries, sign a checkpoint too."""
        rows.insert_entry(conn, entry, stored=stored, created_at=utc_now())
        if (entry.index + 1) % self._checkpoint_every == 0:
            self._checkpoint(conn, size=entry.index + 1, head_hash=entry.entry_hash, time=time)

    def checkpoint_now(self, *, time: int) -> StoredCheckpoint:
        """Sign a checkpoint of the log as it is now (the stored one, if this size already has one)."""
        with self._vault.write_transaction() as conn:
            rows.lock_log(conn)
            last = rows.last_entry(conn)
            size = 0 if last is None else last.index + 1
            existing = [c for c in rows.list_checkpoints(conn) if c.size == size]
            if existing:
                return existing[0]
            return self._checkpoint(conn, size=size, head_hash=GENESIS_HASH if last is None else last.entry_hash,
                                    time=time)

    def _checkpoint(self, conn: Connection, *, size: int, head_hash: str, time: int) -> StoredCheckpoint:
        envelope = sign_checkpoint(Checkpoint(size=size, head_hash=head_hash, time=time),
                                   signer=self._require_signer())
        stored = StoredCheckpoint(size=size, head_hash=head_hash, envelope=envelope)
        rows.insert_checkpoint(conn, stored, created_at=utc_now())
        logger.info("signed audit checkpoint at size %d", size)
        return stored

    def _require_signer(self) -> Signer:
        if self._signer is None:
            raise UnavailableError("this audit log was opened without the server key; it cannot sign")
        return self._signer

    # reading

    def find(self, *, tenant: str, request_id: str) -> StoredErasure | None:
        """The committed erasure with this request id of this tenant, if any."""
        with self._vault.read_transaction() as conn:
            return rows.find_erasure(conn, tenant=tenant, request_id=request_id)

    def federation_rounds(
        self, *, tenant: str, adapter: str, manifest_hashes: Collection[str]
    ) -> dict[str, FederationRoundRecord]:
        """The committed federation rounds of this adapter among `manifest_hashes`, by manifest hash."""
        with self._vault.read_transaction() as conn:
            bodies = rows.bodies_by_manifest_hash(conn, tenant=tenant, adapter=adapter, manifest_hashes=manifest_hashes)
        return {digest: parse_round_body(body) for digest, body in bodies.items()}

    def entries(self, *, start: int = 0, page: int = _PAGE) -> Iterator[AuditEntry]:
        """Every entry from index `start` on, read a page (one snapshot) at a time."""
        while True:
            with self._vault.read_transaction() as conn:
                batch = rows.entries_from(conn, start=start, limit=page)
            yield from batch
            if len(batch) < page:
                return
            start = batch[-1].index + 1

    def checkpoints(self) -> list[StoredCheckpoint]:
        with self._vault.read_transaction() as conn:
            return rows.list_checkpoints(conn)
