"""Blob stores: streamed, capped, durable, content-addressed, and verified when read back.

The contract tests take `store` and run over both backends: files in a folder and an S3 bucket (moto's server,
with pins in a SQLite database); the tests of paths, folders and durable files are the file store's own (what a
crash leaves: test_blob_durability.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from loravault.core import (
    AlreadyExistsError,
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    ResourceExhaustedError,
)
from loravault.server.vault import s3blobs
from loravault.server.vault.blob_backend import open_blob_store
from loravault.server.vault.blobs import BlobStore
from loravault.server.vault.database import open_engine, upgrade
from loravault.server.vault.durable import TEMP_PREFIX, write_file_durably


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path, blob_location) -> Iterator:
    """A blob store of each backend (see tests/conftest.py blob_location)."""
    blobs, endpoint = blob_location
    engine = open_engine(f"sqlite:///{tmp_path / 'pins.db'}")
    upgrade(engine)
    opened = open_blob_store(blobs, data_dir=tmp_path, engine=engine, s3_endpoint=endpoint)
    yield opened
    opened.close()
    engine.dispose()


def _overwrite(store, sha256: str, data: bytes) -> None:
    if isinstance(store, BlobStore):
        store.path_for(sha256).write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=str(store.path_for(sha256)), Body=data)


def test_a_streamed_blob_is_content_addressed_and_reads_back_on_every_backend(store):
    writer = store.new_writer(max_bytes=100)
    for chunk in (b"hello ", b"world"):
        writer.write(chunk)
    staged = writer.finish()
    digest = hashlib.sha256(b"hello world").hexdigest()
    assert (staged.sha256, staged.size, staged.path) == (digest, 11, store.path_for(digest))
    assert store.read(digest) == b"hello world"
    assert store.stored_digests() == [digest] and store.stale_temps() == []
    store.check_staged(staged)
    store.release(digest)
    with pytest.raises(FailedPreconditionError, match="not staged"):
        store.check_staged(staged)


def test_a_cap_refusal_and_an_abort_leave_nothing_on_every_backend(store):
    writer = store.new_writer(max_bytes=10)
    writer.write(b"12345678")
    with pytest.raises(ResourceExhaustedError, match="limit of 10 bytes"):
        writer.write(b"abc")
    assert writer.size == 8
    with pytest.raises(InvalidArgumentError):
        writer.write(b"x")
    with store.new_writer(max_bytes=100) as second:
        second.write(b"partial")
    assert store.stored_digests() == [] and store.stale_temps() == []


def test_corrupted_and_missing_blobs_are_data_loss_on_every_backend(store):
    writer = store.new_writer(max_bytes=100)
    writer.write(b"original bytes")
    staged = writer.finish()
    _overwrite(store, staged.sha256, b"tampered bytes")
    with pytest.raises(DataLossError, match="corrupt"):
        store.read(staged.sha256)
    with store.open(staged.sha256) as reader, pytest.raises(DataLossError, match="corrupt"):
        list(reader.chunks(4))
    assert store.hash_file(staged.sha256) == hashlib.sha256(b"tampered bytes").hexdigest()
    with pytest.raises(DataLossError, match="missing"):
        store.read("0" * 64)
    assert store.hash_file("0" * 64) is None


def test_a_pinned_blob_survives_deletion_until_released_on_every_backend(store):
    writer = store.new_writer(max_bytes=100)
    writer.write(b"staged")
    digest = writer.finish().sha256
    assert store.is_pinned(digest)
    assert store.delete_unreferenced([digest], is_referenced=lambda _: False) == []
    store.release(digest)
    assert store.delete_unreferenced([digest], is_referenced=lambda _: True) == []  # a version uses it
    assert store.delete_unreferenced([digest], is_referenced=lambda _: False) == [digest]
    assert not store.exists(digest) and store.stored_digests() == []


@pytest.mark.parametrize(
    "digest",
    ["../" + "0" * 61, "A" * 64, "0" * 63, "0" * 65, "/etc/passwd", ""],
    ids=["dot-dot", "uppercase", "short", "long", "absolute-path", "empty"],
)
def test_digest_that_is_not_sha256_hex_never_names_a_path_on_every_backend(store, digest):
    with pytest.raises(InvalidArgumentError):
        store.open(digest)
    with pytest.raises(InvalidArgumentError):
        store.exists(digest)
    with pytest.raises(InvalidArgumentError):
        store.hash_file(digest)


def test_a_large_blob_goes_up_in_parts_and_reads_back(tmp_path, s3_bucket, s3_endpoint, monkeypatch):
    """Multipart: at most one part in memory, a temporary object copied to its digest, nothing left over.
    The part size is lowered to S3's minimum (5 MiB) so the test moves 11 MiB, not 17."""
    monkeypatch.setattr(s3blobs, "PART_BYTES", 5 << 20)
    engine = open_engine(f"sqlite:///{tmp_path / 'pins.db'}")
    upgrade(engine)
    store = open_blob_store(s3_bucket, data_dir=tmp_path, engine=engine, s3_endpoint=s3_endpoint)
    data = os.urandom(11 << 20)
    sent: list[int] = []
    real_upload_part = store.client.upload_part
    monkeypatch.setattr(store.client, "upload_part",
                        lambda **kw: (sent.append(len(kw["Body"])), real_upload_part(**kw))[1])
    writer = store.new_writer(max_bytes=len(data))
    for offset in range(0, len(data), 1 << 20):
        writer.write(data[offset:offset + (1 << 20)])
        assert len(writer._buffer) < s3blobs.PART_BYTES  # never more than one part buffered
    staged = writer.finish()
    assert sent == [5 << 20, 5 << 20, 1 << 20]
    assert staged.sha256 == hashlib.sha256(data).hexdigest() and store.read(staged.sha256) == data
    assert store.stored_digests() == [staged.sha256]
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=f"{store.prefix}/tmp/")
    assert listed.get("KeyCount", 0) == 0
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    engine.dispose()


def test_a_blob_over_one_copy_call_is_copied_to_its_digest_in_parts(tmp_path, s3_bucket, s3_endpoint, monkeypatch):
    """CopyObject stops at 5 GiB: above COPY_IN_ONE_CALL the temporary object reaches its final key by a
    multipart copy. The limit is lowered to 5 MiB so the test copies 11 MiB."""
    monkeypatch.setattr(s3blobs, "PART_BYTES", 5 << 20)
    monkeypatch.setattr(s3blobs, "COPY_IN_ONE_CALL", 5 << 20)
    engine = open_engine(f"sqlite:///{tmp_path / 'pins.db'}")
    upgrade(engine)
    store = open_blob_store(s3_bucket, data_dir=tmp_path, engine=engine, s3_endpoint=s3_endpoint)
    copied: list[str] = []
    real_part_copy = store.client.upload_part_copy
    monkeypatch.setattr(store.client, "upload_part_copy",
                        lambda **kw: (copied.append(kw["CopySourceRange"]), real_part_copy(**kw))[1])
    data = os.urandom(11 << 20)
    writer = store.new_writer(max_bytes=len(data))
    writer.write(data)
    staged = writer.finish()
    assert len(copied) == 3
    assert store.read(staged.sha256) == data and store.stored_digests() == [staged.sha256]
    engine.dispose()


def test_a_missing_bucket_is_refused_at_open(tmp_path, s3_endpoint):
    engine = open_engine(f"sqlite:///{tmp_path / 'pins.db'}")
    with pytest.raises(FailedPreconditionError, match="does not exist"):
        open_blob_store("s3://no-such-bucket/x", data_dir=tmp_path, engine=engine, s3_endpoint=s3_endpoint)
    engine.dispose()


@pytest.mark.parametrize("url", ["s3://", "s3://UPPER/x", "file:///tmp", "s3://a/../b", "s3://b/x y"],
                         ids=["no-bucket", "uppercase", "not-s3", "dot-dot", "space"])
def test_a_malformed_blob_location_is_refused(url):
    with pytest.raises(InvalidArgumentError, match="not s3://bucket"):
        s3blobs.parse_s3_url(url)


# the file store's own: paths, folders, durable files


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


def test_the_store_makes_its_256_folders_once_and_a_reopened_store_reads_every_blob(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [f"{i:02x}" for i in range(256)]
    writer = store.new_writer(max_bytes=100)
    writer.write(b"merged")
    staged = writer.finish()
    assert staged.path.parent == tmp_path / "blobs" / staged.sha256[:2]
    reopened = BlobStore(tmp_path / "blobs")
    assert reopened.read(staged.sha256) == b"merged" and _files(tmp_path / "blobs") == [staged.path]
    assert reopened.stale_temps() == []


@pytest.mark.parametrize("size", [0, 1, 4095, 4097, (1 << 20) + 1, (3 << 20) + 12345])
@pytest.mark.parametrize("chunk", [1000, 1 << 20])
def test_streamed_bytes_land_exactly_whatever_the_sizes(tmp_path, size, chunk):
    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(size)
    writer = store.new_writer(max_bytes=size)
    for offset in range(0, size, chunk):
        writer.write(data[offset : offset + chunk])
    staged = writer.finish()
    assert (staged.sha256, staged.size) == (hashlib.sha256(data).hexdigest(), size)
    assert staged.path.read_bytes() == data and _files(tmp_path / "blobs") == [staged.path]


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


def test_a_blob_read_hands_its_pages_back_when_the_reader_closes(tmp_path, monkeypatch):
    """The page-cache hint a download leaves (see BlobReader.close): asked once, for the whole file, after the
    verified read, and refusal is harmless."""
    store = BlobStore(tmp_path / "blobs")
    writer = store.new_writer(max_bytes=100)
    writer.write(b"adapter bytes")
    staged = writer.finish()
    advised = []

    def advise(fd, offset, length, advice):
        advised.append((os.path.samefile(f"/proc/self/fd/{fd}", staged.path), offset, length, advice))
        raise OSError("refused")

    monkeypatch.setattr(os, "posix_fadvise", advise)
    with store.open(staged.sha256) as reader:
        assert reader.read_all() == b"adapter bytes" and advised == []
    assert advised == [(True, 0, 0, os.POSIX_FADV_DONTNEED)]
