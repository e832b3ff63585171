"""Receiving an adapter version from a stream: limits first, bytes to disk as they arrive, checks, then CAS.

Steps, in order, each its own function: `check_header` (sizes against the schema before a byte is buffered),
`stream_to_blob` (chunks to a temporary blob file, hashed as they come and refused the moment they pass the
declared size, while a StreamingTensorCheck holds the safetensors header to the schema and the values to being
finite), `check_blob` (length, and the digest the client sends in the trailer), the end of the contents check,
and the vault's compare-and-swap commit, which consumes the staged blob whatever happens. A failure at any step
leaves no version and no blob behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from loravault.core.adapter_schema import AdapterSchema
from loravault.core.errors import InvalidArgumentError, ResourceExhaustedError
from loravault.core.tensor_stream import StreamingTensorCheck
from loravault.proto.digests import is_sha256_hex

from .vault import StagedBlob

__all__ = ["UploadHeader", "check_adapter_bytes", "receive_version"]


@dataclass(frozen=True)
class UploadHeader:
    """What the client declares before sending bytes."""

    tenant: str
    adapter: str
    parent_version: int
    total_size: int


def receive_version(
    vault: Any,
    header: UploadHeader,
    chunks: Iterable[bytes],
    *,
    declared_digest: Callable[[], str | None],
    max_chunk_bytes: int,
    max_adapter_bytes: int,
) -> Any:
    """Store one uploaded version and move the head to it; returns the vault's VersionRecord.

    `declared_digest` is asked once the chunks are exhausted: the client sends the digest after the bytes.
    """
    check_adapter_bytes(header.total_size, limit=max_adapter_bytes, what=f"upload to {header.tenant}/{header.adapter}")
    record = vault.get_adapter(tenant=header.tenant, name=header.adapter)
    check_header(header, record.schema)
    contents = StreamingTensorCheck(record.schema, what=f"upload to {header.tenant}/{header.adapter}")
    with vault.new_blob_writer(max_bytes=header.total_size) as writer:
        stream_to_blob(writer, contents, chunks, max_chunk_bytes=max_chunk_bytes)
        staged = writer.finish()
    try:
        check_blob(header, staged, declared_digest())
        contents.finish()
    except BaseException:
        vault.discard_blob(staged)
        raise
    return vault.commit_version(
        tenant=header.tenant, adapter=header.adapter, parent_version=header.parent_version, blob=staged, kind="upload"
    )


def check_adapter_bytes(size: int, *, limit: int, what: str) -> None:
    """The server-wide cap on one adapter's bytes (ServerConfig.max_adapter_bytes), whatever its schema says."""
    if size > limit:
        raise ResourceExhaustedError(f"{what}: {size} bytes, more than this server's limit of {limit} per adapter")


def check_header(header: UploadHeader, schema: AdapterSchema) -> None:
    """Refuse a declared size the schema cannot produce, before reading the stream."""
    if header.total_size <= 0:
        raise InvalidArgumentError("upload declares 0 bytes: an adapter version cannot be empty")
    limit = schema.max_blob_bytes()
    if header.total_size > limit:
        raise ResourceExhaustedError(
            f"upload declares {header.total_size} bytes; the schema of {header.tenant}/{header.adapter} "
            f"allows at most {limit}"
        )


def stream_to_blob(
    writer: Any, contents: StreamingTensorCheck, chunks: Iterable[bytes], *, max_chunk_bytes: int
) -> None:
    """Check and write chunks as they arrive.

    The writer refuses bytes past the declared size (ResourceExhaustedError); the contents check refuses a
    header that does not match the schema, and non-finite values, as soon as they arrive.
    """
    for chunk in chunks:
        if len(chunk) > max_chunk_bytes:
            raise InvalidArgumentError(f"chunk of {len(chunk)} bytes exceeds the {max_chunk_bytes}-byte chunk limit")
        writer.write(chunk)
        contents.feed(chunk)


def check_blob(header: UploadHeader, staged: StagedBlob, declared: str | None) -> None:
    """The stream must have delivered exactly the declared bytes (the writer hashed them as they came)."""
    if staged.size != header.total_size:
        raise InvalidArgumentError(
            f"stream ended after {staged.size} of {header.total_size} declared bytes (truncated upload)"
        )
    if declared is None:
        raise InvalidArgumentError("upload stream ended without its trailer (truncated upload)")
    if not is_sha256_hex(declared):
        raise InvalidArgumentError("upload trailer sha256 must be 64 lowercase hex digits")
    if staged.sha256 != declared:
        raise InvalidArgumentError(f"upload digest is {staged.sha256[:12]}…, the trailer declared {declared[:12]}…")
