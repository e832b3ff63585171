"""Reading a byte stream held to its declared size, its declared digest and the chunk bound, as it arrives.

Uploads, erasure deltas and federation rounds all declare their size (and digest) before their bytes, and all
hold the stream to it the same way, with the same codes:

- a chunk longer than the chunk bound, or one that would carry the stream past its declared size, is refused
  before it is kept: RESOURCE_EXHAUSTED (a size limit);
- a stream that ends short of its declared size: INVALID_ARGUMENT (truncated);
- bytes that do not hash to the declared digest: INVALID_ARGUMENT.

`bounded_chunks` is the loop, for a caller that writes the chunks somewhere as they come (the upload's blob
writer, which hashes what it writes); `read_declared` is the loop that also keeps and hashes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from loravault.core.errors import InvalidArgumentError, ResourceExhaustedError

__all__ = ["bounded_chunks", "check_digest", "read_declared"]

Chunk = bytes | memoryview


def bounded_chunks(chunks: Iterable[Chunk], *, size: int, max_chunk_bytes: int, what: str) -> Iterator[Chunk]:
    """Yield `chunks` in order, each checked before it is yielded; at their end, require exactly `size` bytes.

    Raises:
        ResourceExhaustedError: a chunk over `max_chunk_bytes`, or bytes past `size`.
        InvalidArgumentError: the chunks ended before `size` bytes (truncated).
    """
    received = 0
    for chunk in chunks:
        if len(chunk) > max_chunk_bytes:
            raise ResourceExhaustedError(
                f"{what}: chunk of {len(chunk)} bytes exceeds the {max_chunk_bytes}-byte chunk limit")
        received += len(chunk)
        if received > size:
            raise ResourceExhaustedError(f"{what}: stream carries more than the {size} bytes it declared")
        yield chunk
    if received != size:
        raise InvalidArgumentError(f"{what}: stream ended after {received} of {size} declared bytes (truncated)")


def check_digest(actual: str, *, declared: str, declared_by: str, what: str) -> None:
    """Raises InvalidArgumentError when the bytes' SHA-256 `actual` is not the `declared` one."""
    if actual != declared:
        raise InvalidArgumentError(
            f"{what}: the bytes' digest is {actual[:12]}…, {declared_by} declared {declared[:12]}…")


def read_declared(
    chunks: Iterable[Chunk], *, size: int, sha256: str, max_chunk_bytes: int, what: str, declared_by: str
) -> bytes:
    """Exactly `size` bytes hashing to `sha256`, read chunk by bounded chunk (errors: see `bounded_chunks`,
    `check_digest`)."""
    parts: list[Chunk] = []
    digest = hashlib.sha256()
    for chunk in bounded_chunks(chunks, size=size, max_chunk_bytes=max_chunk_bytes, what=what):
        parts.append(chunk)
        digest.update(chunk)
    check_digest(digest.hexdigest(), declared=sha256, declared_by=declared_by, what=what)
    return b"".join(parts)
