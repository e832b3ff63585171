"""What a blob write guarantees when the process dies: durable once `finish` returns, nothing half-written
before, and the debris found by the store and by fsck. Each case runs in a child process killed with SIGKILL,
with and without O_DIRECT.

NOTE: a SIGKILL loses what the process holds, not what the kernel holds; the fsyncs that make a blob survive a
power cut cannot be observed from a test, so these tests check the order of the steps (rename only after the
bytes are complete) and what is left on disk, not counts of fsync calls.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from vault_testkit import FINGERPRINT

from loravault.core import DataLossError
from loravault.server.vault import Vault
from loravault.server.vault.blobs import BlobStore
from loravault.server.vault.durable import TEMP_PREFIX

MIB = 1 << 20
_CHILD = """
import os, signal, sys
from pathlib import Path
from loravault.server.vault import blobs
if sys.argv[3] == "page-cache":
    blobs.direct_io_supported = lambda probe: False
store = blobs.BlobStore(Path(sys.argv[1]))
data = bytes(range(256)) * (int(sys.argv[4]) // 256)
writer = store.new_writer(max_bytes=max(len(data), blobs.DIRECT_MIN_BYTES))  # a cap large enough for O_DIRECT
half = len(data) // 2
writer.write(data[:half])
if sys.argv[2] == "finished":
    writer.write(data[half:])
    writer.finish()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _write_then_die(root: Path, *, stage: str, writes: str, size: int) -> bytes:
    """Run a writer that is killed at `stage` ("half-written" or "finished"); returns the bytes it wrote."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(root), stage, writes, str(size)],
                          capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    return bytes(range(256)) * (size // 256)


@pytest.mark.parametrize("writes", ["direct", "page-cache"])
@pytest.mark.parametrize("size", [4096, 3 * MIB + 256], ids=["4KiB", "3MiB"])
def test_a_blob_is_complete_and_verified_once_finish_has_returned(tmp_path, writes, size):
    data = _write_then_die(tmp_path / "blobs", stage="finished", writes=writes, size=size)
    store = BlobStore(tmp_path / "blobs")
    digest = hashlib.sha256(data).hexdigest()
    assert store.stored_digests() == [digest]
    assert store.read(digest) == data  # the verifying read: every byte, and nothing past them
    assert os.stat(store.path_for(digest)).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("writes", ["direct", "page-cache"])
def test_a_writer_killed_mid_blob_leaves_no_blob_only_a_temporary_file_the_store_removes(tmp_path, writes):
    _write_then_die(tmp_path / "blobs", stage="half-written", writes=writes, size=3 * MIB + 256)
    store = BlobStore(tmp_path / "blobs")
    assert store.stored_digests() == []  # no digest names a prefix of the bytes
    leftovers = store.stale_temps()
    assert len(leftovers) == 1 and leftovers[0].startswith(TEMP_PREFIX)
    assert store.remove_crash_leftovers() == 1
    assert store.stale_temps() == [] and [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


def test_fsck_names_the_debris_of_a_killed_writer_and_repair_removes_it(tmp_path):
    data_dir = tmp_path / "data"
    Vault.open(data_dir, base_fingerprint=FINGERPRINT).close()
    _write_then_die(data_dir / "blobs", stage="half-written", writes="direct", size=3 * MIB + 256)
    leftover = [p for p in (data_dir / "blobs").glob(f"{TEMP_PREFIX}*")]
    assert len(leftover) == 1
    with Vault.open(data_dir, base_fingerprint=FINGERPRINT) as vault:  # the owner at open: debris goes at once
        assert not leftover[0].exists() and vault.adapters.fsck().clean


def test_stage_blob_refuses_bytes_that_do_not_hash_to_the_expected_digest_and_keeps_nothing(vault):
    """The store names a blob by the digest it computes itself; a caller's digest is only checked against it
    (every store: files, and a bucket whose server does not check ChecksumSHA256)."""
    wrong = hashlib.sha256(b"something else").hexdigest()
    actual = hashlib.sha256(b"merged adapter").hexdigest()
    with pytest.raises(DataLossError, match="not the expected"):
        vault.adapters.stage_blob(b"merged adapter", expected_sha256=wrong)
    assert vault._store.stored_digests() == [] and not vault._store.is_pinned(actual)
    assert not vault._store.is_pinned(wrong)
    staged = vault.adapters.stage_blob(memoryview(b"merged adapter"), expected_sha256=actual)
    assert (staged.sha256, staged.size) == (actual, 14) and vault._store.read(actual) == b"merged adapter"
    assert vault._store.is_pinned(actual)
    vault.adapters.discard_blob(staged)
    assert vault._store.stored_digests() == []
