"""Step 8, `commit`: the merged blob, the version, the floor, the purge and the audit entry in one durable step.

Order: the blob is written and fsynced (staged), then one vault transaction moves the head by compare-and-swap
(repeating the parent hash check), raises the erasure floor, purges every older version and appends the audit
entry with its signed receipt; the purged blobs are deleted after it commits. A crash before the transaction
commits leaves the old state (plus at most an orphan blob fsck removes); after it, the new one. The delta is
never written anywhere.
"""

from __future__ import annotations

import logging
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from loravault.core.errors import AlreadyExistsError

from ..audit import Appended, AuditLog, ErasureRecord
from ..vault import Vault, VersionRecord
from .merge import Merged
from .signatures import VerifiedManifest
from .submission import ErasureResult

__all__ = ["commit"]

logger = logging.getLogger(__name__)


def commit(
    verified: VerifiedManifest, merged: Merged, *, vault: Vault, audit: AuditLog, now: float
) -> ErasureResult:
    """Commit the erasure; raises AbortedError or FailedPreconditionError when the head moved meanwhile,
    AlreadyExistsError when a concurrent request took its request id."""
    manifest = verified.manifest
    staged = vault.adapters.stage_blob(merged.data, expected_sha256=merged.sha256)
    appended: list[Appended] = []

    def in_transaction(conn: Connection, version: VersionRecord) -> None:
        record = ErasureRecord.of(manifest, manifest_hash=verified.manifest_hash, key_ids=verified.key_ids,
                                  new_hash=version.blob_sha256, committed_at=int(now))
        appended.append(audit.append(conn, record))

    try:
        version = vault.adapters.erasure_commit(
            tenant=manifest.tenant, adapter=manifest.adapter, parent_version=manifest.parent_version, blob=staged,
            manifest_hash=verified.manifest_hash, parent_sha256=manifest.parent_hash, in_transaction=in_transaction)
    except IntegrityError as exc:
        raise AlreadyExistsError(f"{manifest.label}: request id {manifest.request_id} was taken meanwhile") from exc
    logger.info("%s committed at audit index %d", manifest.label, appended[0].entry.index)
    return ErasureResult(receipt=appended[0].receipt, version=version, log_index=appended[0].entry.index,
                         replayed=False)
