"""An embedded vault for the demo and the benchmark: `python -m loravault.server serve` as a child process on
127.0.0.1 (a free port), over a fresh data folder, with a federation tenant whose coordinator key is
registered by its first AddKey (trust on first use).

The server runs as its own process, as the CLI starts it, so this part never imports the server part.

    with embedded_vault(folder, base="tiny") as vault:
        run_simulation_here(num_clients=3, run_config={**vault.run_config(), "num-server-rounds": 2})
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loravault.client import VaultClient
from loravault.core.errors import UnavailableError
from loravault.proto.keys import generate_private_key_pem, public_key_dict, save_private_key, signer_from_pem

__all__ = ["EmbeddedVault", "embedded_vault"]

FEDERATION = "federation"


@dataclass(frozen=True)
class EmbeddedVault:
    target: str
    data_dir: Path
    admin_token: str
    token_file: Path  # the federation tenant's
    key_file: Path  # the coordinator's private key

    def client(self) -> VaultClient:
        return VaultClient(self.target, token=self.token_file.read_text().strip())

    def run_config(self) -> dict[str, Any]:
        return {"vault-address": self.target, "token-file": str(self.token_file), "key-files": str(self.key_file)}

    def audit_verify(self) -> str:
        """`loravault audit verify` on the data folder (offline, from the database and the server key)."""
        done = subprocess.run([sys.executable, "-m", "loravault.server", "audit", "verify", "--data",
                               str(self.data_dir)], capture_output=True, text=True, timeout=120)
        return (done.stdout + done.stderr).strip()


@contextlib.contextmanager
def embedded_vault(folder: Path, *, base: str, startup_seconds: float = 300.0) -> Iterator[EmbeddedVault]:
    """Start the server, create the federation tenant and its coordinator key; stop the server on exit."""
    data = Path(folder) / "vault"
    data.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "loravault.server", "serve", "--data", str(data),
                                "--host", "127.0.0.1", "--port", "0", "--base", base],
                               stdout=subprocess.DEVNULL, stderr=open(data / "server.log", "wb"))  # noqa: SIM115
    try:
        target = _wait_ready(process, data, startup_seconds)
        yield _federation(target, data, Path(folder))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen, data: Path, timeout: float) -> str:
    ready, deadline = data / "serve.json", time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise UnavailableError(f"the embedded vault did not start; see {data / 'server.log'}")
        time.sleep(0.2)
    return f"127.0.0.1:{json.loads(ready.read_text())['port']}"


def _federation(target: str, data: Path, folder: Path) -> EmbeddedVault:
    admin_token = (data / "admin.token").read_text().strip()
    with VaultClient(target, token=admin_token) as admin:
        admin.create_tenant(FEDERATION)
        token = admin.issue_token(tenant=FEDERATION, label="coordinator").token
    token_file = folder / "federation.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    pem = generate_private_key_pem()
    key_file = save_private_key(folder / "coordinator.key", pem)
    with VaultClient(target, token=token) as client:
        client.add_key(public_key_dict(signer_from_pem(pem)))
    return EmbeddedVault(target, data, admin_token, token_file, key_file)
