"""The body of an erasure entry in the audit log: hashes and commitments only, never sample ids or text.

The body is canonical JSON of `ErasureRecord`'s fields. It names who asked (tenant, adapter, request id, the
key ids that signed), what it applied to and produced (parent and new version with their blob hashes, the
delta hash, the manifest hash), what was forgotten as a commitment (Merkle root of salted sample-id hashes)
and a count, and when it committed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from loravault.core.errors import DataLossError
from loravault.proto.manifest import ErasureManifest
from loravault.proto.statement import canonical_json

__all__ = ["ENTRY_KIND", "ErasureRecord", "parse_body"]

ENTRY_KIND = "erasure"


@dataclass(frozen=True)
class ErasureRecord:
    """What the log says about one committed erasure."""

    kind: str  # always ENTRY_KIND
    # who asked
    tenant: str
    adapter: str
    request_id: str
    key_ids: tuple[str, ...]  # keys that signed the manifest and counted toward the threshold
    manifest_hash: str  # SHA-256 of the signed envelope bytes as received
    # the versions
    parent_version: int
    parent_hash: str
    new_version: int
    new_hash: str  # SHA-256 of the new version's blob (= the manifest's result hash)
    delta_hash: str
    # what was forgotten, and when
    forget_commitment: str
    forget_count: int
    committed_at: int  # Unix seconds (UTC)

    @classmethod
    def of(cls, manifest: ErasureManifest, *, manifest_hash: str, key_ids: tuple[str, ...], new_hash: str,
           committed_at: int) -> ErasureRecord:
        return cls(
            kind=ENTRY_KIND, tenant=manifest.tenant, adapter=manifest.adapter, request_id=manifest.request_id,
            key_ids=tuple(sorted(key_ids)), manifest_hash=manifest_hash, parent_version=manifest.parent_version,
            parent_hash=manifest.parent_hash, new_version=manifest.new_version, new_hash=new_hash,
            delta_hash=manifest.delta_hash, forget_commitment=manifest.forget.commitment,
            forget_count=manifest.forget.count, committed_at=committed_at,
        )

    def to_bytes(self) -> bytes:
        """The canonical JSON body the chain hashes."""
        data: dict[str, Any] = asdict(self)
        data["key_ids"] = list(self.key_ids)
        return canonical_json(data)


def parse_body(body: bytes) -> ErasureRecord:
    """The record a stored body holds; DataLossError when it is not exactly what `to_bytes` writes."""
    names = {f.name for f in fields(ErasureRecord)}
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"fields are {sorted(data) if isinstance(data, dict) else type(data).__name__}")
        data["key_ids"] = tuple(data["key_ids"])
        record = ErasureRecord(**data)
    except (ValueError, TypeError) as exc:
        raise DataLossError(f"audit entry body is not an erasure record: {exc}") from exc
    if record.to_bytes() != bytes(body) or record.kind != ENTRY_KIND:
        raise DataLossError("audit entry body is not in canonical form")
    return record
