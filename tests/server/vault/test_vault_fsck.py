"""fsck finds missing, corrupt, orphaned and leftover files; repair removes only what is safe to remove."""

from __future__ import annotations

import hashlib

import pytest
from vault_testkit import FINGERPRINT, adapter_bytes, stage, upload

from loravault.core import UnavailableError
from loravault.server.vault import Vault
from loravault.server.vault.durable import TEMP_PREFIX


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fsck_of_a_healthy_vault_is_clean(acme):
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=1)  # same blob twice
    report = acme.fsck()
    assert report.clean
    assert (report.checked_versions, report.checked_blobs) == (2, 1)


def test_fsck_reports_a_corrupted_blob_and_repair_keeps_it(acme):
    version = upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    path = acme._store.path_for(version.blob_sha256)
    path.write_bytes(b"bit rot")
    report = acme.fsck(repair=True)
    assert report.corrupt == (version.blob_sha256,)
    assert report.missing == () and report.removed == ()
    assert not report.clean
    assert path.exists()  # evidence is kept; only a backup can restore it


def test_fsck_reports_a_missing_blob(acme):
    version = upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    acme._store.path_for(version.blob_sha256).unlink()
    report = acme.fsck()
    assert report.missing == (version.blob_sha256,)
    assert report.corrupt == ()


def test_orphans_and_temp_files_are_reported_then_removed_by_repair(acme):
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    orphan = adapter_bytes(2)
    orphan_path = acme._store.path_for(_sha(orphan))
    orphan_path.parent.mkdir(exist_ok=True)
    orphan_path.write_bytes(orphan)  # as if a crash hit between a purge's commit and its unlink
    leftover = acme._store.root / f"{TEMP_PREFIX}crashed"
    leftover.write_bytes(b"half an upload")

    report = acme.fsck()
    assert report.orphans == (_sha(orphan),)
    assert report.temp_files == (leftover.name,)
    assert orphan_path.exists() and leftover.exists()

    repaired = acme.fsck(repair=True)
    assert set(repaired.removed) == {_sha(orphan), leftover.name}
    assert not orphan_path.exists() and not leftover.exists()
    assert acme.fsck().clean


def test_a_staged_blob_and_a_live_writer_are_not_debris(acme):
    staged = stage(acme, adapter_bytes(3))
    writer = acme.new_blob_writer(max_bytes=100)
    writer.write(b"in flight")
    report = acme.fsck(repair=True)
    assert report.orphans == () and report.temp_files == ()
    assert staged.path.exists()
    writer.abort()
    acme.discard_blob(staged)
    assert not staged.path.exists()


def test_reopening_removes_temp_files_left_by_a_crash(tmp_path):
    data = tmp_path / "data"
    with Vault.open(data, base_fingerprint=FINGERPRINT) as first:
        writer = first.new_blob_writer(max_bytes=100)
        writer.write(b"interrupted upload")  # never finished: as if the process died here
        leftover = writer._file.temp_path
    assert leftover.exists()
    with Vault.open(data, base_fingerprint=FINGERPRINT) as second:
        assert not leftover.exists()
        assert second.fsck().clean


def test_a_second_open_vault_on_the_same_folder_is_refused(vault, tmp_path):
    with pytest.raises(UnavailableError, match="in use by another open vault"):
        Vault.open(tmp_path / "data", base_fingerprint=FINGERPRINT)
    vault.close()
    Vault.open(tmp_path / "data", base_fingerprint=FINGERPRINT).close()  # the lock went with close
