"""Appending to a file with O_DIRECT from reused, aligned blocks, the disk write running on a worker thread.

Why: a buffered write copies each upload into freshly allocated page-cache pages (about 16 ms of CPU per 64 MiB
on these two cores, plus 3 ms to hand the pages back after the fsync), and an upload is CPU-bound: the vault's
handler thread also hashes and checks every byte while the client hashes and sends. With O_DIRECT the bytes
are copied once into a block that every upload reuses (about 5 ms per 64 MiB) and the device reads them from
there; the write itself waits on the disk, not the CPU, so it runs on a worker thread while the next block
fills. Where the filesystem refuses O_DIRECT (tmpfs on older kernels, some FUSE and network filesystems) or the
platform has no such flag, `direct_io_supported` says so and the caller writes through the page cache as before.

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

__all__ = ["ALIGNMENT", "BLOCK_BYTES", "DirectAppender", "DirectWrites", "direct_io_supported", "open_direct_flag"]

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


class DirectWrites:
    """What direct appenders share: a pool of aligned blocks kept between files, and the disk-write threads.

    A block is handed back after each file, so back-to-back uploads write from memory that is already faulted
    in; at most `keep_blocks` idle blocks are kept (an appender holds one, two once its first block fills).
    """

    def __init__(self, *, keep_blocks: int = 8, threads: int = 4) -> None:
        self._lock = threading.Lock()
        self._idle: list[mmap.mmap] = []
        self._keep = keep_blocks
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="blob-write")

    def take_block(self) -> mmap.mmap:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return anonymous_mapping(BLOCK_BYTES)

    def give_block(self, block: mmap.mmap) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(block)
                return
        block.close()

    def submit_write(self, fd: int, block: mmap.mmap, *, length: int, offset: int) -> Future[None]:
        return self._executor.submit(_write_block, fd, block, length, offset)

    def close(self) -> None:
        """Wait for running writes and release the threads and the idle blocks."""
        self._executor.shutdown(wait=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for block in idle:
            block.close()


def _write_block(fd: int, block: mmap.mmap, length: int, offset: int) -> None:
    view = memoryview(block)[:length]
    try:
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    finally:
        view.release()


class DirectAppender:
    """Appends bytes to an fd opened with O_DIRECT: fills one block while the other is being written.

    The blocks come from `writes` and go back to it, so an upload writes from memory the last one faulted in.

    Not thread-safe: one writer per instance. `finish` must run before the fd is fsynced; `abandon` whenever
    the file will not be finished. Either hands the blocks back.
    """

    def __init__(self, fd: int, writes: DirectWrites) -> None:
        self._fd = fd
        self._writes = writes
        self._filling: mmap.mmap | None = writes.take_block()
        self._spare: mmap.mmap | None = None  # taken when the first block is handed over: small blobs need one
        self._fill = 0  # bytes in the filling block
        self._offset = 0  # file offset of the filling block
        self._pending: Future[None] | None = None

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            block = self._require_open()
            taken = min(len(view), BLOCK_BYTES - self._fill)
            block[self._fill : self._fill + taken] = view[:taken]
            self._fill += taken
            view = view[taken:]
            if self._fill == BLOCK_BYTES:
                self._hand_over(BLOCK_BYTES)

    def finish(self) -> int:
        """Write the last, padded block, wait for every write, and cut the file to its true size (returned)."""
        block = self._require_open()
        size = self._offset + self._fill
        if self._fill:
            padded = -(-self._fill // ALIGNMENT) * ALIGNMENT
            block[self._fill : padded] = bytes(padded - self._fill)
            self._hand_over(padded)
        self._wait()
        os.ftruncate(self._fd, size)
        self._release()
        return size

    def abandon(self) -> None:
        """Wait for the write in flight (its error no longer matters) and hand the blocks back."""
        if self._pending is not None:
            self._pending.exception()
            self._pending = None
        self._release()

    def _hand_over(self, length: int) -> None:
        """Start writing the filling block and continue in the spare once the previous write is done."""
        self._wait()
        assert self._filling is not None
        if self._spare is None:
            self._spare = self._writes.take_block()
        self._pending = self._writes.submit_write(self._fd, self._filling, length=length, offset=self._offset)
        self._offset += length
        self._filling, self._spare = self._spare, self._filling
        self._fill = 0

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # a failed disk write raises here, in the writer's thread

    def _require_open(self) -> mmap.mmap:
        if self._filling is None:
            raise ValueError("direct appender is already finished or abandoned")
        return self._filling

    def _release(self) -> None:
        for block in (self._filling, self._spare):
            if block is not None:
                self._writes.give_block(block)
        self._filling = self._spare = None
