"""The bodies of audit log entries: hashes, key ids and commitments only, never sample ids or text.

An erasure entry is canonical JSON of `ErasureRecord`'s fields. It names who asked (tenant, adapter, request
id, the key ids that signed), what it applied to and produced (parent and new version with their blob hashes,
the delta hash, the manifest hash), what was forgotten as a commitment (Merkle root of salted sample-id hashes)
and a count, and when it committed. Every erasure entry has a receipt signed over it.

A federation-round entry (`FederationRoundRecord`) names the federation (tenant), its shared adapter, the
request id and key ids of the coordinator's signature, the parent and new version with their blob hashes, and
carries the coordinator's DSSE envelope itself, so the round's provenance (participants' node ids and client
names, their update hashes and sample counts, the aggregation method) is covered by the hash chain and checked by
`audit verify` with everything else. It holds no sample ids and no text. Every round entry has a receipt.

A key-change entry (`KeyChangeRecord`) records a change to a tenant's signing keys or threshold made with an
admin token (recovery), which bypasses the tenant's signed rotations and so must leave a trace. It has no
receipt; the chain and the signed checkpoints cover it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from loravault.core.errors import DataLossError
from loravault.proto.federation import RoundManifest
from loravault.proto.manifest import ErasureManifest
from loravault.proto.statement import canonical_json

__all__ = ["ENTRY_KIND", "KEY_CHANGE_KIND", "ROUND_ENTRY_KIND", "ErasureRecord", "FederationRoundRecord",
           "KeyChangeRecord", "entry_kind", "parse_body", "parse_key_change", "parse_round_body"]

ENTRY_KIND = "erasure"
ROUND_ENTRY_KIND = "federation-round"
KEY_CHANGE_KIND = "key-change"


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


def parse_body(body: bytes) -> ErasureRecord:
    """The erasure a stored body holds; DataLossError when it is not exactly what `to_bytes` writes."""
    return _parse_record(body, ErasureRecord, kind=ENTRY_KIND, tuple_field="key_ids")


@dataclass(frozen=True)
class KeyChangeRecord:
    """An admin's change to a tenant's signing keys: what changed and the key set it left."""

    kind: str  # always KEY_CHANGE_KIND
    tenant: str
    action: str  # add-key | revoke-key | set-threshold
    key_id: str  # the key added or revoked; "" for set-threshold
    active_key_ids: tuple[str, ...]  # the active keys after the change, sorted
    threshold: int  # after the change
    committed_at: int  # Unix seconds (UTC)

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = asdict(self)
        data["active_key_ids"] = list(self.active_key_ids)
        return canonical_json(data)


def entry_kind(body: bytes) -> str:
    """The `kind` field of a stored body; DataLossError when the body is not a JSON object with one."""
    try:
        data = json.loads(body)
        kind = data["kind"] if isinstance(data, dict) else None
    except (ValueError, KeyError) as exc:
        raise DataLossError(f"audit entry body has no kind: {exc}") from exc
    if kind not in (ENTRY_KIND, ROUND_ENTRY_KIND, KEY_CHANGE_KIND):
        raise DataLossError(f"audit entry body has unknown kind {str(kind)[:32]!r}")
    return str(kind)


def parse_round_body(body: bytes) -> FederationRoundRecord:
    """The federation round a stored body holds; DataLossError when it is not exactly what `to_bytes` writes."""
    return _parse_record(body, FederationRoundRecord, kind=ROUND_ENTRY_KIND, tuple_field="key_ids")


def parse_key_change(body: bytes) -> KeyChangeRecord:
    """The key change a stored body holds; DataLossError when it is not exactly what `to_bytes` writes."""
    return _parse_record(body, KeyChangeRecord, kind=KEY_CHANGE_KIND, tuple_field="active_key_ids")


_Record = TypeVar("_Record", ErasureRecord, FederationRoundRecord, KeyChangeRecord)


def _parse_record(body: bytes, cls: type[_Record], *, kind: str, tuple_field: str) -> _Record:
    names = {f.name for f in fields(cls)}
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"fields are {sorted(data) if isinstance(data, dict) else type(data).__name__}")
        data[tuple_field] = tuple(data[tuple_field])
        record = cls(**data)
    except (ValueError, TypeError) as exc:
        raise DataLossError(f"audit entry body is not a {kind} record: {exc}") from exc
    if record.to_bytes() != bytes(body) or record.kind != kind:
        raise DataLossError("audit entry body is not in canonical form")
    return record
