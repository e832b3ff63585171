"""The head moves only by compare-and-swap on the parent version."""

from __future__ import annotations

import hashlib
import threading

import pytest
from vault_testkit import adapter_bytes, blob_exists, stage, upload

from loravault.core import AbortedError, FailedPreconditionError, InvalidArgumentError, NotFoundError

THREADS = 8


def test_versions_number_from_one_and_chain_their_parents(acme):
    first = upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    second = upload(acme, tenant="acme", adapter="support", data=adapter_bytes(2), parent=1)
    assert (first.number, first.parent, second.number, second.parent) == (1, None, 2, 1)
    assert acme.adapters.get_adapter(tenant="acme", name="support").head_version == 2
    assert acme.adapters.get_version(tenant="acme", adapter="support") == second
    assert acme.adapters.read_version_blob(tenant="acme", adapter="support", version=1) == adapter_bytes(1)


def test_stale_parent_is_aborted_naming_the_head(acme):
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(2), parent=1)
    with pytest.raises(AbortedError, match=r"acme/support: parent version 1 is not the head \(head is 2\)"):
        upload(acme, tenant="acme", adapter="support", data=adapter_bytes(3), parent=1)


def test_concurrent_commits_on_one_parent_have_exactly_one_winner(acme):
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(0), parent=0)
    staged = [stage(acme, adapter_bytes(100 + i)) for i in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    wins, losses, other = [], [], []

    def commit(index: int) -> None:
        barrier.wait()
        try:
            wins.append(acme.adapters.commit_version(tenant="acme", adapter="support", parent_version=1, blob=staged[index]))
        except AbortedError as error:
            losses.append(error)
        except Exception as error:  # noqa: BLE001 (collected and asserted below)
            other.append(error)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert other == []
    assert len(wins) == 1 and len(losses) == THREADS - 1
    assert all("head is 2" in str(error) for error in losses)
    assert [v.number for v in acme.adapters.list_versions(tenant="acme", adapter="support")] == [1, 2]
    # the losers' blobs were deleted; only the two committed ones remain
    assert acme.adapters.fsck().orphans == ()
    assert sorted(acme._store.stored_digests()) == sorted({adapter_bytes_sha(0), wins[0].blob_sha256})


def adapter_bytes_sha(seed: int) -> str:
    return hashlib.sha256(adapter_bytes(seed)).hexdigest()


def test_writers_that_retry_on_abort_lose_no_update(acme):
    per_thread, workers = 4, 4
    errors = []

    def writer(worker: int) -> None:
        try:
            for i in range(per_thread):
                data = adapter_bytes(1000 * worker + i)
                while True:
                    head = acme.adapters.get_adapter(tenant="acme", name="support").head_version
                    try:
                        upload(acme, tenant="acme", adapter="support", data=data, parent=head)
                        break
                    except AbortedError:
                        continue
        except Exception as error:  # noqa: BLE001 (asserted below)
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    versions = acme.adapters.list_versions(tenant="acme", adapter="support")
    assert [v.number for v in versions] == list(range(1, per_thread * workers + 1))
    assert len({v.blob_sha256 for v in versions}) == per_thread * workers


def test_refused_commit_leaves_every_piece_of_state_unchanged(acme):
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    before = (acme.adapters.get_adapter(tenant="acme", name="support"), acme.adapters.list_versions(tenant="acme", adapter="support"))
    blob = stage(acme, adapter_bytes(2))
    with pytest.raises(AbortedError):
        acme.adapters.commit_version(tenant="acme", adapter="support", parent_version=0, blob=blob)
    after = (acme.adapters.get_adapter(tenant="acme", name="support"), acme.adapters.list_versions(tenant="acme", adapter="support"))
    assert after == before
    assert not blob_exists(acme, blob.sha256)


def test_staged_blob_is_consumed_by_a_commit(acme):
    blob = stage(acme, adapter_bytes(1))
    acme.adapters.commit_version(tenant="acme", adapter="support", parent_version=0, blob=blob)
    with pytest.raises(FailedPreconditionError, match="not staged"):
        acme.adapters.commit_version(tenant="acme", adapter="support", parent_version=1, blob=blob)
    assert acme.adapters.get_adapter(tenant="acme", name="support").head_version == 1


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"parent_version": -1}, InvalidArgumentError),
        ({"parent_version": True}, InvalidArgumentError),
        ({"kind": "erasure"}, InvalidArgumentError),
        ({"kind": "rollback"}, InvalidArgumentError),
        ({"manifest_hash": "not-a-hash"}, InvalidArgumentError),
        ({"adapter": "missing"}, NotFoundError),
    ],
    ids=["negative-parent", "bool-parent", "erasure-kind", "rollback-kind", "bad-manifest-hash", "no-adapter"],
)
def test_invalid_commit_is_refused_and_deletes_the_staged_blob(acme, kwargs, error):
    blob = stage(acme, adapter_bytes(1))
    arguments = {"tenant": "acme", "adapter": "support", "parent_version": 0, "blob": blob, **kwargs}
    with pytest.raises(error):
        acme.adapters.commit_version(**arguments)
    assert acme.adapters.get_adapter(tenant="acme", name="support").head_version == 0
    assert not blob_exists(acme, blob.sha256)


def test_first_version_needs_parent_zero(acme):
    with pytest.raises(AbortedError, match="head is 0"):
        upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=1)
