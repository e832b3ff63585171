"""The exclusive lock that makes one Vault the only user of a data folder while it is open.

Pins on staged blobs and the list of live temporary files exist only in the owning process, so a second
Vault on the same folder could delete a blob the first is about to commit. The lock (flock on
`<data>/vault.lock`) refuses that second open, and lets `Vault.open` treat every temporary file it finds as
debris of a crashed predecessor. The kernel drops the lock when the process dies, even by SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from loravault.core import UnavailableError

__all__ = ["DataDirLock"]

LOCK_NAME = "vault.lock"


class DataDirLock:
    """Held from construction until `release`; UnavailableError when another open Vault holds it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise UnavailableError(
                f"data folder {data_dir} is in use by another open vault; stop that server (or close it) first"
            ) from exc
        self._fd: int | None = fd

    def release(self) -> None:
        """Unlock; safe to call more than once."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock
