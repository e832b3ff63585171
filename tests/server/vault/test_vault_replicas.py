"""Two Vaults on one PostgreSQL database and one bucket, as two server replicas hold them: isolation levels,
the pool, the compare-and-swap across engines, the adapter lock, pins, purges, bootstrap and the server key."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from vault_testkit import FINGERPRINT, MANIFEST, adapter_bytes, blob_exists, make_schema, stage, upload

from loravault.core import AbortedError, FailedPreconditionError, UnavailableError
from loravault.server.vault import Vault, db_locks, pins
from loravault.server.vault.clock import utc_now
from loravault.server.vault.database import POOL_SIZE, read_transaction, write_transaction
from loravault.server.vault.tables import tenants

THREADS = 8


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str, s3_bucket: str, s3_endpoint: str) -> Iterator[tuple[Vault, Vault]]:
    """Vaults A and B (own data folders, own engines) on one database and one bucket, with acme/support."""
    opened = [Vault.open(tmp_path / name, base_fingerprint=FINGERPRINT, database_url=pg_url, blobs=s3_bucket,
                         s3_endpoint=s3_endpoint) for name in ("a", "b")]
    opened[0].credentials.create_tenant("acme")
    opened[0].adapters.create_adapter(tenant="acme", name="support", schema=make_schema())
    yield opened[0], opened[1]
    for vault in opened:
        vault.close()


def test_writes_run_read_committed_and_reads_one_read_only_snapshot(replicas):
    a, b = replicas
    with write_transaction(a._engine) as conn:
        assert conn.scalar(text("SHOW transaction_isolation")) == "read committed"
    with read_transaction(a._engine) as snapshot:
        assert snapshot.scalar(text("SHOW transaction_isolation")) == "repeatable read"
        assert snapshot.scalar(text("SHOW transaction_read_only")) == "on"
        before = list(snapshot.scalars(select(tenants.c.name)))
        b.credentials.create_tenant("globex")  # commits on another engine meanwhile
        assert list(snapshot.scalars(select(tenants.c.name))) == before  # one snapshot for the whole read
    assert {t.name for t in a.credentials.list_tenants()} == {"acme", "globex"}


def test_the_pool_is_bounded_and_survives_a_dropped_connection(replicas):
    a, _ = replicas
    assert a._engine.pool.size() == POOL_SIZE
    with a._engine.connect() as conn:
        backend = conn.scalar(text("SELECT pg_backend_pid()"))
    with replicas[1]._engine.connect() as other:  # the server drops A's idle pooled connection
        assert other.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    assert [t.name for t in a.credentials.list_tenants()] == ["acme"]  # pre-ping found it dead and reconnected


def test_commits_on_one_parent_from_two_replicas_have_exactly_one_winner(replicas):
    a, b = replicas
    upload(a, tenant="acme", adapter="support", data=adapter_bytes(0), parent=0)
    staged = [(vault, stage(vault, adapter_bytes(100 + i))) for i in range(THREADS) for vault in [(a, b)[i % 2]]]
    barrier = threading.Barrier(THREADS)
    wins, losses, other = [], [], []

    def commit(index: int) -> None:
        vault, blob = staged[index]
        barrier.wait(timeout=30)
        try:
            wins.append(vault.adapters.commit_version(tenant="acme", adapter="support", parent_version=1, blob=blob))
        except AbortedError as error:
            losses.append(error)
        except Exception as error:  # noqa: BLE001 (collected and asserted below)
            other.append(error)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert other == [] and len(wins) == 1 and len(losses) == THREADS - 1
    assert all("head is 2" in str(error) for error in losses)
    assert [v.number for v in b.adapters.list_versions(tenant="acme", adapter="support")] == [1, 2]
    assert sorted(a._store.stored_digests()) == sorted({v.blob_sha256 for v in a.adapters.list_versions(
        tenant="acme", adapter="support")})  # every loser's object is gone, on whichever replica it lost
    assert a.adapters.fsck().clean and b.adapters.fsck().clean


def _wait_for_a_lock_waiter(vault: Vault, *, seconds: float = 30) -> None:
    """Until some session of the database waits for an advisory lock (pg_locks: not granted)."""
    deadline = time.monotonic() + seconds
    while True:
        with vault._engine.connect() as conn:
            if conn.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")):
                return
        assert time.monotonic() < deadline, f"no session waited for an advisory lock in {seconds} s"
        time.sleep(0.02)


def test_the_adapter_lock_excludes_the_other_replica_and_times_out(replicas, monkeypatch):
    a, b = replicas
    order: list[str] = []
    with a.adapters.hold_adapter_lock(tenant="acme", adapter="support"):
        def second() -> None:
            with b.adapters.hold_adapter_lock(tenant="acme", adapter="support"):
                order.append("b")

        waiter = threading.Thread(target=second)
        waiter.start()
        _wait_for_a_lock_waiter(a)  # B is blocked on the lock A holds
        order.append("a")
        with b.adapters.hold_adapter_lock(tenant="acme", adapter="other"):  # another adapter never waits
            order.append("b-other")
    waiter.join(timeout=30)
    assert order == ["a", "b-other", "b"]
    monkeypatch.setattr(db_locks, "LOCK_TIMEOUT_S", 0.2)
    with a.adapters.hold_adapter_lock(tenant="acme", adapter="support"):
        with pytest.raises(UnavailableError, match="locked by another replica"):
            with b.adapters.hold_adapter_lock(tenant="acme", adapter="support"):
                pass
    with b.adapters.hold_adapter_lock(tenant="acme", adapter="support"):  # the timed-out wait left no lock behind
        order.append("b-again")
    assert order[-1] == "b-again"


def test_a_purge_on_one_replica_is_seen_by_the_other_at_once(replicas):
    a, b = replicas
    first = upload(a, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    assert b.adapters.read_version_blob(tenant="acme", adapter="support", version=1) == adapter_bytes(1)
    b.adapters.erasure_commit(tenant="acme", adapter="support", parent_version=1, blob=stage(b, adapter_bytes(2)),
                     manifest_hash=MANIFEST)
    with pytest.raises(FailedPreconditionError, match="purged"):
        a.adapters.read_version_blob(tenant="acme", adapter="support", version=1)
    with pytest.raises(FailedPreconditionError, match="purged"):
        a.adapters.open_version_blob(tenant="acme", adapter="support", version=1)
    assert not blob_exists(a, first.blob_sha256)
    assert a.adapters.read_version_blob(tenant="acme", adapter="support") == adapter_bytes(2)


def test_a_blob_staged_on_one_replica_survives_a_purge_of_the_same_bytes_on_the_other(replicas):
    a, b = replicas
    upload(a, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    pending = stage(b, adapter_bytes(1))  # B is about to commit the same bytes (another adapter, say)
    a.adapters.erasure_commit(tenant="acme", adapter="support", parent_version=1, blob=stage(a, adapter_bytes(2)),
                     manifest_hash=MANIFEST)  # purges v1, the last version using those bytes
    assert blob_exists(a, pending.sha256)  # B's pin kept it
    b.adapters.create_adapter(tenant="acme", name="copy", schema=make_schema())
    b.adapters.commit_version(tenant="acme", adapter="copy", parent_version=0, blob=pending)
    assert a.adapters.read_version_blob(tenant="acme", adapter="copy") == adapter_bytes(1)
    assert a.adapters.fsck().clean


def test_replicas_bootstrapping_at_once_issue_one_admin_token(replicas, tmp_path):
    a, b = replicas
    results: list[str | None] = []
    barrier = threading.Barrier(2)

    def bootstrap(vault: Vault, path: Path) -> None:
        barrier.wait(timeout=30)
        results.append(vault.credentials.ensure_admin_token(path))

    threads = [threading.Thread(target=bootstrap, args=(v, tmp_path / f"{n}.token")) for n, v in (("a", a), ("b", b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results, key=lambda r: r is None)[1] is None and sum(r is not None for r in results) == 1
    assert len(a.credentials.list_tokens()) == 1


def test_every_replica_must_sign_with_the_deployments_one_key(replicas):
    a, b = replicas
    public = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "00" * 32}}
    assert a.credentials.claim_server_key(keyid="11" * 32, public_key=public) is True
    assert b.credentials.claim_server_key(keyid="11" * 32, public_key=public) is False
    with pytest.raises(FailedPreconditionError, match="same key file"):
        b.credentials.claim_server_key(keyid="22" * 32, public_key=public)


def test_a_lost_serialization_race_becomes_aborted_not_a_driver_error(replicas):
    """A transaction PostgreSQL cannot serialize (here: forced by SERIALIZABLE) answers AbortedError (retry)."""
    a, b = replicas
    with pytest.raises(AbortedError, match="retry"):
        with write_transaction(a._engine) as first, write_transaction(b._engine) as second:
            for conn in (first, second):
                conn.execute(text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
                conn.scalar(select(tenants.c.id).where(tenants.c.name == "acme"))
            first.execute(insert(tenants).values(name="one", created_at=utc_now()))
            second.execute(insert(tenants).values(name="two", created_at=utc_now()))
            second.commit()  # commits; the first then cannot


def test_a_dead_replicas_pin_keeps_its_blob_until_fsck_finds_it_stale(replicas, monkeypatch):
    """A replica that dies between staging and committing leaves a pin row: the blob is kept (never lost), and
    once the pin is older than STALE_PIN_S, fsck --repair removes the pin, then the orphan."""
    a, b = replicas
    staged = stage(b, adapter_bytes(7))
    b._store._pins._mine.clear()  # B dies: its memory of the pin goes, the row stays
    assert a.adapters.fsck(repair=True).removed == () and blob_exists(a, staged.sha256)  # not stale yet: kept
    monkeypatch.setattr(pins, "STALE_PIN_S", 0)
    first = a.adapters.fsck(repair=True)
    assert [name.split()[0] for name in first.temp_files] == ["pin"] and first.orphans == ()
    second = a.adapters.fsck(repair=True)
    assert second.orphans == (staged.sha256,) and second.removed == (staged.sha256,)
    assert not blob_exists(a, staged.sha256) and a.adapters.fsck().clean
