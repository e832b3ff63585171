"""Adapter tensors as views of one received safetensors buffer: checked against the schema, never copied.

`decode_tensors` hands safetensors' parser a bytes object and gets back tensors that own copies of their
values: for a 64 MiB download that is one more full copy on the client. Here the buffer the download was
assembled in is checked with the same StreamingTensorCheck the server runs on uploads (header against the
schema, tensors back to back, every value finite) and each tensor is a `torch.frombuffer` view of its span.
"""

from __future__ import annotations

import math
import sys
from typing import cast

import torch

from .adapter_schema import AdapterSchema
from .tensor_stream import StreamingTensorCheck
from .tensors import decode_tensors

__all__ = ["tensors_from_buffer"]

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def tensors_from_buffer(
    buffer: bytearray, schema: AdapterSchema, *, what: str = "download"
) -> dict[str, torch.Tensor]:
    """The tensors of safetensors bytes in `buffer`, as views that share its memory (keep it unmodified).

    Raises DeserializationError for bytes that are not safetensors and InvalidArgumentError for tensors that do
    not match `schema` or hold non-finite values, as StreamingTensorCheck does.
    """
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
