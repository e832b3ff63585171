"""Decoded adapter heads kept in memory by blob hash, so a chain of erasures does not re-read, re-hash or
re-measure the head it just wrote. Keyed by the blob's SHA-256, so a new version can never hit a stale entry;
entries are either read through the vault's verifying reader or the merge result whose hash was checked, and
nobody mutates them (the merge builds new tensors). Bounded by bytes, least recently used out first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

__all__ = ["Head", "HeadCache"]


@dataclass(frozen=True)
class Head:
    """A head's tensors and their Frobenius norm over all tensors (the norm bound's denominator)."""

    tensors: dict[str, torch.Tensor]
    norm: float

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


class HeadCache:
    """An LRU of {blob sha256: Head} holding at most `max_bytes` of tensor data."""

    def __init__(self, *, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, Head] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, sha256: str) -> Head | None:
        with self._lock:
            found = self._entries.get(sha256)
            if found is not None:
                self._entries.move_to_end(sha256)
            return found

    def put(self, sha256: str, head: Head) -> None:
        size = head.nbytes
        if size > self._max_bytes:
            return
        with self._lock:
            if sha256 in self._entries:
                return
            self._entries[sha256] = head
            self._bytes += size
            while self._bytes > self._max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes
