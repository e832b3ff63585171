"""The adapter cache: serving-ready adapters in an LRU with a byte budget, keyed by blob hash.

Keying by the SHA-256 of the stored bytes means a new version (an erasure, an upload, a rollback) can never hit
a stale entry, and two tenants holding identical bytes share one entry. Each entry records its owners, the
(tenant, adapter, version) that resolved to it; an erasure, an adapter deletion or a tenant deletion removes
owners, and an entry left without owners is dropped at once. Entries that sequences still hold stay alive
through those sequences' references only; the budget counts what the cache itself keeps.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from .adapters import AdapterSlot, Owner

__all__ = ["AdapterCache"]


class AdapterCache:
    """Thread-safe; its lock guards only the dictionary, never a load or a model computation."""

    def __init__(self, *, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._entries: OrderedDict[str, AdapterSlot] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha256: str, *, owner: Owner) -> AdapterSlot | None:
        """The entry for these bytes (now most recently used, with `owner` recorded), or None."""
        with self._lock:
            slot = self._entries.get(sha256)
            if slot is not None:
                self._entries.move_to_end(sha256)
                slot.owners.add(owner)
            return slot

    def put(self, slot: AdapterSlot, *, owner: Owner) -> AdapterSlot:
        """Insert `slot` (or return the entry a concurrent loader inserted first), evicting LRU past the budget."""
        with self._lock:
            found = self._entries.get(slot.blob_sha256)
            if found is not None:
                found.owners.add(owner)
                self._entries.move_to_end(slot.blob_sha256)
                return found
            slot.owners.add(owner)
            self._entries[slot.blob_sha256] = slot
            while self._bytes() > self._budget and len(self._entries) > 1:
                self._entries.popitem(last=False)
            return slot

    def drop_owners(self, matches: Callable[[Owner], bool]) -> list[str]:
        """Forget every owner that `matches`; drop the entries left without owners and return their hashes."""
        with self._lock:
            dropped = []
            for sha256, slot in list(self._entries.items()):
                slot.owners = {owner for owner in slot.owners if not matches(owner)}
                if not slot.owners:
                    del self._entries[sha256]
                    dropped.append(sha256)
            return dropped

    def contains(self, sha256: str) -> bool:
        with self._lock:
            return sha256 in self._entries

    def owners(self) -> set[Owner]:
        with self._lock:
            return {owner for slot in self._entries.values() for owner in slot.owners}

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _bytes(self) -> int:
        return sum(slot.nbytes for slot in self._entries.values())
