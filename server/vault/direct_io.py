"""Appending to a blob file with O_DIRECT from aligned blocks that every blob write reuses.

Why: a buffered write copies each upload into freshly allocated page-cache pages, and an upload is CPU-bound
(the vault's handler thread also hashes and checks every byte while the client hashes and sends). With O_DIRECT
the bytes are copied once into a block that the next upload reuses and the device reads them from there.
Measured end to end (README, "Vault"), this and writing each full block out on a writer thread while the next
fills are the blob-write mechanisms that pay for themselves. Where the filesystem refuses O_DIRECT (tmpfs on
older kernels, some FUSE and network filesystems) or the platform has no such flag, `direct_io_supported` says
so and the caller writes through the page cache.

O_DIRECT needs the buffer address, the file offset and the length to be multiples of the logical block size;
blocks are page-aligned anonymous mappings written at multiples of BLOCK_BYTES, and the last, partial block is
padded with zeros to ALIGNMENT and the file then truncated to its true size.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from loravault.core.tensor_views import anonymous_mapping

__all__ = ["ALIGNMENT", "BLOCK_BYTES", "DirectAppender", "DirectBlocks", "direct_io_supported", "open_direct_flag"]

log = logging.getLogger(__name__)

BLOCK_BYTES = 4 << 20  # one disk write; two huge pages
ALIGNMENT = 4096  # a multiple of every logical block size Linux filesystems use
_O_DIRECT = getattr(os, "O_DIRECT", 0)


def open_direct_flag() -> int:
    """The os.open flag for O_DIRECT (ValueError where the platform has none: check direct_io_supported)."""
    if not _O_DIRECT:
        raise ValueError("this platform has no O_DIRECT")
    return _O_DIRECT


def direct_io_supported(probe: Path) -> bool:
    """Whether the folder of `probe` accepts an aligned O_DIRECT write: creates `probe`, writes, removes it."""
    if not _O_DIRECT:
        return False
    block = anonymous_mapping(ALIGNMENT)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _O_DIRECT, 0o600)
        try:
            os.pwrite(fd, block, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        log.info("O_DIRECT refused in %s (%s): files there are written through the page cache", probe.parent, exc)
        return False
    finally:
        probe.unlink(missing_ok=True)
        block.close()
    return True


class DirectBlocks:
    """Aligned blocks kept between files, so back-to-back uploads write from memory already faulted in, and the
    threads that write full blocks out while the next fills.

    At most `keep` idle blocks are kept (two per writer that was running at once). Thread-safe.
    """

    def __init__(self, *, keep: int = 8) -> None:
        self._lock = threading.Lock()
        self._idle: list[mmap.mmap] = []
        self._keep = keep
        self._writers = ThreadPoolExecutor(max_workers=max(1, keep // 2), thread_name_prefix="blob-write")

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return anonymous_mapping(BLOCK_BYTES)

    def give(self, block: mmap.mmap) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(block)
                return
        block.close()

    def write_behind(self, fd: int, block: mmap.mmap, length: int, offset: int) -> Future[None]:
        """Write `length` bytes of `block` at `offset` on a writer thread (pwrite releases the GIL)."""
        return self._writers.submit(_pwrite_all, fd, block, length, offset)

    def close(self) -> None:
        """Stop the writer threads (after the writes in flight) and release the idle blocks."""
        self._writers.shutdown(wait=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for block in idle:
            block.close()


class DirectAppender:
    """Appends bytes to an fd opened with O_DIRECT: fills one block and, each time it is full, writes it out on
    a writer thread while the next block fills (two blocks, one write in flight).

    Why: an O_DIRECT write waits for the device, and in the handler's thread that wait adds to the hashing,
    checking and receiving of every chunk (about 80 ms of a 64 MiB upload's 285 ms, profiled); beside them it
    took uploads from 235-243 to 334-338 MiB/s (bench-vault, alternated runs, README "Vault").

    Not thread-safe: one writer per instance. `finish` must run before the fd is fsynced; `abandon` whenever
    the file will not be finished. Either hands the blocks back.
    """

    def __init__(self, fd: int, blocks: DirectBlocks) -> None:
        self._fd = fd
        self._blocks = blocks
        self._block: mmap.mmap | None = blocks.take()
        self._spare: mmap.mmap | None = None  # the block in flight (or idle after a write)
        self._pending: Future[None] | None = None
        self._fill = 0  # bytes in the block
        self._offset = 0  # file offset of the block

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            block = self._require_open()
            taken = min(len(view), BLOCK_BYTES - self._fill)
            block[self._fill : self._fill + taken] = view[:taken]
            self._fill += taken
            view = view[taken:]
            if self._fill == BLOCK_BYTES:
                self._write_behind(block)

    def finish(self) -> int:
        """Write the last, padded block and cut the file to its true size (returned)."""
        block = self._require_open()
        size = self._offset + self._fill
        try:
            self._wait()
            if self._fill:
                padded = -(-self._fill // ALIGNMENT) * ALIGNMENT
                block[self._fill : padded] = bytes(padded - self._fill)
                _pwrite_all(self._fd, block, padded, self._offset)
            os.ftruncate(self._fd, size)
        finally:
            self.abandon()
        return size

    def abandon(self) -> None:
        """Hand the blocks back (after any write in flight ends); safe to call more than once."""
        try:
            self._wait()
        except OSError:
            pass  # the file is abandoned: its write error no longer matters
        for block in (self._block, self._spare):
            if block is not None:
                self._blocks.give(block)
        self._block = self._spare = None

    def _write_behind(self, block: mmap.mmap) -> None:
        self._wait()  # the spare block's write is done: it may be refilled
        self._pending = self._blocks.write_behind(self._fd, block, BLOCK_BYTES, self._offset)
        self._offset += BLOCK_BYTES
        self._block, self._spare = (self._spare if self._spare is not None else self._blocks.take()), block
        self._fill = 0

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _require_open(self) -> mmap.mmap:
        if self._block is None:
            raise ValueError("direct appender is already finished or abandoned")
        return self._block


def _pwrite_all(fd: int, block: mmap.mmap, length: int, offset: int) -> None:
    view = memoryview(block)[:length]
    try:
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    finally:
        view.release()
