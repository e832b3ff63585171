"""Three `loravault serve` processes on one PostgreSQL database and one bucket (moto's S3 server), as a
deployment behind a load balancer runs them: races on one adapter across replicas have exactly one winner
per parent version and ABORTED losers, nothing is lost, the audit chain stays linear and verifies, a receipt
verifies whichever replica issued it, and a purge on one replica is seen by every other at once (generations
in flight on another replica end within the purge watch's interval: tests/server/inference/test_purge_watch.py).

Bounded: three replicas, three racers per round, a few rounds, every wait with a timeout.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from loravault.client import VaultClient
from loravault.core import AbortedError, FailedPreconditionError, encode_tensors
from loravault.proto.keys import generate_private_key_pem, save_private_key
from loravault.proto.receipt import verify_receipt
from loravault.server.audit import verify_chain
from loravault.server.audit.chain import AuditEntry

from .conftest import RunningServer
from .erasure_kit import ADAPTER, World, make_world, start_server_process, synthetic_delta

REPLICAS = 3
pytestmark = pytest.mark.timeout(300)


class Deployment:
    """The replicas' processes and handles, and the store they share."""

    def __init__(self, root: Path, *, database_url: str, blobs: str, endpoint: str) -> None:
        self.database_url = database_url
        key = root / "server-key.pem"  # one key for the deployment, as a Secret would hand it to every replica
        save_private_key(key, generate_private_key_pem())
        self.args = ("--database-url", database_url, "--blobs", blobs, "--s3-endpoint", endpoint,
                     "--server-key", str(key))
        self.processes: list[subprocess.Popen] = []
        self.servers: list[RunningServer] = []
        self.root = root

    def start(self) -> None:
        """The first replica bootstraps the admin token; the others start together and find it issued."""
        first, server = start_server_process(self.root / "r0", args=self.args)
        self.processes.append(first)
        self.servers.append(server)
        started: list[tuple[int, subprocess.Popen, RunningServer]] = []

        def start(number: int) -> None:
            process, running = start_server_process(self.root / f"r{number}", args=self.args, token=server.admin_token)
            started.append((number, process, running))

        threads = [threading.Thread(target=start, args=(n,)) for n in range(1, REPLICAS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        for _, process, running in sorted(started, key=lambda item: item[0]):
            self.processes.append(process)
            self.servers.append(running)
        assert len(self.servers) == REPLICAS, "a replica did not start"
        assert not any((self.root / f"r{n}" / "admin.token").exists() for n in range(1, REPLICAS))

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, pg_cluster, s3_endpoint) -> Iterator[Deployment]:
    bucket = f"replicas-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    database = pg_cluster.create_database()
    running = Deployment(tmp_path_factory.mktemp("replicas"), database_url=pg_cluster.url(database),
                         blobs=f"s3://{bucket}/vault", endpoint=s3_endpoint)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def world(deployment: Deployment) -> World:
    """Tenant acme with its keys and adapter support at v2, made through replica 0."""
    return make_world(deployment.servers[0])


def _clients(deployment: Deployment, token: str) -> list[VaultClient]:
    return [VaultClient(server.target, token=token, timeout=60) for server in deployment.servers]


def _race(calls: list[Callable[[], object]]) -> tuple[list[object], list[BaseException]]:
    """Run the calls at once (one thread each, released together); their results and their errors."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = []
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        barrier.wait(timeout=30)
        try:
            results.append(call())
        except BaseException as exc:  # noqa: BLE001 (returned to the test, which asserts on them)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    return results, errors


def test_replicas_share_one_admin_token_and_one_server_key(deployment, world):
    keys = []
    for client in _clients(deployment, deployment.servers[0].admin_token):
        with client:
            assert client.whoami().role == "admin"
            keys.append(client.server_key())
    assert keys[0] == keys[1] == keys[2]


def test_uploads_racing_on_one_parent_across_replicas_have_one_winner(deployment, world):
    clients = _clients(deployment, world.token)
    _, _, tensors = world.head()
    for round_number in range(2):
        parent = world.client.get_adapter(ADAPTER).head_version
        calls = [lambda c=c, n=n: c.upload_bytes(ADAPTER, encode_tensors(
            {k: v + 0.001 * (10 * round_number + n + 1) for k, v in tensors.items()}), parent_version=parent)
            for n, c in enumerate(clients)]
        wins, losses = _race(calls)
        assert len(wins) == 1 and len(losses) == REPLICAS - 1
        assert all(isinstance(error, AbortedError) for error in losses), losses
        assert world.client.get_adapter(ADAPTER).head_version == parent + 1
        for client in clients:  # every replica reads the winner, verified, from the shared bucket
            _, version, _ = client.download_tensors(ADAPTER)
            assert version.blob_sha256 == wins[0].blob_sha256
    for client in clients:
        client.close()


def test_rollbacks_racing_across_replicas_have_one_winner(deployment, world):
    clients = _clients(deployment, world.token)
    adapter = world.client.get_adapter(ADAPTER)
    target = max(adapter.erasure_floor, 1)
    wins, losses = _race([lambda c=c: c.rollback(ADAPTER, target, parent_version=adapter.head_version)
                          for c in clients])
    assert len(wins) == 1 and all(isinstance(error, AbortedError) for error in losses), losses
    versions = world.client.versions(ADAPTER)
    assert versions[-1].kind == "rollback" and len(versions) == adapter.head_version + 1
    for client in clients:
        client.close()


def test_erasures_racing_across_replicas_commit_once_and_the_purge_is_seen_everywhere(deployment, world):
    clients = _clients(deployment, world.token)
    server_key = clients[1].server_key()
    for round_number in range(2):
        number, _, head = world.head()
        older = [v.number for v in world.client.versions(ADAPTER) if not v.purged and v.number < number]
        subs = [world.submission(delta=synthetic_delta(head, seed=10 * round_number + n)) for n in range(REPLICAS)]
        calls = [lambda c=c, s=s: c.submit_erasure(ADAPTER, envelope=s.envelope, delta=s.delta)
                 for c, s in zip(clients, subs, strict=True)]
        wins, losses = _race(calls)
        assert len(wins) == 1 and len(losses) == REPLICAS - 1
        # every loser is ABORTED: one the winner's lock made wait finds the head moved (its parent purged by the
        # winner's floor, which the message names); one that got past binding first loses the CAS
        for error in losses:
            assert isinstance(error, AbortedError), error
        winner = wins[0]
        manifest = next(s.manifest for s in subs if s.manifest.result_hash == winner.version.blob_sha256)
        verify_receipt(winner.envelope, server_key=server_key, manifest=manifest)  # whoever issued it
        # the purge is seen by every replica at once: the old head and everything older are gone everywhere
        for client in clients:
            adapter = client.get_adapter(ADAPTER)
            assert (adapter.head_version, adapter.erasure_floor) == (number + 1, number + 1)
            for old in [number, *older]:
                with pytest.raises(FailedPreconditionError, match="purged"):
                    client.download_tensors(ADAPTER, version=old)
            _, version, _ = client.download_tensors(ADAPTER)
            assert version.blob_sha256 == winner.version.blob_sha256
    with deployment.servers[2].client() as admin:
        entries = list(admin.stream_audit_log())
        assert admin.fsck().clean
    assert [e.index for e in entries] == list(range(len(entries))) and len(entries) >= 2
    for client in clients:
        client.close()


def test_the_audit_log_verifies_offline_from_any_replicas_folder(deployment, world):
    with deployment.servers[1].client() as admin:
        entries = [AuditEntry(index=e.index, entry_hash=e.entry_hash, previous_hash=e.previous_hash, body=e.body)
                   for e in admin.stream_audit_log()]
    assert verify_chain(entries).size == len(entries) >= 2
    for number in (REPLICAS - 1,):  # a replica that did not bootstrap: nothing of the log is in its folder
        verified = subprocess.run(
            [sys.executable, "-m", "loravault.server", "audit", "verify", "--data", str(deployment.root / f"r{number}"),
             "--database-url", deployment.database_url], capture_output=True, text=True, timeout=120)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert f"entries {len(entries)}" in verified.stdout
