"""Step 4, `check_binding` (under the adapter's lock): the manifest applies to this base and this head.

Refusals: another base fingerprint or a non-float32 adapter (FailedPreconditionError), a parent that is no
longer the head (AbortedError: re-read and recompute; this is also what the loser of two erasures on one head
sees, whose parent the winner's floor has just purged), a parent hash other than the head's blob hash
(FailedPreconditionError). The commit repeats the head and hash comparison inside its transaction, so a race
after this check still cannot commit.
"""

from __future__ import annotations

from loravault.core.errors import AbortedError, FailedPreconditionError
from loravault.proto.federation import RoundManifest
from loravault.proto.manifest import ErasureManifest

from ..vault import AdapterRecord, VersionRecord

__all__ = ["check_binding"]


def check_binding(manifest: ErasureManifest | RoundManifest, *, adapter: AdapterRecord, head: VersionRecord | None,
                  base_fingerprint: str) -> VersionRecord:
    """The head, which the manifest names as its parent (`head` is None while the adapter has none); a
    federation round binds as an erasure does."""
    label = manifest.label
    if manifest.base_fingerprint != base_fingerprint or adapter.schema.base_fingerprint != base_fingerprint:
        raise FailedPreconditionError(
            f"{label}: the manifest binds base {manifest.base_fingerprint[:12]}…, this server holds "
            f"{base_fingerprint[:12]}…")
    if adapter.schema.dtype != "float32":
        raise FailedPreconditionError(
            f"{label}: the adapter stores {adapter.schema.dtype}; erasures merge in float32 and need a float32 adapter")
    if head is None or manifest.parent_version != head.number:
        purged = f", and below the erasure floor v{adapter.floor}: purged" if manifest.parent_version < adapter.floor else ""
        raise AbortedError(
            f"{label}: parent v{manifest.parent_version} is not the head (head is v{adapter.head_version}{purged}); "
            "download the head and recompute the erasure")
    if manifest.parent_hash != head.blob_sha256:
        raise FailedPreconditionError(
            f"{label}: parent v{head.number} has blob {head.blob_sha256[:12]}…, the manifest names "
            f"{manifest.parent_hash[:12]}…")
    return head
