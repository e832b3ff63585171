"""Hypothesis state machine over uploads, erasures (valid, replayed, stale, malformed), rollbacks and server
restarts: refused requests change nothing, versions only grow, every live blob hashes right, the audit chain
verifies, and nothing below the erasure floor can be read. Bounded: few examples of few steps."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from loravault.core import (
    AbortedError,
    FailedPreconditionError,
    InvalidArgumentError,
    LoravaultError,
    load_base,
)
from loravault.server.audit import AuditLog, verify_chain

from .erasure_kit import ADAPTER, World, make_world, messages, start_erasure_server, vault_state


@functools.cache
def _tiny():
    return load_base("tiny")


class ErasureMachine(RuleBasedStateMachine):
    root: Path  # set per test run
    new_database: Callable[[], str | None]  # per example: None (SQLite in its folder) or a new PostgreSQL one

    def __init__(self) -> None:
        super().__init__()
        ErasureMachine.examples += 1
        self.data = self.root / f"example-{ErasureMachine.examples}"
        self.data.mkdir()
        self.database_url = ErasureMachine.new_database()
        self.running, self.grpc_server = start_erasure_server(self.data, _tiny(), database_url=self.database_url)
        self.world: World = make_world(self.running)
        self.committed: list = []  # (submission, receipt) of committed erasures
        self.max_head = self._adapter().head_version

    examples = 0
    erasures = 0  # committed over all examples, so the test can show the machine did erase

    def teardown(self) -> None:
        ErasureMachine.erasures += len(self.committed)
        self.world.client.close()
        self.grpc_server.stop(None)
        self.running.vault.close()

    def _adapter(self):
        return self.world.client.get_adapter(ADAPTER)

    def _refused(self, call, *errors: type[LoravaultError]) -> None:
        before = vault_state(self.running)
        with pytest.raises(errors):
            call()
        assert vault_state(self.running) == before

    @rule(scale=st.floats(0.001, 0.1))
    def upload(self, scale: float) -> None:
        head = self.world.head()[2]
        self.world.client.upload_tensors(ADAPTER, {k: v + scale for k, v in head.items()})

    @rule(ratio=st.floats(0.01, 0.5), seed=st.integers(0, 3))
    def erase(self, ratio: float, seed: int) -> None:
        from .erasure_kit import synthetic_delta

        sub = self.world.submission(delta=synthetic_delta(self.world.head()[2], ratio=ratio, seed=seed))
        receipt = self.world.client.submit_erasure(ADAPTER, envelope=sub.envelope, delta=sub.delta)
        assert receipt.version.blob_sha256 == sub.manifest.result_hash
        self.committed.append((sub, receipt))

    @precondition(lambda self: self.committed)
    @rule(pick=st.integers(0, 10))
    def replay(self, pick: int) -> None:
        sub, receipt = self.committed[pick % len(self.committed)]
        before = vault_state(self.running)
        again = self.world.client.submit_erasure(ADAPTER, envelope=sub.envelope, delta=sub.delta)
        assert (again.envelope, again.log_index) == (receipt.envelope, receipt.log_index)
        assert vault_state(self.running) == before

    @precondition(lambda self: self._adapter().head_version >= 2)
    @rule()
    def erase_stale(self) -> None:
        versions = self.world.client.versions(ADAPTER)
        old = versions[-2]
        sub = self.world.submission(parent_version=old.number, parent_hash=old.blob_sha256)
        self._refused(lambda: self.world.client.submit_erasure(ADAPTER, envelope=sub.envelope, delta=sub.delta),
                      AbortedError, FailedPreconditionError)

    @rule()
    def erase_malformed(self) -> None:
        sub = self.world.submission()
        self._refused(lambda: self.world.raw_submit(messages(sub, envelope=b"not json")), Exception)

    @rule(data=st.data())
    def rollback(self, data: st.DataObject) -> None:
        adapter = self._adapter()
        low = max(adapter.erasure_floor, 1)
        target = data.draw(st.integers(1, adapter.head_version))
        if low <= target < adapter.head_version:
            self.world.client.rollback(ADAPTER, target)
        else:
            self._refused(lambda: self.world.client.rollback(ADAPTER, target), FailedPreconditionError)

    @rule()
    def restart(self) -> None:
        self.world.client.close()
        self.grpc_server.stop(None)
        self.running.vault.close()
        self.running, self.grpc_server = start_erasure_server(self.data, _tiny(), database_url=self.database_url)
        self.world.server = self.running
        self.world.client = self.running.client(self.world.token)

    @invariant()
    def versions_only_grow_and_blobs_hash_right(self) -> None:
        adapter = self._adapter()
        versions = self.world.client.versions(ADAPTER)
        assert adapter.head_version >= self.max_head and len(versions) == adapter.head_version
        self.max_head = adapter.head_version
        report = self.running.vault.adapters.fsck()
        assert report.clean, report

    @invariant()
    def audit_chain_verifies_with_one_entry_per_erasure(self) -> None:
        entries = list(AuditLog(self.running.vault, signer=None).entries())
        assert verify_chain(entries).size == len(self.committed)

    @invariant()
    def nothing_below_the_floor_is_readable(self) -> None:
        adapter = self._adapter()
        for version in self.world.client.versions(ADAPTER):
            assert version.purged == (version.number < adapter.erasure_floor)
        if adapter.erasure_floor > 1:
            with pytest.raises(FailedPreconditionError, match="purged"):
                self.world.client.download_tensors(ADAPTER, version=adapter.erasure_floor - 1)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_erasure_state_machine(tmp_path, tiny, database, request):
    _tiny.cache_clear()
    ErasureMachine.root = tmp_path
    if database == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        ErasureMachine.new_database = lambda: cluster.url(cluster.create_database())
    else:
        ErasureMachine.new_database = lambda: None
    ErasureMachine.examples = ErasureMachine.erasures = 0
    torch.manual_seed(0)
    run_state_machine_as_test(ErasureMachine, settings=settings(
        max_examples=6, stateful_step_count=10, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
    assert ErasureMachine.examples >= 6 and ErasureMachine.erasures >= 2
