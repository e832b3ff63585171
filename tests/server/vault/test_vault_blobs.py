"""Blob files: streamed, capped, durable, content-addressed, and verified when read back."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from loravault.core import AlreadyExistsError, DataLossError, InvalidArgumentError, ResourceExhaustedError
from loravault.server.vault.blobs import BlobStore
from loravault.server.vault.durable import TEMP_PREFIX, write_file_durably


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_finished_blob_is_content_addressed_and_reads_back(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    writer = store.new_writer(max_bytes=100)
    for chunk in (b"hello ", b"world"):
        writer.write(chunk)
    staged = writer.finish()
    digest = hashlib.sha256(b"hello world").hexdigest()
    assert (staged.sha256, staged.size) == (digest, 11)
    assert staged.path == tmp_path / "blobs" / digest[:2] / digest
    assert store.read(digest) == b"hello world"
    assert _files(tmp_path / "blobs") == [staged.path]


def test_bytes_with_a_known_digest_stage_without_rehashing_and_read_back_verified(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    digest = hashlib.sha256(b"merged adapter").hexdigest()
    staged = store.stage_hashed(b"merged adapter", sha256=digest)
    assert (staged.sha256, staged.size, staged.path) == (digest, 14, tmp_path / "blobs" / digest[:2] / digest)
    assert store.read(digest) == b"merged adapter"
    with pytest.raises(InvalidArgumentError, match="not 64 lowercase hex"):
        store.stage_hashed(b"x", sha256="../escape")
    assert _files(tmp_path / "blobs") == [staged.path]  # the refusal left no temporary file


def test_a_known_digest_is_written_in_its_own_folder_with_one_folder_sync(tmp_path, monkeypatch):
    """The erasure's hot path: file + folder fsync, as any durable write. The 256 folders exist from the
    store's creation (made durable then), so no write syncs the store root for a folder it created."""
    store = BlobStore(tmp_path / "blobs")
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [f"{i:02x}" for i in range(256)]
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    digest = hashlib.sha256(b"merged").hexdigest()
    store.stage_hashed(b"merged", sha256=digest)
    folder = str(tmp_path / "blobs" / digest[:2])
    assert len(synced) == 2 and synced[0].startswith(folder + "/" + TEMP_PREFIX) and synced[1] == folder
    synced.clear()
    BlobStore(tmp_path / "blobs")  # reopening finds every folder: nothing to sync
    assert synced == [] and _files(tmp_path / "blobs") == [store.path_for(digest)]


def test_a_wrong_known_digest_is_caught_when_the_blob_is_read(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    wrong = hashlib.sha256(b"something else").hexdigest()
    store.stage_hashed(b"merged adapter", sha256=wrong)
    with pytest.raises(DataLossError, match="corrupt"):
        store.read(wrong)


def test_cap_is_enforced_before_the_chunk_is_written(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    writer = store.new_writer(max_bytes=10)
    writer.write(b"12345678")
    with pytest.raises(ResourceExhaustedError, match="limit of 10 bytes"):
        writer.write(b"abc")
    assert writer.size == 8
    assert _files(tmp_path / "blobs") == []  # the temporary file went with the refusal
    with pytest.raises(InvalidArgumentError):
        writer.write(b"x")


def test_aborted_write_leaves_no_blob_and_no_temp_file(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    with store.new_writer(max_bytes=100) as writer:
        writer.write(b"partial")
        assert len(store.stale_temp_files()) == 0  # a live writer's temp file is not stale
        assert len(_files(tmp_path / "blobs")) == 1
    assert _files(tmp_path / "blobs") == []
    assert store.stored_digests() == []


def test_corrupted_blob_is_data_loss_on_read(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    writer = store.new_writer(max_bytes=100)
    writer.write(b"original bytes")
    staged = writer.finish()
    staged.path.write_bytes(b"tampered bytes")
    with pytest.raises(DataLossError, match="corrupt"):
        store.read(staged.sha256)
    with store.open(staged.sha256) as reader, pytest.raises(DataLossError, match="corrupt"):
        list(reader.chunks(4))


def test_missing_blob_is_data_loss(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(DataLossError, match="missing"):
        store.read("0" * 64)


@pytest.mark.parametrize(
    "digest",
    ["../" + "0" * 61, "A" * 64, "0" * 63, "0" * 65, "/etc/passwd", ""],
    ids=["dot-dot", "uppercase", "short", "long", "absolute-path", "empty"],
)
def test_digest_that_is_not_sha256_hex_never_names_a_path(tmp_path, digest):
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(InvalidArgumentError):
        store.open(digest)


def test_durable_exclusive_write_never_replaces_and_has_mode_0600(tmp_path):
    target = tmp_path / "secret.txt"
    write_file_durably(target, b"first", mode=0o600, exclusive=True)
    with pytest.raises(AlreadyExistsError):
        write_file_durably(target, b"second", mode=0o600, exclusive=True)
    assert target.read_bytes() == b"first"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)] == []


def test_durable_replace_overwrites_atomically(tmp_path):
    target = tmp_path / "state.json"
    write_file_durably(target, b"old")
    write_file_durably(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
