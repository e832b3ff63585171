"""Content-addressed blobs in an S3-compatible bucket: `<prefix>/blobs/ab/abcdef...`, streamed, read back verified.

The same contract as the file store (blobs.BlobStore), for several replicas sharing one bucket:
- A blob smaller than one part is hashed while it streams in and sent with one PUT to its final key; a larger
  one goes up as a multipart upload to a temporary key (`<prefix>/tmp/...`), one part in memory at a time,
  and is copied inside the bucket to its final key once its digest is known. Only a PUT or copy the bucket
  acknowledged counts: the vault commits metadata after this returns, so a committed version's object is
  durable. Every PUT carries our SHA-256 (ChecksumSHA256), so a bucket that checks it (S3, MinIO) refuses
  bytes that do not hash to it; where one does not, the verifying read still does.
- Pins on staged blobs live in the database (pins.DatabasePins), and deleting an object re-checks pins and
  references under the digest's database lock: a purge on one replica never deletes a blob another is about
  to commit.
- Reads hash what they return and raise DataLossError at the end on a mismatch, as the file store does.
Error messages never name the bucket or the backend: clients see the vault's words only.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any

from loravault.core import (
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from loravault.proto.digests import is_sha256_hex

from .blobs import BlobReader, StagedBlob, check_sha256
from .pins import DatabasePins

__all__ = ["PART_BYTES", "S3BlobStore", "S3BlobWriter", "parse_s3_url"]

log = logging.getLogger(__name__)

PART_BYTES = 8 << 20  # multipart part size (S3's minimum is 5 MiB); also the largest blob sent with one PUT
STALE_TEMP_S = 3600  # a temporary object or unfinished upload older than this belongs to a dead writer
_READ_CHUNK = 1 << 20
# one CopyObject copies at most 5 GiB; above this the copy to the final key goes in parts (UploadPartCopy)
COPY_IN_ONE_CALL = 4 << 30
_COPY_PART_BYTES = 512 << 20
_MISSING = {"NoSuchKey", "404", "NotFound"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix"); InvalidArgumentError for anything else."""
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(/[A-Za-z0-9._\-/]*)?", url or "")
    if match is None:
        raise InvalidArgumentError(f"blob location {url!r} is not s3://bucket[/prefix] (bucket: 3-63 of a-z 0-9 . -)")
    return match.group(1), (match.group(2) or "").strip("/")


def _copy_config() -> Any:
    """boto3's managed copy: one CopyObject up to COPY_IN_ONE_CALL, a multipart copy above it."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=COPY_IN_ONE_CALL,
                          multipart_chunksize=min(_COPY_PART_BYTES, max(COPY_IN_ONE_CALL, 5 << 20)))


def _checksum(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class _Body:
    """A botocore StreamingBody with file semantics for BlobReader: read(-1) reads the rest."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, size: int = -1) -> bytes:
        return bytes(self._body.read(None if size < 0 else size))

    def close(self) -> None:
        self._body.close()


class S3BlobReader(BlobReader):
    """BlobReader over an object's body: hashes what it hands out, DataLossError at the end on a mismatch."""

    def __init__(self, body: Any, *, sha256: str) -> None:  # noqa: D107 (no file to open: the body is given)
        self.sha256 = sha256
        self._file = _Body(body)  # type: ignore[assignment]
        self._hash = hashlib.sha256()
        self._checked = False

    def close(self) -> None:
        self._file.close()


class S3BlobWriter:
    """Streams bytes into the bucket while hashing (see the module docstring); `finish` stages the blob.

    The size cap is checked before each chunk is accepted; any error aborts the upload, leaving no object.
    """

    def __init__(self, store: S3BlobStore, *, max_bytes: int) -> None:
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise InvalidArgumentError(f"blob size cap must be a non-negative integer, got {max_bytes!r}")
        self._store = store
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self._size = 0
        self._buffer = bytearray()
        self._temp_key = store._temp_key()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._open = True
        store._begin_temp(self._temp_key)

    @property
    def size(self) -> int:
        """Bytes accepted so far."""
        return self._size

    def write(self, chunk: bytes | memoryview) -> None:
        """Append a chunk; ResourceExhaustedError (and abort) when the total would exceed the cap."""
        self._require_open()
        if self._size + len(chunk) > self._max_bytes:
            self.abort()
            raise ResourceExhaustedError(
                f"blob exceeds its limit of {self._max_bytes} bytes ({self._size} accepted, next chunk "
                f"{len(chunk)} bytes); send a smaller adapter"
            )
        self._hash.update(chunk)
        self._buffer += chunk
        self._size += len(chunk)
        if len(self._buffer) >= PART_BYTES:
            try:
                self._send_part()
            except BaseException:
                self.abort()
                raise

    def finish(self) -> StagedBlob:
        """Make the bytes a durable, pinned object under their digest, and describe the blob."""
        self._require_open()
        sha256 = self._hash.hexdigest()
        store = self._store
        try:
            if self._upload_id is None:
                store._publish_bytes(bytes(self._buffer), sha256)
            else:
                if self._buffer:
                    self._send_part()
                store._call(store.client.complete_multipart_upload, Bucket=store.bucket, Key=self._temp_key,
                            UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})
                self._upload_id = None
                store._publish_temp(self._temp_key, sha256)
        except BaseException:
            self.abort()
            raise
        self._open = False
        self._buffer = bytearray()
        store._end_temp(self._temp_key)
        log.debug("staged blob %s (%d bytes)", sha256, self._size)
        return StagedBlob(sha256=sha256, size=self._size, path=store.path_for(sha256))

    def abort(self) -> None:
        """Drop everything sent so far (the unfinished upload and the temporary object); safe to repeat."""
        if not self._open:
            return
        self._open = False
        self._buffer = bytearray()
        store = self._store
        try:
            if self._upload_id is not None:
                store._call(store.client.abort_multipart_upload, Bucket=store.bucket, Key=self._temp_key,
                            UploadId=self._upload_id)
            store._call(store.client.delete_object, Bucket=store.bucket, Key=self._temp_key)
        except UnavailableError:
            log.warning("could not remove an aborted upload; fsck --repair removes it after %d s", STALE_TEMP_S)
        finally:
            store._end_temp(self._temp_key)

    def _send_part(self) -> None:
        store = self._store
        if self._upload_id is None:
            created = store._call(store.client.create_multipart_upload, Bucket=store.bucket, Key=self._temp_key)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        body, self._buffer = bytes(self._buffer), bytearray()
        part = store._call(store.client.upload_part, Bucket=store.bucket, Key=self._temp_key,
                           UploadId=self._upload_id, PartNumber=number, Body=body)
        self._parts.append({"PartNumber": number, "ETag": part["ETag"]})

    def _require_open(self) -> None:
        if not self._open:
            raise InvalidArgumentError("blob writer is already finished or aborted; start a new one")

    def __enter__(self) -> S3BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()


class S3BlobStore:
    """Owns the bucket prefix, the database pins, and the temporary objects this process is writing."""

    def __init__(self, client: Any, *, bucket: str, prefix: str, pins: DatabasePins) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self._base = f"{prefix}/" if prefix else ""
        self._pins = pins
        self._lock = threading.Lock()
        self._active_temps: set[str] = set()
        try:
            self._call(client.head_bucket, Bucket=bucket)
        except NotFoundError as exc:
            raise FailedPreconditionError(f"bucket {bucket} does not exist; create it first") from exc

    def close(self) -> None:
        """Nothing to stop: the client's connections go with it."""

    def path_for(self, sha256: str) -> PurePosixPath:
        """The object key of `sha256` (a path inside the bucket)."""
        check_sha256(sha256)
        return PurePosixPath(f"{self._base}blobs/{sha256[:2]}/{sha256}")

    def new_writer(self, *, max_bytes: int) -> S3BlobWriter:
        return S3BlobWriter(self, max_bytes=max_bytes)

    def exists(self, sha256: str) -> bool:
        return self._size_of(sha256) is not None

    def open(self, sha256: str) -> S3BlobReader:
        """A verifying reader; DataLossError when the object is missing (or, at the end, corrupt)."""
        try:
            got = self._call(self.client.get_object, Bucket=self.bucket, Key=str(self.path_for(sha256)))
        except NotFoundError as exc:
            raise DataLossError(f"blob {sha256} is missing from the store; run fsck") from exc
        return S3BlobReader(got["Body"], sha256=sha256)

    def read(self, sha256: str) -> bytes:
        """The whole blob, verified before it is returned."""
        with self.open(sha256) as reader:
            return reader.read_all()

    def hash_file(self, sha256: str) -> str | None:
        """The actual SHA-256 of the stored object, or None when it is missing (fsck's check)."""
        try:
            got = self._call(self.client.get_object, Bucket=self.bucket, Key=str(self.path_for(sha256)))
        except NotFoundError:
            return None
        digest = hashlib.sha256()
        body = got["Body"]
        try:
            while chunk := body.read(_READ_CHUNK):
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest()

    # pins and deletion

    def is_pinned(self, sha256: str) -> bool:
        return self._pins.is_pinned(sha256)

    def check_staged(self, blob: StagedBlob) -> None:
        """FailedPreconditionError unless `blob` was staged by this process and is still pinned."""
        if not self._pins.holds(blob.sha256) or blob.path != self.path_for(blob.sha256):
            raise FailedPreconditionError(
                f"blob {blob.sha256[:12]}… is not staged in this vault (already committed or discarded); "
                "write it again with new_blob_writer"
            )
        size = self._size_of(blob.sha256)
        if size != blob.size:
            raise DataLossError(f"staged blob {blob.sha256[:12]}… has {size} bytes, not {blob.size}")

    def release(self, sha256: str) -> None:
        """Drop one pin taken when the blob was staged."""
        self._pins.unpin(sha256)

    def delete_unreferenced(self, sha256s: Iterable[str], *, is_referenced: Callable[[str], bool]) -> list[str]:
        """Delete each object that no replica pins and no version references; return the digests deleted."""
        deleted = []
        for sha256 in sorted(set(sha256s)):
            with self._pins.deleting(sha256) as pinned:
                if pinned or is_referenced(sha256) or self._size_of(sha256) is None:
                    continue
                self._call(self.client.delete_object, Bucket=self.bucket, Key=str(self.path_for(sha256)))
                deleted.append(sha256)
        if deleted:
            log.info("deleted %d unreferenced blob(s)", len(deleted))
        return deleted

    # listing, for fsck

    def stored_digests(self) -> list[str]:
        """Every blob object's name (its claimed digest); stray names that are not digests are skipped."""
        found = []
        for item in self._list(f"{self._base}blobs/"):
            parts = item["Key"][len(self._base):].split("/")
            if len(parts) == 3 and is_sha256_hex(parts[2]) and parts[1] == parts[2][:2]:
                found.append(parts[2])
        return sorted(found)

    def stale_temps(self) -> list[str]:
        """Debris of dead writers, by name: temporary objects, unfinished uploads, and pins (see pins.py)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=STALE_TEMP_S)
        with self._lock:
            active = set(self._active_temps)
        names = [item["Key"][len(self._base):] for item in self._list(f"{self._base}tmp/")
                 if item["LastModified"] < cutoff and item["Key"] not in active]
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=f"{self._base}tmp/")
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff and upload["Key"] not in active:
                    names.append(f"upload {upload['Key'][len(self._base):]} {upload['UploadId']}")
        names += [f"pin {pin}" for pin in self._pins.stale()]
        return sorted(names)

    def remove_temp(self, name: str) -> None:
        """Remove one item that stale_temps named."""
        kind, _, rest = name.partition(" ")
        if kind == "pin":
            self._pins.remove(rest)
        elif kind == "upload":
            key, upload_id = rest.rsplit(" ", 1)
            self._call(self.client.abort_multipart_upload, Bucket=self.bucket, Key=self._base + key,
                       UploadId=upload_id)
        else:
            self._call(self.client.delete_object, Bucket=self.bucket, Key=self._base + name)

    def remove_crash_leftovers(self) -> int:
        """Remove temporary objects and unfinished uploads older than STALE_TEMP_S (pins are fsck's)."""
        leftovers = [name for name in self.stale_temps() if not name.startswith("pin ")]
        for name in leftovers:
            self.remove_temp(name)
        return len(leftovers)

    # used by S3BlobWriter

    def _temp_key(self) -> str:
        return f"{self._base}tmp/{secrets.token_hex(16)}"

    def _begin_temp(self, key: str) -> None:
        with self._lock:
            self._active_temps.add(key)

    def _end_temp(self, key: str) -> None:
        with self._lock:
            self._active_temps.discard(key)

    def _publish_bytes(self, data: bytes, sha256: str) -> None:
        """Pin, then PUT the bytes to their final key (the bucket verifies them against the digest)."""
        self._pins.pin(sha256)
        try:
            self._call(self.client.put_object, Bucket=self.bucket, Key=str(self.path_for(sha256)), Body=data,
                       ChecksumSHA256=_checksum(sha256))
        except BaseException:
            self._pins.unpin(sha256)
            raise

    def _publish_temp(self, temp_key: str, sha256: str) -> None:
        """Pin, copy the completed temporary object to the final key, remove the temporary object."""
        self._pins.pin(sha256)
        try:
            self._call(self.client.copy, Bucket=self.bucket, Key=str(self.path_for(sha256)),
                       CopySource={"Bucket": self.bucket, "Key": temp_key}, Config=_copy_config())
        except BaseException:
            self._pins.unpin(sha256)
            raise
        self._call(self.client.delete_object, Bucket=self.bucket, Key=temp_key)

    def _size_of(self, sha256: str) -> int | None:
        try:
            head = self._call(self.client.head_object, Bucket=self.bucket, Key=str(self.path_for(sha256)))
        except NotFoundError:
            return None
        return int(head["ContentLength"])

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        """Call the client; a missing key or bucket is NotFoundError, a bad checksum DataLossError, anything
        else from the store UnavailableError (the client already retried), none naming the backend."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(**kwargs)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _MISSING or code == "NoSuchBucket":
                raise NotFoundError("no such blob object") from exc
            if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                raise DataLossError("blob bytes do not match their SHA-256; nothing was stored") from exc
            log.warning("blob store call %s failed: %s", getattr(method, "__name__", "?"), code)
            raise UnavailableError("the blob store failed to answer; retry later") from exc
        except BotoCoreError as exc:
            log.warning("blob store call %s failed: %s", getattr(method, "__name__", "?"), exc)
            raise UnavailableError("the blob store cannot be reached; retry later") from exc
