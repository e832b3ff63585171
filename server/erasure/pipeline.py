"""The erasure pipeline: every step of DESIGN.md's erasure protocol, called in order from `submit`.

    check_limits -> check_signatures -> check_window -> (idempotency) -> receive the delta
    -> [adapter lock] check_binding -> check_tensors -> merge -> check_probe -> commit

Every step before `commit` only reads, so a refusal at any of them leaves head, blobs and log unchanged. The
delta is read only after its signatures verified (an unauthenticated caller never makes the server buffer
it) and lives in memory only.

    >>> pipeline = ErasurePipeline(vault=vault, audit=audit, base_fingerprint=fp, probe=runner, config=config)
    >>> result = pipeline.submit(header, chunks)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from loravault.core.errors import AlreadyExistsError, NotFoundError
from loravault.core.norms import frobenius_norm
from loravault.core.tensors import decode_tensors

from ..audit import AuditLog, StoredErasure
from ..events import PurgeEvents
from ..vault import Vault, VersionRecord
from .binding import check_binding
from .commit import commit
from .config import ErasureConfig
from .heads import Head, HeadCache
from .limits import check_limits, receive_delta
from .locks import AdapterLocks
from .merge import merge
from .probe import ProbeRunner, check_probe
from .signatures import VerifiedManifest, check_signatures, check_window
from .submission import ErasureHeader, ErasureResult
from .tensors import check_tensors

__all__ = ["ErasurePipeline"]

logger = logging.getLogger(__name__)


class ErasurePipeline:
    """Verifies, merges and commits signed erasure requests; one per server, shared by all RPC threads."""

    def __init__(
        self,
        *,
        vault: Vault,
        audit: AuditLog,
        base_fingerprint: str,
        probe: ProbeRunner | None,
        config: ErasureConfig,
        clock: Callable[[], float] = time.time,
        events: PurgeEvents | None = None,
    ) -> None:
        self._vault = vault
        self._audit = audit
        self._base_fingerprint = base_fingerprint
        self._probe = probe
        self._config = config
        self._clock = clock
        self._events = events  # told of every committed erasure, so caches of purged versions drop them at once
        self._locks = AdapterLocks(vault)
        self._heads = HeadCache(max_bytes=config.limits.head_cache_bytes)

    @property
    def audit(self) -> AuditLog:
        return self._audit

    def submit(self, header: ErasureHeader, chunks: Iterable[bytes]) -> ErasureResult:
        """Run the whole protocol for one request; see the module docstring for the order of the steps."""
        config, vault = self._config, self._vault
        adapter = vault.adapters.get_adapter(tenant=header.tenant, name=header.adapter)
        check_limits(header, schema=adapter.schema, limits=config.limits)
        verified = check_signatures(header, vault=vault)
        check_window(verified.manifest, now=self._clock(), checks=config.checks)
        if (replayed := self._replayed(verified)) is not None:
            return replayed
        delta_bytes = receive_delta(header, chunks, limits=config.limits)
        with self._locks.hold(tenant=header.tenant, adapter=header.adapter):
            if (replayed := self._replayed(verified)) is not None:  # a twin committed while we read
                return replayed
            manifest = verified.manifest
            adapter, maybe_head = vault.adapters.get_adapter_and_head(tenant=header.tenant, name=header.adapter)
            head = check_binding(manifest, adapter=adapter, head=maybe_head, base_fingerprint=self._base_fingerprint)
            current = self._head(header, head)
            delta = check_tensors(delta_bytes, manifest=manifest, schema=adapter.schema, head_norm=current.norm,
                                  checks=config.checks)
            merged = merge(manifest, schema=adapter.schema, head=current.tensors, delta=delta)
            check_probe(self._probe, label=manifest.label, schema=adapter.schema, head=current.tensors,
                        head_sha256=head.blob_sha256, merged=merged.tensors, config=config.probe)
            result = commit(verified, merged, vault=vault, audit=self._audit, now=self._clock())
            self._heads.put(merged.sha256, merged.as_head())
            if self._events is not None:
                self._events.adapter_purged(tenant=header.tenant, adapter=header.adapter, floor=result.version.number)
            return result

    def _head(self, header: ErasureHeader, head: VersionRecord) -> Head:
        """The head's tensors and norm, from the cache or read through the vault's verifying reader."""
        found = self._heads.get(head.blob_sha256)
        if found is None:
            tensors = decode_tensors(
                self._vault.adapters.read_version_blob(tenant=header.tenant, adapter=header.adapter, version=head.number))
            found = Head(tensors, frobenius_norm(tensors))
            self._heads.put(head.blob_sha256, found)
        return found

    def receipt(self, *, tenant: str, adapter: str, request_id: str) -> ErasureResult:
        """The stored result of a committed request; NotFoundError when this adapter has none by that id."""
        stored = self._audit.find(tenant=tenant, request_id=request_id)
        if stored is None or stored.adapter != adapter:
            raise NotFoundError(f"adapter {tenant}/{adapter} has no committed erasure with request id {request_id!r}")
        return self._result(stored)

    def _replayed(self, verified: VerifiedManifest) -> ErasureResult | None:
        """The stored result when this exact envelope already committed; AlreadyExistsError for another one."""
        manifest = verified.manifest
        stored = self._audit.find(tenant=manifest.tenant, request_id=manifest.request_id)
        if stored is None:
            return None
        if stored.manifest_hash != verified.manifest_hash:
            raise AlreadyExistsError(
                f"{manifest.label}: request id {manifest.request_id} was already used by another manifest "
                f"(audit index {stored.index}); sign a new request id")
        logger.info("%s: replay of a committed request, answering its stored receipt", manifest.label)
        return self._result(stored)

    def _result(self, stored: StoredErasure) -> ErasureResult:
        version = self._vault.adapters.get_version(tenant=stored.tenant, adapter=stored.adapter, version=stored.new_version)
        return ErasureResult(receipt=stored.receipt, version=version, log_index=stored.index, replayed=True)
