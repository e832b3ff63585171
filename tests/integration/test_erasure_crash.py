"""SIGKILL at each step of the erasure commit path: after a restart the adapter is wholly the old one or wholly
the new one, fsck finds nothing missing or corrupt (only orphans, which repair removes), and the audit log
verifies offline. The server kills itself at the named step: it runs through crashing_server.py, a test-side
launcher that wraps the commit step before calling the real main(); the production package holds no crash hook.

One data folder walks through every step (each restart arms the next one), so the test pays for five server
starts instead of eight.
"""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from loravault.core import UnavailableError
from .crashing_server import STEPS as CRASH_STEPS
from .erasure_kit import ADAPTER, TENANT, World, make_world, start_server_process

NEW_STATE_STEPS = {"after-commit"}  # the transaction committed before the kill


def _snapshot(world: World) -> tuple:
    adapter = world.client.get_adapter(ADAPTER)
    return adapter.head_version, adapter.erasure_floor, tuple(world.client.versions(ADAPTER))


def _check_restarted(world: World, *, step: str, before: tuple, sub) -> None:
    head, floor, versions = _snapshot(world)
    with world.server.client() as admin:
        log = list(admin.stream_audit_log())
        if step in NEW_STATE_STEPS:
            assert (head, floor) == (before[0] + 1, before[0] + 1)
            assert [v.purged for v in versions] == [True] * before[0] + [False]
            assert versions[-1].blob_sha256 == sub.manifest.result_hash and versions[-1].kind == "erasure"
            assert admin.get_receipt(ADAPTER, sub.manifest.request_id, tenant=TENANT).log_index == len(log) - 1
        else:
            assert (head, floor, versions) == before
            assert all(sub.manifest.request_id not in e.body.decode() for e in log)
        report = admin.fsck()
        assert not report.missing and not report.corrupt, report
        assert admin.fsck(repair=True).repaired and admin.fsck().clean


@pytest.fixture(params=["sqlite-files", "postgresql-s3"])
def store_args(request) -> list[str]:
    """serve arguments for the embedded default, and for the scale-out store (PostgreSQL and a bucket)."""
    if request.param == "sqlite-files":
        return []
    return ["--database-url", request.getfixturevalue("pg_url"), "--blobs", request.getfixturevalue("s3_bucket"),
            "--s3-endpoint", request.getfixturevalue("s3_endpoint")]


@pytest.mark.timeout(400)
def test_kill_at_each_commit_step_leaves_the_old_or_the_new_state(tmp_path, store_args):
    data = tmp_path / "data"
    args = tuple(store_args)
    process, running = start_server_process(data, crash_at=CRASH_STEPS[0], args=args)
    world = make_world(running)
    try:
        for number, step in enumerate(CRASH_STEPS):
            before = _snapshot(world)
            sub = world.submission()
            with pytest.raises((UnavailableError, grpc.RpcError)):
                world.client.submit_erasure(ADAPTER, envelope=sub.envelope, delta=sub.delta)
            assert process.wait(timeout=60) == -9, f"the server survived crash step {step}"
            following = CRASH_STEPS[number + 1] if number + 1 < len(CRASH_STEPS) else None
            process, running = start_server_process(data, crash_at=following, args=args)
            world.server = running
            world.client = running.client(world.token)
            _check_restarted(world, step=step, before=before, sub=sub)
    finally:
        process.terminate()
        process.wait(timeout=30)
    database = list(args[:2])  # --database-url URL, when there is one
    verified = subprocess.run([sys.executable, "-m", "loravault.server", "audit", "verify", "--data", str(data),
                               *database], capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"entries {len(NEW_STATE_STEPS)}" in verified.stdout
