"""Where each tensor sits in an adapter's canonical float32 safetensors bytes, known before any value is.

Why: the server hashes and stores the merged adapter as `canonical_float32` bytes. Asking safetensors to
serialize the sum costs a full copy of the adapter (about 46 ms at 10M parameters on these machines) after the
sum itself was written once. The layout depends on names and shapes alone, so the merge can write its sum
straight into views of the final buffer instead.

The bytes are those of `core.tensors.canonical_float32` (a test holds the two equal): an 8-byte little-endian
header length, a compact JSON header with PEFT's `{"format": "pt"}` metadata first and the tensors in name
order, padded with spaces to a multiple of 8, then the tensors' float32 data back to back in that same order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .errors import InvalidArgumentError

__all__ = ["CanonicalLayout"]

_METADATA = {"format": "pt"}
_FLOAT32_BYTES = 4


@dataclass(frozen=True)
class CanonicalLayout:
    """The header bytes and each tensor's byte span in the canonical float32 encoding of one adapter."""

    header: bytes  # length prefix, JSON and padding: everything before the first tensor's data
    spans: dict[str, tuple[int, int]]  # name -> (start, end) byte offsets from the start of the whole buffer
    shapes: dict[str, tuple[int, ...]]

    @property
    def total_bytes(self) -> int:
        return len(self.header) + sum(end - start for start, end in self.spans.values())

    @classmethod
    def of(cls, tensors: Iterable[tuple[str, tuple[int, ...]]]) -> CanonicalLayout:
        """The layout for (name, shape) pairs, in any order."""
        shapes = dict(tensors)
        if not shapes:
            raise InvalidArgumentError("an adapter layout needs at least one tensor")
        entries: dict[str, object] = {"__metadata__": _METADATA}
        relative: dict[str, tuple[int, int]] = {}
        position = 0
        for name in sorted(shapes):
            size = math.prod(shapes[name]) * _FLOAT32_BYTES
            relative[name] = (position, position + size)
            entries[name] = {"dtype": "F32", "shape": list(shapes[name]), "data_offsets": [position, position + size]}
            position += size
        text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        text += b" " * (-len(text) % 8)
        header = len(text).to_bytes(8, "little") + text
        spans = {name: (len(header) + start, len(header) + end) for name, (start, end) in relative.items()}
        return cls(header=header, spans=spans, shapes=shapes)

    def allocate(self) -> tuple[memoryview, dict[str, torch.Tensor]]:
        """A buffer holding the header, and float32 tensors that are views of their spans in it.

        Writing a tensor's values into its view (for example `torch.add(a, b, out=view)`) writes the canonical
        bytes; the buffer is complete once every view is filled. The memory is not zeroed first (zeroing 40 MB
        costs about as much as the merge's addition), so every view must be written before the buffer is read.
        """
        storage = torch.empty(self.total_bytes, dtype=torch.uint8)
        buffer = storage.numpy().data  # a memoryview; keeps `storage` alive
        buffer[: len(self.header)] = self.header
        views = {name: storage[start:end].view(torch.float32).view(self.shapes[name])
                 for name, (start, end) in self.spans.items()}
        return buffer, views
