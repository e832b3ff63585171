"""Resolving a request's (tenant, adapter, version) to serving-ready weights: the database says which blob,
the cache or the vault's verifying reader supplies it.

The version is always looked up in the database, never in the cache: a purged version is refused even when
its bytes are still cached on this replica, and another replica's erasure is seen at the next request.
"""

from __future__ import annotations

import torch

from loravault.core.errors import FailedPreconditionError
from loravault.core.tensors import decode_tensors

from ..vault import Vault
from .adapters import ModelLayout, build_slot
from .cache import AdapterCache
from .requests import Target

__all__ = ["Resolver"]


class Resolver:
    def __init__(self, *, vault: Vault, cache: AdapterCache, layout: ModelLayout, device: torch.device,
                 dtype: torch.dtype) -> None:
        self._vault, self._cache, self._layout = vault, cache, layout
        self._device, self._dtype = device, dtype

    def resolve(self, *, tenant: str, adapter: str | None, version: int) -> Target:
        """The Target for tenant/adapter at `version` (0 = head), or the base alone when adapter is None.

        NotFoundError for an unknown adapter or version, FailedPreconditionError for a purged one (or bytes
        that do not fit the base), DataLossError when the stored blob no longer hashes right.
        """
        if adapter is None:
            return Target(tenant=tenant, adapter=None, version=0, slot=None)
        record = self._vault.adapters.get_version(tenant=tenant, adapter=adapter, version=version or None)
        if record.purged:
            raise FailedPreconditionError(
                f"adapter {tenant}/{adapter} v{record.number} is below the erasure floor and was purged; ask for "
                "the head (version 0) instead")
        owner = (tenant, adapter, record.number)
        slot = self._cache.get(record.blob_sha256, owner=owner)
        if slot is None:
            schema = self._vault.adapters.get_adapter(tenant=tenant, name=adapter).schema
            data = self._vault.adapters.read_version_blob(tenant=tenant, adapter=adapter, version=record.number)  # verified
            slot = build_slot(schema, decode_tensors(data), sha256=record.blob_sha256, layout=self._layout,
                              device=self._device, dtype=self._dtype)
            slot = self._cache.put(slot, owner=owner)
        return Target(tenant=tenant, adapter=adapter, version=record.number, slot=slot)
