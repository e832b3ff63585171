"""Receiving an adapter version from a stream: limits first, bytes to disk as they arrive, checks, then CAS.

Steps, in order, each its own function: `check_header` (sizes against the schema before a byte is buffered),
`stream_to_blob` (chunks to a temporary blob file, hashed as they come and held to the chunk bound and the
declared size by server.declared_stream, while a StreamingTensorCheck holds the safetensors header to the
schema and the values to being finite), `check_blob` (the digest the client sends in the trailer), the end of
the contents check,
and the vault's compare-and-swap commit, which consumes the staged blob whatever happens. A failure at any step
leaves no version and no blob behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from loravault.core.adapter_schema import AdapterSchema
from loravault.core.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError, ResourceExhaustedError
from loravault.core.tensor_stream import StreamingTensorCheck
from loravault.proto.digests import is_sha256_hex

from .declared_stream import bounded_chunks, check_digest
from .vault import StagedBlob, Vault, VersionRecord
from .vault.blob_backend import BlobSink

__all__ = ["UploadHeader", "check_adapter_bytes", "receive_version"]


@dataclass(frozen=True)
class UploadHeader:
    """What the client declares before sending bytes."""

    tenant: str
    adapter: str
    parent_version: int
    total_size: int
    create: AdapterSchema | None = None  # a first upload's schema: the adapter is created with the version


def receive_version(
    vault: Vault,
    header: UploadHeader,
    chunks: Iterable[bytes],
    *,
    declared_digest: Callable[[], str | None],
    max_chunk_bytes: int,
    max_adapter_bytes: int,
) -> VersionRecord:
    """Store one uploaded version and move the head to it; returns the vault's VersionRecord.

    `declared_digest` is asked once the chunks are exhausted: the client sends the digest after the bytes.
    """
    check_adapter_bytes(header.total_size, limit=max_adapter_bytes, what=f"upload to {header.tenant}/{header.adapter}")
    schema = upload_schema(vault, header)
    check_header(header, schema)
    contents = StreamingTensorCheck(schema, what=f"upload to {header.tenant}/{header.adapter}")
    with vault.adapters.new_blob_writer(max_bytes=header.total_size) as writer:
        stream_to_blob(writer, contents, chunks, header=header, max_chunk_bytes=max_chunk_bytes)
        staged = writer.finish()
    try:
        check_blob(header, staged, declared_digest())
        contents.finish()
    except BaseException:
        vault.adapters.discard_blob(staged)
        raise
    return vault.adapters.commit_version(
        tenant=header.tenant, adapter=header.adapter, parent_version=header.parent_version, blob=staged, kind="upload",
        create=header.create,
    )


def upload_schema(vault: Vault, header: UploadHeader) -> AdapterSchema:
    """The schema the bytes must match: the adapter's, or for a first upload that creates it, the header's
    (the vault re-checks both inside the commit's transaction)."""
    try:
        record = vault.adapters.get_adapter(tenant=header.tenant, name=header.adapter)
    except NotFoundError:
        if header.create is None:
            raise
        if header.parent_version != 0:
            raise InvalidArgumentError(
                f"an upload that creates {header.tenant}/{header.adapter} must build on version 0, "
                f"not {header.parent_version}") from None
        return header.create
    if header.create is not None and not record.schema.describes_the_same_adapter(header.create):
        raise FailedPreconditionError(
            f"adapter {header.tenant}/{header.adapter} exists with another schema than this upload's")
    return record.schema


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
    writer: BlobSink, contents: StreamingTensorCheck, chunks: Iterable[bytes], *, header: UploadHeader,
    max_chunk_bytes: int
) -> None:
    """Check and write chunks as they arrive.

    A chunk over the bound or bytes past the declared size are ResourceExhaustedError, a stream that ends short
    is InvalidArgumentError (server.declared_stream); the contents check refuses a header that does not match
    the schema, and non-finite values, as soon as they arrive.
    """
    what = f"upload to {header.tenant}/{header.adapter}"
    for chunk in bounded_chunks(chunks, size=header.total_size, max_chunk_bytes=max_chunk_bytes, what=what):
        writer.write(chunk)
        contents.feed(chunk)


def check_blob(header: UploadHeader, staged: StagedBlob, declared: str | None) -> None:
    """The trailer must declare the digest of the bytes (the writer hashed them as they came)."""
    if declared is None:
        raise InvalidArgumentError("upload stream ended without its trailer (truncated upload)")
    if not is_sha256_hex(declared):
        raise InvalidArgumentError("upload trailer sha256 must be 64 lowercase hex digits")
    check_digest(staged.sha256, declared=declared, declared_by="the trailer",
                 what=f"upload to {header.tenant}/{header.adapter}")
