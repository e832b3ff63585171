"""Step 1, `check_limits`: sizes are refused with RESOURCE_EXHAUSTED before anything beyond them is buffered.

The header's declared sizes are checked before a chunk is read; `receive_delta` then holds the stream to the
declared size, digest and chunk limit while it reads (server.declared_stream, as uploads and rounds are).
"""

from __future__ import annotations

from collections.abc import Iterable

from loravault.core.adapter_schema import AdapterSchema
from loravault.core.errors import InvalidArgumentError, ResourceExhaustedError
from loravault.proto.digests import is_sha256_hex

from ..declared_stream import read_declared
from .config import ErasureLimits
from .submission import ErasureHeader

__all__ = ["check_limits", "receive_delta"]



def check_limits(header: ErasureHeader, *, schema: AdapterSchema, limits: ErasureLimits) -> None:
    """Refuse a header whose envelope or declared delta is too large, before the delta is read.

    Raises ResourceExhaustedError (sizes), InvalidArgumentError (empty delta, malformed digest).
    """
    label = f"erasure of {header.tenant}/{header.adapter}"
    if len(header.envelope) > limits.max_envelope_bytes:
        raise ResourceExhaustedError(
            f"{label}: envelope is {len(header.envelope)} bytes, at most {limits.max_envelope_bytes} allowed")
    if header.delta_size <= 0:
        raise InvalidArgumentError(f"{label}: delta_size is 0; send the delta's safetensors bytes")
    bound = min(schema.max_blob_bytes(), limits.max_delta_bytes)
    if header.delta_size > bound:
        raise ResourceExhaustedError(
            f"{label}: delta_size {header.delta_size} bytes exceeds {bound}, the most the adapter's schema "
            "(or the server) allows")
    if not is_sha256_hex(header.delta_sha256):
        raise InvalidArgumentError(f"{label}: delta_sha256 must be 64 lowercase hex digits")


def receive_delta(header: ErasureHeader, chunks: Iterable[bytes], *, limits: ErasureLimits) -> bytes:
    """Read exactly `header.delta_size` bytes whose SHA-256 is `header.delta_sha256`.

    Raises ResourceExhaustedError on a chunk over the limit or bytes past the declared size (refused before
    they are kept), InvalidArgumentError on a truncated stream or a digest mismatch.
    """
    return read_declared(chunks, size=header.delta_size, sha256=header.delta_sha256,
                         max_chunk_bytes=limits.max_chunk_bytes, what=f"erasure of {header.tenant}/{header.adapter}",
                         declared_by="the header")
