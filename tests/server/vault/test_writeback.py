"""Early writeback: a file written in pieces has its writeback started in contiguous ranges, bytes intact."""

from __future__ import annotations

import os

from loravault.server.vault import durable
from loravault.server.vault.durable import AtomicFile
from loravault.server.vault.writeback import WRITEBACK_BYTES, start_writeback

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
