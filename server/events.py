"""Purge events: how the parts that cache adapter bytes (the inference engine) learn at once that a version,
an adapter or a tenant is gone.

The server state owns one `PurgeEvents`; whoever commits a purge (the erasure pipeline, adapter and tenant
deletion) calls it after the commit, in the committing thread, and every subscribed listener runs before the
call returns. The vault never imports its listeners: they subscribe here. Listeners must be quick and
in-memory (mark, drop, notify); they are called in subscription order.

    >>> events = PurgeEvents()
    >>> events.subscribe(engine)
    >>> events.adapter_purged(tenant="acme", adapter="support", floor=4)
"""

from __future__ import annotations

import threading
from typing import Protocol

__all__ = ["PurgeEvents", "PurgeListener"]


class PurgeListener(Protocol):
    def adapter_purged(self, *, tenant: str, adapter: str, floor: int) -> None:
        """Every version below `floor` of tenant/adapter was purged (an erasure committed at `floor`)."""

    def adapter_deleted(self, *, tenant: str, adapter: str) -> None:
        """tenant/adapter and all its versions were deleted."""

    def tenant_deleted(self, *, tenant: str) -> None:
        """The tenant and everything it owned were deleted."""


class PurgeEvents:
    """A thread-safe list of listeners and the three notifications."""

    def __init__(self) -> None:
        self._listeners: list[PurgeListener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: PurgeListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def _snapshot(self) -> list[PurgeListener]:
        with self._lock:
            return list(self._listeners)

    def adapter_purged(self, *, tenant: str, adapter: str, floor: int) -> None:
        for listener in self._snapshot():
            listener.adapter_purged(tenant=tenant, adapter=adapter, floor=floor)

    def adapter_deleted(self, *, tenant: str, adapter: str) -> None:
        for listener in self._snapshot():
            listener.adapter_deleted(tenant=tenant, adapter=adapter)

    def tenant_deleted(self, *, tenant: str) -> None:
        for listener in self._snapshot():
            listener.tenant_deleted(tenant=tenant)
