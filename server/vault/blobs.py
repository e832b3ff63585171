"""Content-addressed blob files: `<root>/ab/abcdef...`, written by streaming and read back verified.

The store also decides when a blob file may be deleted: a blob staged by a writer is pinned until its version
commits or is discarded, and deletion re-checks pins and the caller's reference test under the store's lock,
so a blob that a concurrent commit is about to reference is never removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from types import TracebackType

from loravault.core import DataLossError, FailedPreconditionError, InvalidArgumentError, ResourceExhaustedError
from loravault.proto.digests import is_sha256_hex

from .direct_io import DirectBlocks, direct_io_supported
from .durable import TEMP_PREFIX, AtomicFile, fsync_dir

__all__ = ["BlobReader", "BlobStore", "BlobWriter", "StagedBlob"]

log = logging.getLogger(__name__)

_READ_CHUNK = 1 << 20
# A writer whose cap (an upload's declared size) reaches this writes with O_DIRECT (see direct_io); smaller
# blobs go through the page cache, where O_DIRECT did not pay for itself (README, "Vault": measured end to end).
DIRECT_MIN_BYTES = 16 << 20


def check_sha256(sha256: str) -> str:
    """Refuse anything but 64 lowercase hex digits, so a digest can never name a path outside the store."""
    if not is_sha256_hex(sha256):
        raise InvalidArgumentError(f"blob digest {str(sha256)[:80]!r} is not 64 lowercase hex digits (SHA-256)")
    return sha256


@dataclass(frozen=True)
class StagedBlob:
    """A blob that is durable on disk and pinned until a version commits it or it is discarded."""

    sha256: str  # hex SHA-256 of the bytes
    size: int  # bytes
    path: PurePath  # its final content-addressed path (a file path, or an object key in a bucket)


class BlobWriter:
    """Streams bytes into a temporary file while hashing; `finish` makes it a durable content-addressed blob.

    The size cap is checked before each chunk is written, so an oversized upload is refused without
    buffering the excess. Any error leaves no partial blob visible: the temporary file is removed.
    """

    def __init__(self, store: BlobStore, *, max_bytes: int) -> None:
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise InvalidArgumentError(f"blob size cap must be a non-negative integer, got {max_bytes!r}")
        self._store = store
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self._size = 0
        self._file: AtomicFile | None = store._begin_temp(large=max_bytes >= DIRECT_MIN_BYTES)

    @property
    def size(self) -> int:
        """Bytes accepted so far."""
        return self._size

    def write(self, chunk: bytes | memoryview) -> None:
        """Append a chunk; ResourceExhaustedError (and abort) when the total would exceed the cap."""
        atomic = self._require_open()
        if self._size + len(chunk) > self._max_bytes:
            self.abort()
            raise ResourceExhaustedError(
                f"blob exceeds its limit of {self._max_bytes} bytes ({self._size} accepted, next chunk "
                f"{len(chunk)} bytes); send a smaller adapter"
            )
        atomic.write(chunk)
        self._hash.update(chunk)
        self._size += len(chunk)

    def finish(self) -> StagedBlob:
        """Fsync, rename to `<root>/ab/<sha256>`, fsync the folders, pin, and describe the blob."""
        atomic = self._require_open()
        sha256 = self._hash.hexdigest()
        try:
            path = self._store._publish(atomic, sha256)
        finally:
            self._file = None
            self._store._end_temp(atomic)
        log.debug("staged blob %s (%d bytes)", sha256, self._size)
        return StagedBlob(sha256=sha256, size=self._size, path=path)

    def abort(self) -> None:
        """Drop everything written so far; safe to call more than once."""
        if self._file is not None:
            atomic, self._file = self._file, None
            atomic.abort()
            self._store._end_temp(atomic)

    def _require_open(self) -> AtomicFile:
        if self._file is None:
            raise InvalidArgumentError("blob writer is already finished or aborted; start a new one")
        return self._file

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()


class BlobReader:
    """Reads a blob and checks its digest and size when the end is reached (DataLossError on mismatch).

    NOTE: bytes are handed out before the end is reached; a streaming caller must treat the DataLossError at
    the end as voiding everything it sent. Use `read_all` where the whole blob must be verified first.
    """

    def __init__(self, path: Path, *, sha256: str) -> None:
        self.sha256 = sha256
        try:
            self._file = open(path, "rb")  # noqa: SIM115 (closed by close / the context manager)
        except FileNotFoundError as exc:
            raise DataLossError(f"blob {sha256} is missing from the store; run fsck") from exc
        self._hash = hashlib.sha256()
        self._checked = False

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._hash.update(data)
        if not data or size < 0:
            self._check()
        return data

    def chunks(self, chunk_size: int = _READ_CHUNK) -> Iterator[bytes]:
        """Yield the blob in chunks; the last step verifies the digest."""
        while chunk := self.read(chunk_size):
            yield chunk

    def read_all(self) -> bytes:
        return self.read()

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        actual = self._hash.hexdigest()
        if actual != self.sha256:
            raise DataLossError(f"blob {self.sha256} is corrupt: its bytes hash to {actual}; run fsck")

    def close(self) -> None:
        """Close the file and drop its pages from the page cache (posix_fadvise DONTNEED, a hint).

        Why: a blob is read whole and seldom twice in a row (a client keeps what it downloaded), so pages kept
        for it only grow the cache, and on these virtual machines memory the kernel has not touched in a while
        costs a host page fault per page when it is handed out again (measured: README, "Vault").
        """
        advise = getattr(os, "posix_fadvise", None)
        if advise is not None:
            try:
                advise(self._file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError as exc:
                log.debug("posix_fadvise refused (%s); the pages stay cached", exc)
        self._file.close()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class BlobStore:
    """Owns the blob folder, its lock, the pins on staged blobs, and the temporary files being written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._make_folders()
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()
        self._active_temps: set[Path] = set()
        probe = root / f"{TEMP_PREFIX}direct-probe-{secrets.token_hex(8)}"  # a crash leaves a temp file fsck removes
        self._direct = DirectBlocks() if direct_io_supported(probe) else None  # None: through the page cache

    def close(self) -> None:
        """Release the idle write blocks (a store is closed with its vault)."""
        if self._direct is not None:
            self._direct.close()

    def path_for(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256

    def new_writer(self, *, max_bytes: int) -> BlobWriter:
        return BlobWriter(self, max_bytes=max_bytes)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def open(self, sha256: str) -> BlobReader:
        """A verifying reader; DataLossError when the file is missing (or, at the end, corrupt)."""
        return BlobReader(self.path_for(sha256), sha256=sha256)

    def read(self, sha256: str) -> bytes:
        """The whole blob, verified before it is returned."""
        with self.open(sha256) as reader:
            return reader.read_all()

    def hash_file(self, sha256: str) -> str | None:
        """The actual SHA-256 of the stored file, or None when it is missing (fsck's check)."""
        digest = hashlib.sha256()
        try:
            with open(self.path_for(sha256), "rb") as file:
                while chunk := file.read(_READ_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
        return digest.hexdigest()

    # pins and deletion

    def is_pinned(self, sha256: str) -> bool:
        with self._lock:
            return self._pins[sha256] > 0

    def check_staged(self, blob: StagedBlob) -> None:
        """FailedPreconditionError unless `blob` came from this store's writer and is still pinned."""
        path = self.path_for(blob.sha256)
        if not self.is_pinned(blob.sha256) or blob.path != path:
            raise FailedPreconditionError(
                f"blob {blob.sha256[:12]}… is not staged in this vault (already committed or discarded); "
                "write it again with new_blob_writer"
            )
        if path.stat().st_size != blob.size:
            raise DataLossError(f"staged blob {blob.sha256[:12]}… has {path.stat().st_size} bytes, not {blob.size}")

    def release(self, sha256: str) -> None:
        """Drop one pin taken by `BlobWriter.finish`."""
        with self._lock:
            if self._pins[sha256] <= 0:
                raise InvalidArgumentError(f"blob {sha256} is not staged (already committed or discarded)")
            self._pins[sha256] -= 1
            if self._pins[sha256] == 0:
                del self._pins[sha256]

    def delete_unreferenced(self, sha256s: Iterable[str], *, is_referenced: Callable[[str], bool]) -> list[str]:
        """Delete each blob that is neither pinned nor referenced; return the digests deleted.

        `is_referenced` is asked under the store's lock, so no writer can stage the same digest between the
        answer and the unlink.
        """
        deleted = []
        with self._lock:
            for sha256 in sorted(set(sha256s)):
                if self._pins[sha256] > 0 or is_referenced(sha256):
                    continue
                path = self.path_for(sha256)
                if path.exists():
                    path.unlink()
                    fsync_dir(path.parent)
                    deleted.append(sha256)
        if deleted:
            log.info("deleted %d unreferenced blob(s)", len(deleted))
        return deleted

    # listing, for fsck

    def stored_digests(self) -> list[str]:
        """Every blob file's name (its claimed digest); stray names that are not digests are skipped."""
        return sorted(
            path.name
            for path in self.root.glob("??/*")
            if is_sha256_hex(path.name) and path.parent.name == path.name[:2]
        )

    def stale_temps(self) -> list[str]:
        """The stale temporary files by name, relative to the store's folder (fsck's view)."""
        return [str(path.relative_to(self.root)) for path in self.stale_temp_files()]

    def remove_temp(self, name: str) -> None:
        """Remove one temporary file that stale_temps named."""
        parts = Path(name).parts
        path = self.root / name
        if not 1 <= len(parts) <= 2 or ".." in parts or not path.name.startswith(TEMP_PREFIX):
            raise InvalidArgumentError(f"{name!r} is not a temporary file of this store")
        path.unlink(missing_ok=True)

    def remove_crash_leftovers(self) -> int:
        """Remove every stale temporary file: the open vault owns the folder, so they are a crash's debris."""
        leftovers = self.stale_temp_files()
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)

    def stale_temp_files(self) -> list[Path]:
        """Temporary files no live writer of this process owns: leftovers of a crash or an abort."""
        with self._lock:
            active = set(self._active_temps)
        found = list(self.root.glob(f"{TEMP_PREFIX}*")) + list(self.root.glob(f"??/{TEMP_PREFIX}*"))
        return sorted(path for path in found if path not in active)

    # used by BlobWriter

    def _begin_temp(self, *, large: bool) -> AtomicFile:
        """A temporary blob file: written with O_DIRECT when `large` and the folder takes it (see DIRECT_MIN_BYTES)."""
        atomic = AtomicFile(self.root, mode=0o600, direct=self._direct if large else None)
        with self._lock:
            self._active_temps.add(atomic.temp_path)
        return atomic

    def _end_temp(self, atomic: AtomicFile) -> None:
        with self._lock:
            self._active_temps.discard(atomic.temp_path)

    def _make_folders(self) -> None:
        """Create the 256 blob folders (ab/ for digests starting with ab) up front, durably.

        Why: a folder created by the write that first needs it would make that write sync the store root for
        the new folder as well; made once here, no blob write creates a folder.
        """
        created = False
        for prefix in range(256):
            folder = self.root / f"{prefix:02x}"
            if not folder.is_dir():
                folder.mkdir(mode=0o700, exist_ok=True)
                created = True
        if created:
            fsync_dir(self.root)

    def _publish(self, atomic: AtomicFile, sha256: str) -> Path:
        """Rename into place and pin, under the lock that deletion takes (see delete_unreferenced)."""
        path = self.path_for(sha256)
        with self._lock:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            try:
                atomic.publish(path)
            except BaseException:
                atomic.abort()
                raise
            self._pins[sha256] += 1
        return path
