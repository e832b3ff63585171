"""Blob files written with O_DIRECT: exact bytes and sizes at every alignment (full blocks written behind on a
writer thread), errors surfaced, blocks reused, and the page-cache path where a filesystem refuses O_DIRECT."""

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
    DirectBlocks,
    direct_io_supported,
    open_direct_flag,
)
from loravault.server.vault.durable import TEMP_PREFIX

pytestmark = pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="O_DIRECT is Linux-only")


@pytest.fixture
def blocks():
    shared = DirectBlocks(keep=4)
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
def test_appended_bytes_land_exactly_whatever_the_sizes(tmp_path, blocks, size, chunk):
    data = os.urandom(size)
    fd = _direct_fd(tmp_path / "f")
    appender = DirectAppender(fd, blocks)
    for offset in range(0, size, chunk):
        appender.write(data[offset : offset + chunk])
    assert appender.finish() == size
    os.close(fd)
    assert (tmp_path / "f").read_bytes() == data  # the zero padding of the last block is cut off


def test_an_empty_file_stays_empty(tmp_path, blocks):
    fd = _direct_fd(tmp_path / "f")
    assert DirectAppender(fd, blocks).finish() == 0
    os.close(fd)
    assert (tmp_path / "f").read_bytes() == b""


def test_the_blocks_are_reused_by_the_next_file(tmp_path, blocks):
    first = DirectAppender(_direct_fd(tmp_path / "a"), blocks)
    first.write(b"x" * (2 * BLOCK_BYTES + 5))  # both blocks used: one written behind while the other filled
    held = {id(first._block), id(first._spare)}
    first.finish()
    assert {id(b) for b in blocks._idle} == held
    second = DirectAppender(_direct_fd(tmp_path / "b"), blocks)
    assert id(second._block) in held
    second.abandon()


def test_a_failed_disk_write_raises_at_finish_and_hands_the_blocks_back(tmp_path, blocks):
    (tmp_path / "f").write_bytes(b"")
    read_only = os.open(tmp_path / "f", os.O_RDONLY | open_direct_flag())
    appender = DirectAppender(read_only, blocks)
    appender.write(b"y" * BLOCK_BYTES)  # the full block goes to a writer thread, whose write fails (EBADF)
    with pytest.raises(OSError):
        appender.finish()
    appender.abandon()
    os.close(read_only)
    with pytest.raises(ValueError, match="already finished or abandoned"):
        appender.write(b"z")
    assert len(blocks._idle) == 2


def test_a_failed_write_behind_raises_before_its_block_is_filled_again(tmp_path, blocks):
    (tmp_path / "f").write_bytes(b"")
    read_only = os.open(tmp_path / "f", os.O_RDONLY | open_direct_flag())
    appender = DirectAppender(read_only, blocks)
    with pytest.raises(OSError):
        appender.write(b"y" * (2 * BLOCK_BYTES))  # the second full block waits for the first write: it failed
    appender.abandon()
    os.close(read_only)
    assert len(blocks._idle) == 2


def test_the_store_writes_large_blobs_directly_and_small_ones_through_the_page_cache(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    assert store._direct is not None
    small = store.new_writer(max_bytes=blobs.DIRECT_MIN_BYTES - 1)
    large = store.new_writer(max_bytes=blobs.DIRECT_MIN_BYTES)
    assert small._file._direct is None and large._file._direct is not None
    small.abort()
    large.abort()
    store.close()


def test_the_store_writes_blobs_directly_and_reads_them_back(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(2 * BLOCK_BYTES + 12345)
    writer = store.new_writer(max_bytes=blobs.DIRECT_MIN_BYTES)
    for offset in range(0, len(data), 1 << 20):
        writer.write(data[offset : offset + (1 << 20)])
    staged = writer.finish()
    assert staged.sha256 == hashlib.sha256(data).hexdigest() and staged.size == len(data)
    assert store.read(staged.sha256) == data
    store.close()


def test_an_aborted_direct_write_leaves_nothing(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    writer = store.new_writer(max_bytes=blobs.DIRECT_MIN_BYTES)
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
    writer = store.new_writer(max_bytes=blobs.DIRECT_MIN_BYTES)
    writer.write(data)
    assert store.read(writer.finish().sha256) == data
