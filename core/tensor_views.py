"""Adapter tensors as views of one received safetensors buffer: checked against the schema, never copied.

`decode_tensors` hands safetensors' parser a bytes object and gets back tensors that own copies of their
values: for a 64 MiB download that is one more full copy on the client. Here the buffer the download was
assembled in is checked with the same StreamingTensorCheck the server runs on uploads (header against the
schema, tensors back to back, every value finite) and each tensor is a `torch.frombuffer` view of its span.

`writable_buffer` makes that buffer. A fresh 64 MiB bytearray is 16,384 small pages that the kernel faults in
and zeroes one at a time as the chunks land (about 25 ms of a 100 ms download on two cores); an anonymous
mapping that asks for transparent huge pages faults in 2 MiB at a time (about 4 ms).
"""

from __future__ import annotations

import math
import mmap
import sys
from typing import cast

import torch

from .adapter_schema import AdapterSchema
from .tensor_stream import StreamingTensorCheck
from .tensors import decode_tensors

__all__ = ["Buffer", "anonymous_mapping", "tensors_from_buffer", "writable_buffer"]

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_HUGE_PAGE = 2 << 20

Buffer = bytearray | mmap.mmap


def writable_buffer(size: int) -> Buffer:
    """A zero-filled writable buffer of `size` bytes; from 2 MiB up, an anonymous mapping backed by transparent
    huge pages where the kernel offers them (Linux; elsewhere, or for small sizes, a bytearray).

    The mapping is unmapped when the last view of it (a tensor from `tensors_from_buffer` included) is gone.
    """
    if size < _HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return bytearray(size)
    return anonymous_mapping(size)


def anonymous_mapping(size: int) -> mmap.mmap:
    """A zero-filled, page-aligned anonymous mapping of `size` bytes that asks for transparent huge pages where
    the kernel offers them (small pages otherwise). The server's O_DIRECT blocks need the alignment too."""
    mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            mapping.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # transparent huge pages disabled: small pages still work
            pass
    return mapping


def tensors_from_buffer(
    buffer: Buffer, schema: AdapterSchema, *, what: str = "download", fed: StreamingTensorCheck | None = None
) -> dict[str, torch.Tensor]:
    """The tensors of safetensors bytes in `buffer`, as views that share its memory (keep it unmodified).

    Raises DeserializationError for bytes that are not safetensors and InvalidArgumentError for tensors that do
    not match `schema` or hold non-finite values, as StreamingTensorCheck does. `fed`: a check (of `schema`)
    that was already fed every byte of `buffer` in order, as they arrived, so they are not read a second time.
    """
    check = fed
    if check is None:
        check = StreamingTensorCheck(schema, what=what)
        view = memoryview(buffer)
        header_end = 8 + int.from_bytes(view[:8], "little") if len(view) >= 8 else len(view)
        check.feed(view[: min(header_end, len(view))])  # NOTE: fed apart, so the check copies the header only
        check.feed(view[min(header_end, len(view)) :])
    check.finish()
    if sys.byteorder != "little":  # safetensors is little-endian; frombuffer reads native order
        return decode_tensors(bytes(buffer))
    start, spans = cast(tuple[int, dict[str, tuple[int, int]]], check.layout)  # finish() passed: header parsed
    dtype = _TORCH_DTYPES[schema.dtype]
    return {spec.name: torch.frombuffer(buffer, dtype=dtype, count=math.prod(spec.shape),
                                        offset=start + spans[spec.name][0]).view(spec.shape)
            for spec in schema.tensors}
