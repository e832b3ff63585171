"""Checking safetensors bytes against an adapter schema while they stream in, chunk by chunk.

The header (8-byte little-endian length, then JSON) is checked as soon as it has arrived, so a stream whose
tensor names, dtypes or shapes are wrong is refused before its data is read; the data section is then checked
for NaN and infinity one chunk at a time. Nothing is buffered beyond the header and one partial element.
Format: https://github.com/huggingface/safetensors#format.
"""

from __future__ import annotations

import math

import numpy as np

from loravault.proto.untrusted_json import parse_json

from .adapter_schema import AdapterSchema
from .errors import DeserializationError, InvalidArgumentError, MalformedEnvelopeError

__all__ = ["StreamingTensorCheck", "SAFETENSORS_DTYPES"]

SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
_MAX_HEADER = 16 << 20
# a float is NaN or infinite exactly when all its exponent bits are set: (unsigned view, exponent mask)
_EXPONENT_BITS: dict[str, tuple[np.dtype[np.unsignedinteger], int]] = {"float32": (np.dtype("<u4"), 0x7F800000), "float16": (np.dtype("<u2"), 0x7C00),
                  "bfloat16": (np.dtype("<u2"), 0x7F80)}


class StreamingTensorCheck:
    """Feed it the bytes of one upload in order; `finish()` confirms the stream was complete.

    Raises DeserializationError for bytes that are not safetensors, InvalidArgumentError for tensors that do not
    match the schema or hold non-finite values; after an error the object must be discarded.
    """

    def __init__(self, schema: AdapterSchema, *, what: str = "upload") -> None:
        self._schema = schema
        self._what = what
        self._bits, self._exponent = _EXPONENT_BITS[schema.dtype]
        self._itemsize = self._bits.itemsize
        self._head = bytearray()  # bytes until the header is complete
        self._data_start: int | None = None  # offset of the data section, once the header is parsed
        self._data_size = 0
        self._seen = 0  # bytes of the whole stream fed so far
        self._carry = b""  # a trailing partial element of the previous chunk
        self._spans: dict[str, tuple[int, int]] = {}  # tensor name -> (begin, end) in the data section

    @property
    def layout(self) -> tuple[int, dict[str, tuple[int, int]]] | None:
        """(offset of the data section, tensor name -> (begin, end) within it), once the header is parsed."""
        return None if self._data_start is None else (self._data_start, dict(self._spans))

    @property
    def expected_size(self) -> int | None:
        """The total stream length the header implies, once it has been parsed."""
        return None if self._data_start is None else self._data_start + self._data_size

    def feed(self, chunk: bytes) -> None:
        if self._data_start is None:
            self._head += chunk
            self._seen += len(chunk)
            if not self._try_header():
                return
            chunk = bytes(self._head[self._data_start :])
            self._head = bytearray()
        else:
            self._seen += len(chunk)
        expected = self.expected_size  # known by now: the header has been parsed
        if expected is not None and self._seen > expected:
            raise DeserializationError(f"{self._what}: more bytes than the safetensors header describes")
        self._check_data(chunk)

    def finish(self) -> None:
        if self._data_start is None or self._seen != self.expected_size or self._carry:
            raise DeserializationError(f"{self._what}: safetensors stream is incomplete ({self._seen} bytes)")

    def _try_header(self) -> bool:
        if len(self._head) < 8:
            return False
        length = int.from_bytes(self._head[:8], "little")
        if length > _MAX_HEADER:
            raise DeserializationError(f"{self._what}: safetensors header claims {length} bytes")
        if len(self._head) < 8 + length:
            return False
        try:
            header = parse_json(bytes(self._head[8 : 8 + length]), what="safetensors header", max_bytes=_MAX_HEADER)
        except MalformedEnvelopeError as exc:
            raise DeserializationError(f"{self._what}: {exc}") from exc
        if not isinstance(header, dict):
            raise DeserializationError(f"{self._what}: safetensors header is not a JSON object")
        self._data_size = self._check_header(header)
        self._data_start = 8 + length
        return True

    def _check_header(self, header: dict) -> int:
        """Names, dtype and shapes as the schema says, laid out back to back; returns the data section size."""
        header.pop("__metadata__", None)
        expected = {spec.name: spec.shape for spec in self._schema.tensors}
        if set(header) != set(expected):
            differing = sorted(set(header) ^ set(expected))[0]
            raise InvalidArgumentError(f"{self._what}: tensor {differing} is missing or not in the schema")
        for name, entry in header.items():
            if not isinstance(entry, dict):
                raise DeserializationError(f"{self._what}: header entry {name} is not an object")
            if entry.get("dtype") != SAFETENSORS_DTYPES[self._schema.dtype]:
                raise InvalidArgumentError(
                    f"{self._what} tensor {name} has dtype {entry.get('dtype')}, schema says {self._schema.dtype}")
            if tuple(entry.get("shape", ())) != expected[name]:
                raise InvalidArgumentError(
                    f"{self._what} tensor {name} has shape {tuple(entry.get('shape', ()))}, schema says {expected[name]}")
            begin, end = _offsets(entry, name, self._what)
            if end - begin != math.prod(expected[name]) * self._itemsize:
                raise DeserializationError(f"{self._what}: tensor {name} spans {end - begin} bytes, not its shape's")
            self._spans[name] = (begin, end)
        position = 0
        for begin, end in sorted(self._spans.values()):
            if begin != position:
                raise DeserializationError(f"{self._what}: tensor data is not laid out back to back")
            position = end
        return position

    def _check_data(self, chunk: bytes) -> None:
        """Check every whole element in place (no copy of the chunk), carrying a split element to the next."""
        view = memoryview(chunk)
        if self._carry:
            needed = self._itemsize - len(self._carry)
            self._carry += bytes(view[:needed])
            view = view[needed:]
            if len(self._carry) < self._itemsize:
                return
            self._refuse_non_finite(self._carry)
            self._carry = b""
        usable = len(view) - len(view) % self._itemsize
        self._carry = bytes(view[usable:])
        if usable:
            self._refuse_non_finite(view[:usable])

    def _refuse_non_finite(self, data: bytes | memoryview) -> None:
        bits = np.frombuffer(data, dtype=self._bits)
        if np.any((bits & self._exponent) == self._exponent):
            raise InvalidArgumentError(f"{self._what} has NaN or infinite values")


def _offsets(entry: dict, name: str, what: str) -> tuple[int, int]:
    offsets = entry.get("data_offsets")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise DeserializationError(f"{what}: tensor {name} has invalid data_offsets {offsets!r}")
    return offsets[0], offsets[1]
