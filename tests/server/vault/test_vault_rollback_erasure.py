"""Rollback reuses an older blob; an erasure raises the floor and purges everything older."""

from __future__ import annotations

import pytest
from vault_testkit import MANIFEST, adapter_bytes, blob_exists, erase, overwrite_blob, stage, upload

from loravault.core import AbortedError, DataLossError, FailedPreconditionError, NotFoundError


def _three_uploads(vault) -> list:
    return [upload(vault, tenant="acme", adapter="support", data=adapter_bytes(i), parent=i - 1) for i in (1, 2, 3)]


def test_rollback_adds_a_version_with_the_older_blob(acme):
    first, _, _ = _three_uploads(acme)
    rolled = acme.adapters.rollback(tenant="acme", adapter="support", to_version=1, parent_version=3)
    assert (rolled.number, rolled.parent, rolled.kind, rolled.blob_sha256) == (4, 3, "rollback", first.blob_sha256)
    assert acme.adapters.read_version_blob(tenant="acme", adapter="support") == adapter_bytes(1)


def test_rollback_on_a_stale_parent_is_aborted(acme):
    _three_uploads(acme)
    with pytest.raises(AbortedError, match="head is 3"):
        acme.adapters.rollback(tenant="acme", adapter="support", to_version=1, parent_version=2)
    assert acme.adapters.get_adapter(tenant="acme", name="support").head_version == 3


@pytest.mark.parametrize(
    ("target", "error"), [(3, FailedPreconditionError), (9, NotFoundError)], ids=["head", "future"]
)
def test_rollback_to_the_head_or_a_future_version_is_refused(acme, target, error):
    _three_uploads(acme)
    with pytest.raises(error):
        acme.adapters.rollback(tenant="acme", adapter="support", to_version=target, parent_version=3)
    assert acme.adapters.get_adapter(tenant="acme", name="support").head_version == 3


def test_rollback_to_a_corrupted_blob_is_refused(acme):
    first, _, _ = _three_uploads(acme)
    overwrite_blob(acme, first.blob_sha256, b"rot")
    with pytest.raises(DataLossError):
        acme.adapters.rollback(tenant="acme", adapter="support", to_version=1, parent_version=3)
    assert acme.adapters.get_adapter(tenant="acme", name="support").head_version == 3


def test_erasure_raises_the_floor_and_purges_older_versions_and_their_blobs(acme):
    old = _three_uploads(acme)
    erased = erase(acme, tenant="acme", adapter="support", data=adapter_bytes(9), parent=3)
    assert (erased.number, erased.kind, erased.manifest_hash) == (4, "erasure", MANIFEST)
    adapter = acme.adapters.get_adapter(tenant="acme", name="support")
    assert (adapter.head_version, adapter.floor) == (4, 4)
    versions = acme.adapters.list_versions(tenant="acme", adapter="support")
    assert [(v.number, v.purged) for v in versions] == [(1, True), (2, True), (3, True), (4, False)]
    assert [v.blob_sha256 for v in versions[:3]] == [v.blob_sha256 for v in old]  # hashes kept
    assert all(not blob_exists(acme, v.blob_sha256) for v in old)
    assert acme.adapters.fsck().clean


@pytest.mark.parametrize("target", [1, 3], ids=["oldest", "just-below-floor"])
def test_nothing_below_the_floor_can_be_rolled_back_to_or_downloaded(acme, target):
    _three_uploads(acme)
    erase(acme, tenant="acme", adapter="support", data=adapter_bytes(9), parent=3)
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(10), parent=4)
    with pytest.raises(FailedPreconditionError, match="below the erasure floor v4"):
        acme.adapters.rollback(tenant="acme", adapter="support", to_version=target, parent_version=5)
    with pytest.raises(FailedPreconditionError, match="purged"):
        acme.adapters.read_version_blob(tenant="acme", adapter="support", version=target)
    with pytest.raises(FailedPreconditionError, match="purged"):
        acme.adapters.open_version_blob(tenant="acme", adapter="support", version=target)
    assert acme.adapters.get_adapter(tenant="acme", name="support").head_version == 5


def test_rollback_to_the_erasure_version_itself_is_allowed(acme):
    _three_uploads(acme)
    erased = erase(acme, tenant="acme", adapter="support", data=adapter_bytes(9), parent=3)
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(10), parent=4)
    rolled = acme.adapters.rollback(tenant="acme", adapter="support", to_version=4, parent_version=5)
    assert rolled.blob_sha256 == erased.blob_sha256


def test_erasure_keeps_a_purged_blob_that_a_live_version_still_uses(acme):
    acme.credentials.create_tenant("globex")
    acme.adapters.create_adapter(tenant="globex", name="twin", schema=acme.adapters.get_adapter(tenant="acme", name="support").schema)
    shared = upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    upload(acme, tenant="globex", adapter="twin", data=adapter_bytes(1), parent=0)
    erase(acme, tenant="acme", adapter="support", data=adapter_bytes(9), parent=1)
    assert acme.adapters.get_version(tenant="acme", adapter="support", version=1).purged
    assert blob_exists(acme, shared.blob_sha256)
    assert acme.adapters.read_version_blob(tenant="globex", adapter="twin") == adapter_bytes(1)


def test_erasure_with_a_wrong_parent_hash_changes_nothing(acme):
    _three_uploads(acme)
    blob = stage(acme, adapter_bytes(9))
    with pytest.raises(FailedPreconditionError, match="recompute"):
        acme.adapters.erasure_commit(
            tenant="acme", adapter="support", parent_version=3, blob=blob, manifest_hash=MANIFEST,
            parent_sha256="0" * 64,
        )
    adapter = acme.adapters.get_adapter(tenant="acme", name="support")
    assert (adapter.head_version, adapter.floor) == (3, 0)
    assert not any(v.purged for v in acme.adapters.list_versions(tenant="acme", adapter="support"))
    assert not blob_exists(acme, blob.sha256)


def test_streaming_download_verifies_the_digest(acme):
    version = upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    with acme.adapters.open_version_blob(tenant="acme", adapter="support") as reader:
        assert b"".join(reader.chunks(16)) == adapter_bytes(1)
    overwrite_blob(acme, version.blob_sha256, adapter_bytes(2))
    with acme.adapters.open_version_blob(tenant="acme", adapter="support") as reader, pytest.raises(DataLossError):
        b"".join(reader.chunks(16))
