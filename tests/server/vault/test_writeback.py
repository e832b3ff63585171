"""Page-cache hints: early writeback in contiguous ranges with the bytes intact; blob pages dropped once durable
and once read."""

from __future__ import annotations

import os

from loravault.server.vault import blobs, durable
from loravault.server.vault.durable import AtomicFile
from loravault.server.vault.blobs import BlobStore
from loravault.server.vault.writeback import WRITEBACK_BYTES, drop_cached_pages, start_writeback

MIB = 1 << 20


def test_writes_start_writeback_of_contiguous_ranges_and_publish_keeps_every_byte(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(durable, "start_writeback", lambda fd, *, offset, length: started.append((offset, length)))
    pieces = [bytes([i]) * MIB for i in range(2 * WRITEBACK_BYTES // MIB + 1)]
    atomic = AtomicFile(tmp_path)
    for piece in pieces:
        atomic.write(piece)
    atomic.publish(tmp_path / "blob")
    assert started == [(0, WRITEBACK_BYTES), (WRITEBACK_BYTES, WRITEBACK_BYTES)]  # the last megabyte: fsync's
    assert (tmp_path / "blob").read_bytes() == b"".join(pieces)


def test_a_small_file_starts_no_writeback(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(durable, "start_writeback", lambda fd, *, offset, length: started.append((offset, length)))
    atomic = AtomicFile(tmp_path)
    atomic.write(b"x" * (WRITEBACK_BYTES - 1))
    atomic.publish(tmp_path / "small")
    assert started == []


def test_the_hint_reports_whether_the_kernel_took_it(tmp_path):
    path = tmp_path / "file"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, b"x" * 4096)
        assert start_writeback(fd, offset=0, length=4096) is (os.uname().sysname == "Linux")
    finally:
        os.close(fd)
    closed = os.open(path, os.O_RDONLY)
    os.close(closed)
    assert start_writeback(closed, offset=0, length=1) is False  # a closed descriptor: refused, never raises


def _record_drops(monkeypatch) -> list[tuple[str, bool]]:
    """(path, already fsynced) for every page drop an AtomicFile asks for."""
    synced, dropped = set(), []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.add(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))

    def record(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        dropped.append((path, path in synced))
        return True

    monkeypatch.setattr(durable, "drop_cached_pages", record)
    return dropped


def test_a_blob_drops_its_pages_only_after_its_fsync_and_other_files_keep_theirs(tmp_path, monkeypatch):
    """Where the filesystem refuses O_DIRECT, blobs go through the page cache and hand their pages back."""
    monkeypatch.setattr(blobs, "direct_io_supported", lambda probe: False)
    dropped = _record_drops(monkeypatch)
    writer = BlobStore(tmp_path / "blobs").new_writer(max_bytes=MIB)
    writer.write(b"adapter bytes")
    staged = writer.finish()
    assert len(dropped) == 1 and dropped[0][1], "the drop must follow the fsync: dirty pages cannot be dropped"
    assert staged.path.read_bytes() == b"adapter bytes"
    durable.write_file_durably(tmp_path / "token", b"secret")  # small, re-read files stay cached
    assert len(dropped) == 1


def test_a_blob_written_directly_has_no_cached_pages_to_drop(tmp_path, monkeypatch):
    dropped = _record_drops(monkeypatch)
    store = BlobStore(tmp_path / "blobs")
    assert store._direct is not None  # O_DIRECT works in the test folder (tests/server/vault/test_direct_io.py)
    writer = store.new_writer(max_bytes=MIB)
    writer.write(b"adapter bytes")
    assert writer.finish().path.read_bytes() == b"adapter bytes" and dropped == []


def test_the_page_drop_reports_whether_the_kernel_took_it(tmp_path):
    path = tmp_path / "file"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, b"x" * 4096)
        os.fsync(fd)
        assert drop_cached_pages(fd) is hasattr(os, "posix_fadvise")
    finally:
        os.close(fd)
    assert drop_cached_pages(fd) is False  # a closed descriptor: refused, never raises


def test_a_blob_read_drops_its_pages_when_the_reader_closes(tmp_path, monkeypatch):
    store = BlobStore(tmp_path / "blobs")
    writer = store.new_writer(max_bytes=MIB)
    writer.write(b"adapter bytes")
    staged = writer.finish()
    dropped = []
    monkeypatch.setattr(blobs, "drop_cached_pages", lambda fd: dropped.append(os.readlink(f"/proc/self/fd/{fd}")))
    with store.open(staged.sha256) as reader:
        assert reader.read_all() == b"adapter bytes"
        assert dropped == []
    assert dropped == [str(staged.path)]
