"""A server killed with SIGKILL in the middle of an upload restarts with no partial version and fsck clean."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from loravault.client import VaultClient
from loravault.core import encode_tensors
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc
from loravault.server.vault.durable import TEMP_PREFIX

from .conftest import big_schema, big_tensors

STARTUP_SECONDS = 60
MIB = 1 << 20


def start_server(data: Path) -> tuple[subprocess.Popen, str]:
    ready = data / "serve.json"
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "loravault.server", "serve", "--data", str(data), "--port", "0", "--base", "tiny"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + STARTUP_SECONDS
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"server did not start: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.1)
    return process, f"127.0.0.1:{json.loads(ready.read_text())['port']}"


def wait_for_upload_file(data: Path, *, seconds: float = 60) -> None:
    """Until the server has opened the temporary file the upload streams into: the kill then lands mid-write.

    NOTE: how much of the received chunks is on disk by then is not observable from outside (a blob of 16 MiB
    or more fills an aligned O_DIRECT block in memory before it writes, so its file may still be empty).
    """
    deadline = time.monotonic() + seconds
    while not [p for p in data.rglob(f"{TEMP_PREFIX}*") if "direct-probe" not in p.name]:
        assert time.monotonic() < deadline, f"the server opened no temporary blob file under {data} in {seconds} s"
        time.sleep(0.02)


@pytest.mark.timeout(180)
def test_sigkill_during_upload_leaves_no_partial_version(tmp_path):
    data = tmp_path / "data"
    process, target = start_server(data)
    token = (data / "admin.token").read_text().strip()
    assert (data / "admin.token").stat().st_mode & 0o777 == 0o600
    try:
        with VaultClient(target, token=token) as admin:
            admin.create_tenant("acme")
            schema = big_schema(admin.whoami().base_fingerprint)
            admin.create_adapter("big", schema, tenant="acme")
            payload = encode_tensors(big_tensors(schema))
            halfway, killed = threading.Event(), threading.Event()
            failures: list[grpc.RpcError] = []

            def stalled_stream():
                yield pb.UploadMessage(header=pb.UploadHeader(
                    ref=pb.AdapterRef(tenant="acme", adapter="big"), parent_version=0, total_size=len(payload)))
                for offset in (0, MIB):
                    yield pb.UploadMessage(chunk=payload[offset : offset + MIB])
                halfway.set()
                killed.wait(timeout=60)

            def upload() -> None:
                with grpc.insecure_channel(target) as channel:
                    try:
                        pb_grpc.AdaptersStub(channel).Upload(
                            stalled_stream(), metadata=(("authorization", f"Bearer {token}"),), timeout=90)
                    except grpc.RpcError as error:
                        failures.append(error)

            uploader = threading.Thread(target=upload)
            uploader.start()
            assert halfway.wait(timeout=60)
            wait_for_upload_file(data)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            killed.set()
            uploader.join(timeout=60)
        assert len(failures) == 1
    finally:
        if process.poll() is None:
            process.kill()

    process, target = start_server(data)
    try:
        with VaultClient(target, token=token) as admin:
            assert admin.versions("big", tenant="acme") == []
            assert admin.get_adapter("big", tenant="acme").head_version == 0
            report = admin.fsck()
            assert report.clean, report
            version = admin.upload_bytes("big", payload, parent_version=0, tenant="acme")
            assert version.number == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
