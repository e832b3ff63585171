"""Signed erasure submissions for tests: tenant keys, synthetic deltas on a real adapter, manifests, raw streams,
and an in-process server that runs the erasure pipeline (with the probe check on the tiny base).

    world = make_world(server)                     # tenant acme, 2 keys registered, adapter support v1, v2
    sub = world.submission()                       # a valid signed erasure of the head
    receipt = world.client.submit_erasure("support", envelope=sub.envelope, delta=sub.delta)

Deltas are synthetic small changes (a random direction scaled to a fraction of the adapter's norm); the eraser
is not needed to exercise the protocol.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch
from securesystemslib.signer import CryptoSigner

from loravault.core.base_layout import BaseLayout
from loravault.client import VaultClient
from loravault.core import AdapterSchema, BaseModel, canonical_float32, encode_tensors
from loravault.core.peft_format import adapter_from_peft_model
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc
from loravault.proto.commitment import commit
from loravault.proto.keys import generate_private_key_pem, public_key_dict, signer_from_pem
from loravault.proto.manifest import (
    ErasureManifest,
    ErasureMethod,
    ForgetSet,
    ValidityWindow,
    new_request_id,
    sign_manifest,
)
from loravault.server import ServerConfig, ServerState, create_server
from loravault.server.audit import AuditLog
from loravault.server.config import MAX_CHUNK_BYTES
from loravault.server.erasure import ErasureConfig
from loravault.server.main import build_erasure_pipeline
from loravault.server.vault import Vault

from .conftest import RunningServer, peft_tiny

CHUNK = MAX_CHUNK_BYTES
CRASHING_SERVER = Path(__file__).with_name("crashing_server.py")  # a server that kills itself mid-commit
TENANT, ADAPTER = "acme", "support"


def new_signer() -> CryptoSigner:
    return signer_from_pem(generate_private_key_pem())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def synthetic_delta(head: dict[str, torch.Tensor], *, ratio: float = 0.05, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random float32 direction with ||delta||_F = ratio * ||head||_F."""
    generator = torch.Generator().manual_seed(seed)
    raw = {name: torch.randn(t.shape, generator=generator) for name, t in head.items()}
    norm = torch.sqrt(sum(r.pow(2).sum() for r in raw.values()))
    head_norm = torch.sqrt(sum(t.float().pow(2).sum() for t in head.values()))
    return {name: (r * (ratio * head_norm / norm)).float() for name, r in raw.items()}


def result_hash(head: dict[str, torch.Tensor], delta: dict[str, torch.Tensor]) -> str:
    return sha256(canonical_float32({name: head[name].float() + delta[name].float() for name in head}))


@dataclass(frozen=True)
class Submission:
    manifest: ErasureManifest
    envelope: bytes
    delta: bytes  # safetensors bytes


@dataclass
class World:
    """A running erasure server with tenant acme, its signing keys, and adapter support at v2."""

    server: RunningServer
    client: VaultClient  # acme's
    token: str  # acme's bearer token
    signers: list[CryptoSigner]
    schema: AdapterSchema
    fingerprint: str
    extra: dict[str, Any] = field(default_factory=dict)

    def head(self) -> tuple[int, str, dict[str, torch.Tensor]]:
        info, version, tensors = self.client.download_tensors(ADAPTER)
        return version.number, version.blob_sha256, tensors

    def submission(self, *, delta: dict[str, torch.Tensor] | None = None, delta_bytes: bytes | None = None,
                   signers: list[CryptoSigner] | None = None, now: float | None = None, **overrides: Any) -> Submission:
        """A signed erasure of the current head; `overrides` replace manifest fields."""
        number, blob, head = self.head()
        delta = synthetic_delta(head) if delta is None else delta
        data = encode_tensors(delta) if delta_bytes is None else delta_bytes
        try:
            result = result_hash(head, delta)
        except (KeyError, RuntimeError):  # a delta that does not fit: any result hash will do
            result = sha256(b"unmergeable")
        signers = self.signers[:1] if signers is None else signers
        issued = int(time.time() if now is None else now)
        forget = commit(["sample-1", "sample-2"], salt=b"s" * 32)
        fields = dict(
            tenant=TENANT, adapter=ADAPTER, key_ids=tuple(sorted(s.public_key.keyid for s in signers)),
            request_id=new_request_id(), base_fingerprint=self.fingerprint, parent_version=number,
            parent_hash=blob, new_version=number + 1, delta_hash=sha256(data), result_hash=result,
            forget=ForgetSet(commitment=forget.root, count=2, train_size_before=40, train_size_after=38),
            method=ErasureMethod(solver="cg", curvature="gauss-newton", damping=0.01, iterations=10, residual=1e-4),
            window=ValidityWindow(issued_at=issued - 60, expires_at=issued + 3600),
        )
        fields.update(overrides)
        if "parent_version" in overrides and "new_version" not in overrides:
            fields["new_version"] = fields["parent_version"] + 1
        manifest = ErasureManifest(**fields)
        return Submission(manifest, sign_manifest(manifest, signers=signers), data)

    def raw_submit(self, messages: list[pb.ErasureMessage]) -> pb.ErasureReceipt:
        """Send messages as they are on Erasure.Submit (raises grpc.RpcError)."""
        with grpc.insecure_channel(self.server.target) as channel:
            return pb_grpc.ErasureStub(channel).Submit(
                iter(messages), metadata=(("authorization", f"Bearer {self.token}"),), timeout=60)


def messages(sub: Submission, *, delta: bytes | None = None, delta_size: int | None = None,
             delta_sha256: str | None = None, envelope: bytes | None = None, chunk: int = CHUNK,
             tenant: str = "", adapter: str = ADAPTER) -> list[pb.ErasureMessage]:
    """The header then the chunks of a submission, each part overridable."""
    data = sub.delta if delta is None else delta
    header = pb.ErasureHeader(
        ref=pb.AdapterRef(tenant=tenant, adapter=adapter), envelope=sub.envelope if envelope is None else envelope,
        delta_size=len(data) if delta_size is None else delta_size,
        delta_sha256=sha256(data) if delta_sha256 is None else delta_sha256)
    return [pb.ErasureMessage(header=header)] + [
        pb.ErasureMessage(chunk=data[i : i + chunk]) for i in range(0, len(data), chunk)]


def register_keys(client: VaultClient, signers: list[CryptoSigner], *, threshold: int = 1) -> None:
    """The first key with the token alone (trust on first use), every later change signed by the first key."""
    client.add_key(public_key_dict(signers[0]))
    for signer in signers[1:]:
        client.add_key(public_key_dict(signer), signers=signers[:1])
    if threshold != 1:
        client.set_threshold(threshold, signers=signers[:1])


def start_erasure_server(data: Path, tiny: BaseModel, *, erasure: ErasureConfig | None = None,
                         database_url: str | None = None) -> tuple[RunningServer, Any]:
    """An in-process server whose state carries the erasure pipeline; returns (server, grpc server)."""
    config = ServerConfig(data_dir=data, port=0, erasure=erasure or ErasureConfig(), database_url=database_url)
    vault = Vault.open(data, base_fingerprint=tiny.fingerprint, database_url=database_url)
    token = vault.credentials.ensure_admin_token(config.admin_token_path) or (data / "admin.token").read_text().strip()
    pipeline = build_erasure_pipeline(config, vault=vault, base=tiny)
    state = ServerState(vault=vault, base=BaseLayout.of(tiny),
                        max_chunk_bytes=MAX_CHUNK_BYTES, base_model=tiny, erasure=pipeline)
    grpc_server, port = create_server(config, state=state)
    grpc_server.start()
    running = RunningServer(f"127.0.0.1:{port}", token, data, vault, tiny.fingerprint, database_url=database_url)
    return running, grpc_server


@pytest.fixture
def erasure_server(tmp_path: Path, tiny: BaseModel, database_url: str | None) -> Iterator[RunningServer]:
    """An erasure server on each metadata database (SQLite, PostgreSQL)."""
    data = tmp_path / "data"
    data.mkdir()
    running, grpc_server = start_erasure_server(data, tiny, database_url=database_url)
    try:
        yield running
    finally:
        grpc_server.stop(None)
        running.vault.close()


def make_world(server: RunningServer, *, versions: int = 2) -> World:
    """Tenant acme with two registered keys (threshold 1) and adapter support with `versions` uploads."""
    with server.client() as admin:
        admin.create_tenant(TENANT)
        token = admin.issue_token(tenant=TENANT, label="erasure-tests").token
    client = server.client(token)
    signers = [new_signer(), new_signer()]
    register_keys(client, signers)
    schema, tensors = adapter_from_peft_model(peft_tiny(0), base_fingerprint=server.fingerprint)
    client.create_adapter(ADAPTER, schema)
    for number in range(versions):
        client.upload_tensors(ADAPTER, {k: v + 0.01 * number for k, v in tensors.items()})
    return World(server, client, token, signers, schema, server.fingerprint)


def vault_state(server: RunningServer) -> tuple:
    """Everything a refused request must leave unchanged: versions, head, floor, blob files, audit log."""
    vault = server.vault
    def versions(a: Any) -> tuple:
        return tuple((v.number, v.blob_sha256, v.kind, v.purged)
                     for v in vault.adapters.list_versions(tenant=a.tenant, adapter=a.name))

    adapters = tuple((a.tenant, a.name, a.head_version, a.floor, versions(a))
                     for t in vault.credentials.list_tenants() for a in vault.adapters.list_adapters(tenant=t.name))
    blobs = tuple(sorted(p.name for p in (server.data_dir / "blobs").rglob("*") if p.is_file()))
    log = tuple((e.index, e.entry_hash) for e in AuditLog(vault, signer=None).entries())
    return adapters, blobs, log


def replace_manifest(sub: Submission, **changes: Any) -> ErasureManifest:
    return dataclasses.replace(sub.manifest, **changes)


def start_server_process(data: Path, *, env: dict[str, str] | None = None, startup_seconds: float = 120,
                         args: tuple[str, ...] = (), token: str | None = None, crash_at: str | None = None,
                         ) -> tuple[subprocess.Popen, RunningServer]:
    """`python -m loravault.server serve` on a free port, as a child process; waits until it listens.

    `args` are more serve arguments (--database-url, --blobs, ...); `token` is the admin token when this
    process is not the one that writes the token file (a second replica of one database); `crash_at` starts it
    through crashing_server.py instead, which kills it at that step of the erasure commit path."""
    ready = data / "serve.json"
    ready.unlink(missing_ok=True)
    launcher = ["-m", "loravault.server"] if crash_at is None else [str(CRASHING_SERVER), crash_at]
    process = subprocess.Popen(
        [sys.executable, *launcher, "serve", "--data", str(data), "--port", "0", "--base", "tiny", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + startup_seconds
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"server did not start: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.1)
    target = f"127.0.0.1:{json.loads(ready.read_text())['port']}"
    token = token or (data / "admin.token").read_text().strip()
    with VaultClient(target, token=token) as admin:
        fingerprint = admin.whoami().base_fingerprint
    return process, RunningServer(target, token, data, None, fingerprint)  # type: ignore[arg-type]
