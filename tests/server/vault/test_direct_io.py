"""Blob files written with O_DIRECT: exact bytes and sizes at every alignment, errors surfaced, blocks reused,
and the page-cache path where a filesystem refuses O_DIRECT."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from loravault.server.vault import blobs
from loravault.server.vault.blobs import BlobStore
from loravault.server.vault.direct_io import (
    ALIGNMENT,
    BLOCK_BYTES,
    DirectAppender,
    DirectWrites,
    direct_io_supported,
    open_direct_flag,
)
from loravault.server.vault.durable import TEMP_PREFIX

pytestmark = pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="O_DIRECT is Linux-only")


@pytest.fixture
def writes():
    shared = DirectWrites(keep_blocks=4)
    yield shared
    shared.close()


def _direct_fd(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | open_direct_flag(), 0o600)


def test_this_test_folder_accepts_o_direct(tmp_path):
    """The rest of this file and the vault's other tests exercise the direct path only where this holds."""
    assert direct_io_supported(tmp_path / "probe")
    assert list(tmp_path.iterdir()) == []  # the probe is removed


@pytest.mark.parametrize("size", [1, ALIGNMENT - 1, ALIGNMENT, ALIGNMENT + 1, BLOCK_BYTES - 1, BLOCK_BYTES,
                                  BLOCK_BYTES + 1, 2 * BLOCK_BYTES + 4097])
@pytest.mark.parametrize("chunk", [1000, 1 << 20, 3 * BLOCK_BYTES])
def test_appended_bytes_land_exactly_whatever_the_sizes(tmp_path, writes, size, chunk):
    data = os.urandom(size)
    fd = _direct_fd(tmp_path / "f")
    appender = DirectAppender(fd, writes)
    for offset in range(0, size, chunk):
        appender.write(data[offset : offset + chunk])
    assert appender.finish() == size
    os.close(fd)
    assert (tmp_path / "f").read_bytes() == data  # the zero padding of the last block is cut off


def test_an_empty_file_stays_empty(tmp_path, writes):
    fd = _direct_fd(tmp_path / "f")
    assert DirectAppender(fd, writes).finish() == 0
    os.close(fd)
    assert (tmp_path / "f").read_bytes() == b""


def test_blocks_are_reused_by_the_next_file(tmp_path, writes):
    first = DirectAppender(_direct_fd(tmp_path / "a"), writes)
    first.write(b"x" * (BLOCK_BYTES + 5))  # the second block is taken when the first is handed over
    held = {id(first._filling), id(first._spare)}
    first.finish()
    second = DirectAppender(_direct_fd(tmp_path / "b"), writes)
    second.write(b"y" * (BLOCK_BYTES + 5))
    assert {id(second._filling), id(second._spare)} == held
    second.abandon()


def test_a_small_file_takes_one_block(tmp_path, writes):
    appender = DirectAppender(_direct_fd(tmp_path / "f"), writes)
    appender.write(b"small")
    assert appender._spare is None
    appender.finish()


def test_a_failed_disk_write_raises_in_the_writer_and_abandon_still_releases(tmp_path, writes):
    (tmp_path / "f").write_bytes(b"")
    read_only = os.open(tmp_path / "f", os.O_RDONLY | open_direct_flag())
    appender = DirectAppender(read_only, writes)
    appender.write(b"y" * BLOCK_BYTES)  # handed to the worker thread, which fails (EBADF)
    with pytest.raises(OSError):
        appender.finish()
    appender.abandon()
    os.close(read_only)
    with pytest.raises(ValueError, match="already finished or abandoned"):
        appender.write(b"z")


def test_the_store_writes_blobs_directly_and_reads_them_back(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    assert store._direct is not None
    data = os.urandom(2 * BLOCK_BYTES + 12345)
    writer = store.new_writer(max_bytes=len(data))
    for offset in range(0, len(data), 1 << 20):
        writer.write(data[offset : offset + (1 << 20)])
    staged = writer.finish()
    assert staged.sha256 == hashlib.sha256(data).hexdigest() and staged.size == len(data)
    assert store.read(staged.sha256) == data
    store.close()


def test_an_aborted_direct_write_leaves_nothing(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    writer = store.new_writer(max_bytes=4 * BLOCK_BYTES)
    writer.write(os.urandom(BLOCK_BYTES + 1))
    writer.abort()
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []
    assert not list((tmp_path / "blobs").glob(f"{TEMP_PREFIX}*"))
    store.close()


def test_a_filesystem_without_o_direct_gets_page_cache_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(blobs, "direct_io_supported", lambda probe: False)
    store = BlobStore(tmp_path / "blobs")
    assert store._direct is None
    data = os.urandom(BLOCK_BYTES + 3)
    writer = store.new_writer(max_bytes=len(data))
    writer.write(data)
    assert store.read(writer.finish().sha256) == data
