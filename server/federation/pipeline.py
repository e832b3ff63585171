"""The federation-round pipeline: a signed round manifest and its aggregate, checked and committed in order.

    check_limits -> check_signatures -> check_window -> (idempotency) -> receive the aggregate
    -> [adapter lock] check_binding -> check_aggregate -> commit

The steps are the erasure pipeline's wherever the rule is the same: signatures against the tenant's active
keys and threshold, the time window (`check_window`),
the binding of base, parent version (compare-and-swap: AbortedError when the head moved) and parent hash
(`check_binding`), and per-tensor finiteness (`finite_frobenius_norm`). Every step before `commit` only reads,
so a refusal leaves head, blobs and log unchanged. The commit writes the blob, the version (kind
federation-round, its manifest hash) and the audit entry, which carries the signed manifest, in one
transaction, and answers with the server-signed receipt.

NOTE: the aggregate is a whole adapter, not a delta: there is no norm bound and no merge. The probe check is
not run on rounds (a federation's adapter may move far from its init by design).

    >>> pipeline = RoundPipeline(vault=vault, audit=audit, base_fingerprint=fp)
    >>> result = pipeline.submit(header, chunks)
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from loravault.core.adapter_schema import AdapterSchema
from loravault.core.errors import AlreadyExistsError, InvalidArgumentError, ResourceExhaustedError
from loravault.core.norms import finite_frobenius_norm
from loravault.core.tensors import decode_tensors
from loravault.proto.federation import RoundManifest, SignedRound, verify_round_manifest

from ..audit import Appended, AuditLog, FederationRoundRecord
from ..declared_stream import read_declared
from ..erasure.binding import check_binding
from ..erasure.config import ErasureChecks, ErasureLimits
from ..erasure.locks import AdapterLocks
from ..erasure.signatures import check_window
from ..vault import Vault, VersionRecord

__all__ = ["RoundHeader", "RoundPipeline", "RoundResult", "RoundProvenance"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundHeader:
    """The first message of Federation.CommitRound, with the tenant resolved from the caller's token."""

    tenant: str
    adapter: str
    envelope: bytes
    aggregate_size: int
    aggregate_sha256: str


@dataclass(frozen=True)
class RoundResult:
    receipt: bytes  # server-signed DSSE envelope
    version: VersionRecord
    log_index: int
    replayed: bool


@dataclass(frozen=True)
class RoundProvenance:
    version: int
    manifest_hash: str
    envelope: bytes


@dataclass(frozen=True)
class _Verified:
    manifest: RoundManifest
    manifest_hash: str
    key_ids: tuple[str, ...]


class RoundPipeline:
    """Verifies and commits signed federation rounds; one per server, shared by all RPC threads."""

    def __init__(self, *, vault: Vault, audit: AuditLog, base_fingerprint: str,
                 limits: ErasureLimits = ErasureLimits(), checks: ErasureChecks = ErasureChecks(),
                 clock: Callable[[], float] = time.time) -> None:
        self._vault, self._audit, self._base_fingerprint = vault, audit, base_fingerprint
        self._limits, self._checks, self._clock = limits, checks, clock
        self._locks = AdapterLocks()

    def submit(self, header: RoundHeader, chunks: Iterable[bytes]) -> RoundResult:
        """Run every step for one round; see the module docstring for their order."""
        vault = self._vault
        adapter = vault.adapters.get_adapter(tenant=header.tenant, name=header.adapter)
        self._check_limits(header, bound=adapter.schema.max_blob_bytes())
        verified = self._check_signatures(header)
        check_window(verified.manifest, now=self._clock(), checks=self._checks)
        if (replayed := self._replayed(verified)) is not None:
            return replayed
        data = self._receive(header, chunks)
        with self._locks.hold(tenant=header.tenant, adapter=header.adapter):
            if (replayed := self._replayed(verified)) is not None:
                return replayed
            adapter, head = vault.adapters.get_adapter_and_head(tenant=header.tenant, name=header.adapter)
            check_binding(verified.manifest, adapter=adapter, head=head, base_fingerprint=self._base_fingerprint)
            _check_aggregate(data, manifest=verified.manifest, schema=adapter.schema)
            return self._commit(verified, header, data)

    def rounds(self, *, tenant: str, adapter: str, after: int = 0, limit: int | None = None) -> list[RoundProvenance]:
        """The signed manifests of the adapter's federation-round versions above `after`, oldest first."""
        found = [v for v in self._vault.adapters.list_versions(tenant=tenant, adapter=adapter, after=after, limit=limit)
                 if v.kind == "federation-round" and v.manifest_hash]
        records = self._audit.federation_rounds(tenant=tenant, adapter=adapter,
                                                manifest_hashes={v.manifest_hash for v in found if v.manifest_hash})
        return [RoundProvenance(v.number, v.manifest_hash, records[v.manifest_hash].envelope.encode("ascii"))
                for v in found if v.manifest_hash in records]

    def _check_limits(self, header: RoundHeader, *, bound: int) -> None:
        label = f"round of {header.tenant}/{header.adapter}"
        if len(header.envelope) > self._limits.max_envelope_bytes:
            raise ResourceExhaustedError(f"{label}: envelope is {len(header.envelope)} bytes, at most "
                                         f"{self._limits.max_envelope_bytes} allowed")
        if header.aggregate_size <= 0:
            raise InvalidArgumentError(f"{label}: aggregate_size is 0; send the aggregate's safetensors bytes")
        if header.aggregate_size > bound:
            raise ResourceExhaustedError(f"{label}: aggregate_size {header.aggregate_size} exceeds {bound}, "
                                         "the most the adapter's schema allows")

    def _check_signatures(self, header: RoundHeader) -> _Verified:
        """The tenant's active keys at its threshold; the header's digest must be the signed aggregate hash."""
        policy = self._vault.credentials.signing_policy(tenant=header.tenant)
        signed: SignedRound = verify_round_manifest(
            header.envelope, keys=policy.active_public_keys, threshold=policy.threshold, tenant=header.tenant,
            adapter=header.adapter)
        if header.aggregate_sha256 != signed.manifest.aggregate_hash:
            raise InvalidArgumentError(f"{signed.manifest.label}: the header announces aggregate "
                                       f"{header.aggregate_sha256[:12]}…, the manifest signs "
                                       f"{signed.manifest.aggregate_hash[:12]}…")
        return _Verified(signed.manifest, hashlib.sha256(header.envelope).hexdigest(), signed.key_ids)

    def _receive(self, header: RoundHeader, chunks: Iterable[bytes]) -> bytes:
        """Exactly aggregate_size bytes hashing to the signed aggregate hash, chunk by bounded chunk."""
        return read_declared(chunks, size=header.aggregate_size, sha256=header.aggregate_sha256,
                             max_chunk_bytes=self._limits.max_chunk_bytes,
                             what=f"round of {header.tenant}/{header.adapter}", declared_by="the signed manifest")

    def _replayed(self, verified: _Verified) -> RoundResult | None:
        manifest = verified.manifest
        stored = self._audit.find(tenant=manifest.tenant, request_id=manifest.request_id)
        if stored is None:
            return None
        if stored.manifest_hash != verified.manifest_hash:
            raise AlreadyExistsError(f"{manifest.label}: request id {manifest.request_id} was already used by "
                                     f"another manifest (audit index {stored.index}); sign a new request id")
        version = self._vault.adapters.get_version(tenant=stored.tenant, adapter=stored.adapter, version=stored.new_version)
        return RoundResult(receipt=stored.receipt, version=version, log_index=stored.index, replayed=True)

    def _commit(self, verified: _Verified, header: RoundHeader, data: bytes) -> RoundResult:
        """Blob, version and audit entry in one transaction; the head moves by compare-and-swap on the parent."""
        manifest = verified.manifest
        staged = self._vault.adapters.stage_blob(data, expected_sha256=manifest.aggregate_hash)
        appended: list[Appended] = []

        def in_transaction(conn: Connection, version: VersionRecord) -> None:
            record = FederationRoundRecord.of(manifest, envelope=header.envelope, manifest_hash=verified.manifest_hash,
                                              key_ids=verified.key_ids, committed_at=int(self._clock()))
            appended.append(self._audit.append(conn, record))

        try:
            version = self._vault.adapters.commit_version(
                tenant=manifest.tenant, adapter=manifest.adapter, parent_version=manifest.parent_version,
                blob=staged, kind="federation-round", manifest_hash=verified.manifest_hash,
                in_transaction=in_transaction)
        except IntegrityError as exc:
            raise AlreadyExistsError(f"{manifest.label}: request id {manifest.request_id} was taken meanwhile") from exc
        logger.info("%s committed at audit index %d", manifest.label, appended[0].entry.index)
        return RoundResult(receipt=appended[0].receipt, version=version, log_index=appended[0].entry.index,
                           replayed=False)


def _check_aggregate(data: bytes, *, manifest: RoundManifest, schema: AdapterSchema) -> None:
    """The aggregate parses as the schema's tensors in float32, every value finite (InvalidArgumentError)."""
    what = f"{manifest.label} aggregate"
    tensors = decode_tensors(data)
    dataclasses.replace(schema, dtype="float32").check_tensors(tensors, what=what, finite=False)
    _, nonfinite = finite_frobenius_norm(sorted(tensors.items()))
    if nonfinite is not None:
        raise InvalidArgumentError(f"{what} tensor {nonfinite} has NaN or infinite values")
