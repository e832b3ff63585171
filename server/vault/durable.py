"""The one durable-write helper: every write that must survive a crash goes through `AtomicFile`.

A write lands in a temporary file created next to its destination, is fsynced, then renamed (or hard-linked,
for an exclusive create) over the destination, and the folders are fsynced, so after a crash a reader sees
either the old file or the complete new one, never a prefix.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from loravault.core import AlreadyExistsError

from .direct_io import DirectAppender, DirectBlocks, open_direct_flag

__all__ = ["AtomicFile", "TEMP_PREFIX", "fsync_dir", "write_file_durably"]

log = logging.getLogger(__name__)

# every temporary file starts with this, so fsck can tell them from real files
TEMP_PREFIX = ".tmp-"


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink inside `folder` durable (POSIX needs the directory itself fsynced)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A temporary file in `folder` that becomes a destination file atomically and durably.

    The temporary file is created with O_EXCL and `mode` from the first instant, so a secret written through
    it is never readable by others, even briefly. Writes go through the page cache (python-tuf's
    persist_temp_file shape); with `direct` (blob files, in a folder where direct_io.direct_io_supported holds)
    they bypass it from reused aligned blocks (see direct_io). Either way `publish` is the one way a file
    becomes durable. Not thread-safe: one writer per instance.
    """

    def __init__(self, folder: Path, *, mode: int = 0o600, direct: DirectBlocks | None = None) -> None:
        self.folder = folder
        self.temp_path = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | (open_direct_flag() if direct is not None else 0)
        self._fd: int | None = os.open(self.temp_path, flags, mode)
        self._direct = DirectAppender(self._fd, direct) if direct is not None else None

    def write(self, data: bytes | memoryview) -> None:
        """Append all of `data` (os.write may write less than asked, so loop)."""
        if self._fd is None:
            raise ValueError(f"{self.temp_path} is already published or aborted")
        if self._direct is not None:
            self._direct.write(data)
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def publish(self, destination: Path, *, exclusive: bool = False) -> None:
        """Fsync, then move the temporary file to `destination` and fsync the folders.

        With `exclusive`, an existing destination is never replaced: AlreadyExistsError is raised and the
        temporary file removed (hard link, which fails when the name is taken, then unlink).
        """
        if self._fd is None:
            raise ValueError(f"{self.temp_path} is already published or aborted")
        if self._direct is not None:
            self._direct.finish()
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        try:
            if exclusive:
                os.link(self.temp_path, destination)
                os.unlink(self.temp_path)
            else:
                os.replace(self.temp_path, destination)
        except FileExistsError as exc:
            self.temp_path.unlink(missing_ok=True)
            raise AlreadyExistsError(f"{destination} already exists; move it away or delete it first") from exc
        except BaseException:
            self.temp_path.unlink(missing_ok=True)
            raise
        fsync_dir(destination.parent)
        if destination.parent != self.folder:
            fsync_dir(self.folder)

    def abort(self) -> None:
        """Close and remove the temporary file; safe to call more than once."""
        if self._direct is not None:
            self._direct.abandon()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.temp_path.unlink(missing_ok=True)


def write_file_durably(path: Path, data: bytes, *, mode: int = 0o600, exclusive: bool = False) -> None:
    """Write `data` to `path` through an AtomicFile in the same folder (see AtomicFile.publish)."""
    atomic = AtomicFile(path.parent, mode=mode)
    try:
        atomic.write(data)
        atomic.publish(path, exclusive=exclusive)
    except BaseException:
        atomic.abort()
        raise
    log.debug("wrote %d bytes durably to %s", len(data), path)
