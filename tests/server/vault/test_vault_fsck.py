"""fsck finds missing, corrupt, orphaned and leftover files; repair removes only what is safe to remove."""

from __future__ import annotations

import hashlib

import pytest
from vault_testkit import FINGERPRINT, adapter_bytes, blob_exists, overwrite_blob, remove_blob, stage, upload

from loravault.core import UnavailableError
from loravault.server.vault import Vault, s3blobs
from loravault.server.vault.blobs import BlobStore
from loravault.server.vault.durable import TEMP_PREFIX


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plant_leftover(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> str:
    """Debris of a crashed writer, as fsck names it: a temporary file, or an unfinished multipart upload old
    enough to be stale (STALE_TEMP_S set to 0: moto has no clock to move)."""
    store = vault._store
    if isinstance(store, BlobStore):
        (store.root / f"{TEMP_PREFIX}crashed").write_bytes(b"half an upload")
        return f"{TEMP_PREFIX}crashed"
    monkeypatch.setattr(s3blobs, "STALE_TEMP_S", 0)
    key = f"{store.prefix}/tmp/crashed"
    upload_id = store.client.create_multipart_upload(Bucket=store.bucket, Key=key)["UploadId"]
    return f"upload tmp/crashed {upload_id}"


def test_fsck_of_a_healthy_vault_is_clean(acme):
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=1)  # same blob twice
    report = acme.adapters.fsck()
    assert report.clean
    assert (report.checked_versions, report.checked_blobs) == (2, 1)


def test_fsck_reports_a_corrupted_blob_and_repair_keeps_it(acme):
    version = upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    overwrite_blob(acme, version.blob_sha256, b"bit rot")
    report = acme.adapters.fsck(repair=True)
    assert report.corrupt == (version.blob_sha256,)
    assert report.missing == () and report.removed == ()
    assert not report.clean
    assert blob_exists(acme, version.blob_sha256)  # evidence is kept; only a backup can restore it


def test_fsck_reports_a_missing_blob(acme):
    version = upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    remove_blob(acme, version.blob_sha256)
    report = acme.adapters.fsck()
    assert report.missing == (version.blob_sha256,)
    assert report.corrupt == ()


def test_orphans_and_temp_files_are_reported_then_removed_by_repair(acme, monkeypatch):
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    orphan = adapter_bytes(2)
    overwrite_blob(acme, _sha(orphan), orphan)  # as if a crash hit between a purge's commit and its unlink
    leftover = plant_leftover(acme, monkeypatch)

    report = acme.adapters.fsck()
    assert report.orphans == (_sha(orphan),)
    assert report.temp_files == (leftover,)
    assert blob_exists(acme, _sha(orphan)) and leftover in acme._store.stale_temps()

    repaired = acme.adapters.fsck(repair=True)
    assert set(repaired.removed) == {_sha(orphan), leftover}
    assert not blob_exists(acme, _sha(orphan)) and acme._store.stale_temps() == []
    assert acme.adapters.fsck().clean


def test_a_staged_blob_and_a_live_writer_are_not_debris(acme):
    staged = stage(acme, adapter_bytes(3))
    writer = acme.adapters.new_blob_writer(max_bytes=100)
    writer.write(b"in flight")
    report = acme.adapters.fsck(repair=True)
    assert report.orphans == () and report.temp_files == ()
    assert blob_exists(acme, staged.sha256)
    writer.abort()
    acme.adapters.discard_blob(staged)
    assert not blob_exists(acme, staged.sha256)


def test_reopening_removes_temp_files_left_by_a_crash(tmp_path):
    """Files only: a data folder has one owner, so everything temporary in it at open is a crash's debris
    (a bucket shared by replicas trusts only age: see test_vault_s3.py)."""
    data = tmp_path / "data"
    with Vault.open(data, base_fingerprint=FINGERPRINT) as first:
        writer = first.adapters.new_blob_writer(max_bytes=100)
        writer.write(b"interrupted upload")  # never finished: as if the process died here
        leftover = writer._file.temp_path
    assert leftover.exists()
    with Vault.open(data, base_fingerprint=FINGERPRINT) as second:
        assert not leftover.exists()
        assert second.adapters.fsck().clean


def test_a_second_open_vault_on_the_same_folder_is_refused(sqlite_vault, tmp_path):
    vault = sqlite_vault
    with pytest.raises(UnavailableError, match="in use by another open vault"):
        Vault.open(tmp_path / "data", base_fingerprint=FINGERPRINT)
    vault.close()
    Vault.open(tmp_path / "data", base_fingerprint=FINGERPRINT).close()  # the lock went with close
