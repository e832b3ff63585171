"""The body of a federation-round entry in the audit log: the round's hashes and its signed provenance manifest.

A round entry names the federation (tenant), its shared adapter, the request id and key ids of the
coordinator's signature, the parent and new version with their blob hashes, and carries the coordinator's DSSE
envelope itself: so the provenance (participants' node ids and client names, their update hashes and sample
counts, the aggregation method) is covered by the hash chain and checked by `audit verify` with everything
else. The manifest holds no sample ids and no text, only hashes, counts and names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from loravault.core.errors import DataLossError
from loravault.proto.federation import RoundManifest
from loravault.proto.statement import canonical_json

__all__ = ["ROUND_ENTRY_KIND", "FederationRoundRecord", "parse_round_body"]

ROUND_ENTRY_KIND = "federation-round"


@dataclass(frozen=True)
class FederationRoundRecord:
    """What the log says about one committed federation round."""

    kind: str  # always ROUND_ENTRY_KIND
    # who committed
    tenant: str
    adapter: str
    request_id: str
    key_ids: tuple[str, ...]  # coordinator keys whose signatures counted
    manifest_hash: str  # SHA-256 of the envelope bytes
    # the versions
    parent_version: int
    parent_hash: str
    new_version: int
    new_hash: str  # = the manifest's aggregate_hash
    # the round
    round: int
    aggregation: str
    participants: int
    total_samples: int
    envelope: str  # the signed manifest, exactly as received (ASCII JSON)
    committed_at: int  # Unix seconds (UTC)

    @classmethod
    def of(cls, manifest: RoundManifest, *, envelope: bytes, manifest_hash: str, key_ids: tuple[str, ...],
           committed_at: int) -> FederationRoundRecord:
        return cls(
            kind=ROUND_ENTRY_KIND, tenant=manifest.tenant, adapter=manifest.adapter, request_id=manifest.request_id,
            key_ids=tuple(sorted(key_ids)), manifest_hash=manifest_hash, parent_version=manifest.parent_version,
            parent_hash=manifest.parent_hash, new_version=manifest.new_version, new_hash=manifest.aggregate_hash,
            round=manifest.round, aggregation=manifest.aggregation, participants=len(manifest.participants),
            total_samples=manifest.total_samples, envelope=envelope.decode("ascii"), committed_at=committed_at,
        )

    def to_bytes(self) -> bytes:
        """The canonical JSON body the chain hashes."""
        data: dict[str, Any] = asdict(self)
        data["key_ids"] = list(self.key_ids)
        return canonical_json(data)


def parse_round_body(body: bytes) -> FederationRoundRecord:
    """The record a stored body holds; DataLossError when it is not exactly what `to_bytes` writes."""
    names = {f.name for f in fields(FederationRoundRecord)}
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"fields are {sorted(data) if isinstance(data, dict) else type(data).__name__}")
        data["key_ids"] = tuple(data["key_ids"])
        record = FederationRoundRecord(**data)
    except (ValueError, TypeError) as exc:
        raise DataLossError(f"audit entry body is not a federation-round record: {exc}") from exc
    if record.to_bytes() != bytes(body) or record.kind != ROUND_ENTRY_KIND:
        raise DataLossError("audit entry body is not in canonical form")
    if hashlib.sha256(record.envelope.encode("ascii")).hexdigest() != record.manifest_hash:
        raise DataLossError(f"audit entry for {record.tenant}/{record.adapter} v{record.new_version}: its envelope "
                            "does not hash to its manifest_hash")
    return record
