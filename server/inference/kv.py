"""The KV cache: one preallocated row per running sequence, in every layer.

A sequence owns one row from admission to its end; its keys and values for positions 0..length-1 live in
`keys[layer][row, :, :length]`. Rows are handed out lowest first, so the running rows stay packed at the
front and a decode step attends over one slice `[:hi]` without copying. Freeing a row is O(1): the next owner
overwrites it from position 0 during its prefill.
"""

from __future__ import annotations

import heapq

import torch

from loravault.core.errors import ResourceExhaustedError

__all__ = ["KVCache"]


class KVCache:
    """Owned by the engine thread; not thread-safe on purpose (one writer)."""

    def __init__(self, *, n_layers: int, rows: int, n_kv_heads: int, max_len: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype) -> None:
        shape = (rows, n_kv_heads, max_len, head_dim)  # (S, KV, L, hd)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.max_len = max_len
        self._free = list(range(rows))
        heapq.heapify(self._free)

    def allocate(self) -> int:
        if not self._free:
            raise ResourceExhaustedError("every KV-cache row is in use")
        return heapq.heappop(self._free)

    def release(self, row: int) -> None:
        heapq.heappush(self._free, row)

    @property
    def free_rows(self) -> int:
        return len(self._free)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))
