"""The blob-store interface the vault uses, and the one place that picks a backend from a location.

Two backends keep one contract: `blobs.BlobStore` (files in a folder, one process) and `s3blobs.S3BlobStore`
(an S3-compatible bucket that several replicas share). Both hash what they write, make a blob durable before
`finish` returns, pin a staged blob until it is committed or discarded, delete only what no version and no pin
uses, and verify a blob's digest when it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy import Engine

from .blobs import BlobReader, BlobStore, StagedBlob
from .pins import DatabasePins

__all__ = ["BlobBackend", "BlobSink", "open_blob_store"]


class BlobSink(Protocol):
    """A streaming writer of one blob (blobs.BlobWriter, s3blobs.S3BlobWriter): leaving the block aborts
    whatever `finish` has not staged."""

    def write(self, chunk: bytes | memoryview) -> None: ...
    def finish(self) -> StagedBlob: ...
    def abort(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class BlobBackend(Protocol):
    """What the Vault and fsck call on a blob store (see blobs.BlobStore for each method's guarantees)."""

    def path_for(self, sha256: str) -> PurePath: ...
    def new_writer(self, *, max_bytes: int) -> BlobSink: ...
    def exists(self, sha256: str) -> bool: ...
    def open(self, sha256: str) -> BlobReader: ...
    def read(self, sha256: str) -> bytes: ...
    def hash_file(self, sha256: str) -> str | None: ...
    def is_pinned(self, sha256: str) -> bool: ...
    def check_staged(self, blob: StagedBlob) -> None: ...
    def release(self, sha256: str) -> None: ...
    def delete_unreferenced(self, sha256s: Iterable[str], *, is_referenced: Callable[[str], bool]) -> list[str]: ...
    def stored_digests(self) -> list[str]: ...
    def stale_temps(self) -> list[str]: ...
    def remove_temp(self, name: str) -> None: ...
    def remove_crash_leftovers(self) -> int: ...
    def close(self) -> None: ...


def open_blob_store(location: str | None, *, data_dir: Path, engine: Engine, s3_endpoint: str | None) -> BlobBackend:
    """The store at `location`: None means files in `<data_dir>/blobs`; `s3://bucket/prefix` a bucket, reached
    at `s3_endpoint` (None: AWS itself) with credentials from the standard AWS environment and files."""
    if location is None:
        return BlobStore(data_dir / "blobs")
    from .s3blobs import S3BlobStore, parse_s3_url  # boto3 loads only for a vault that uses it

    bucket, prefix = parse_s3_url(location)
    return S3BlobStore(_s3_client(s3_endpoint), bucket=bucket, prefix=prefix, pins=DatabasePins(engine))


def _s3_client(endpoint: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32,
                    s3={"addressing_style": "path"} if endpoint else {})
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
