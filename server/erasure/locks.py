"""Per-adapter locks: erasures of one adapter run binding to commit one at a time, across every replica of the
deployment; other adapters never wait.

Two layers: an in-process lock per adapter (threads of one server queue here, without each taking a database
connection), then the vault's database lock for the adapter (Vault.hold_adapter_lock: a PostgreSQL advisory
lock, so a second replica waits too). The compare-and-swap on the head stays the final word; the lock makes
the loser of a race across replicas see the winner's commit (a replayed receipt, or ABORTED) instead of
merging against a stale head.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..vault import Vault

__all__ = ["AdapterLocks"]


class AdapterLocks:
    """One lock per (tenant, adapter), created on first use and kept (one small object per adapter).

    `vault` provides `hold_adapter_lock(tenant=, adapter=)`; None keeps the locks in this process only.
    """

    def __init__(self, vault: Vault | None = None) -> None:
        self._vault = vault
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    @contextmanager
    def hold(self, *, tenant: str, adapter: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((tenant, adapter), threading.Lock())
        with lock:
            if self._vault is None:
                yield
                return
            with self._vault.adapters.hold_adapter_lock(tenant=tenant, adapter=adapter):
                yield
