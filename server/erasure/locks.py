"""Per-adapter locks: erasures of one adapter run binding to commit one at a time; other adapters never wait."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["AdapterLocks"]


class AdapterLocks:
    """One lock per (tenant, adapter), created on first use and kept (one small object per adapter)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    @contextmanager
    def hold(self, *, tenant: str, adapter: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((tenant, adapter), threading.Lock())
        with lock:
            yield
