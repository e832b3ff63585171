"""Decoded adapter heads kept in memory by blob hash, so a chain of erasures does not re-read and re-hash the
head it just wrote. Keyed by the blob's SHA-256, so a new version can never hit a stale entry; entries are
either read through the vault's verifying reader or the merge result whose hash was checked, and nobody
mutates them (the merge builds new tensors). Bounded by bytes, least recently used out first."""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

__all__ = ["HeadCache"]


class HeadCache:
    """An LRU of {blob sha256: tensors} holding at most `max_bytes` of tensor data."""

    def __init__(self, *, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, sha256: str) -> dict[str, torch.Tensor] | None:
        with self._lock:
            found = self._entries.get(sha256)
            if found is not None:
                self._entries.move_to_end(sha256)
            return found

    def put(self, sha256: str, tensors: dict[str, torch.Tensor]) -> None:
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        if size > self._max_bytes:
            return
        with self._lock:
            if sha256 in self._entries:
                return
            self._entries[sha256] = tensors
            self._bytes += size
            while self._bytes > self._max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= sum(t.numel() * t.element_size() for t in dropped.values())
