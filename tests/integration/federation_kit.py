"""A federation on a real server for tests: tenant, coordinator key (first AddKey), token file, run config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loravault.client import VaultClient
from loravault.proto.keys import generate_private_key_pem, public_key_dict, save_private_key, signer_from_pem

from .conftest import RunningServer

FED, SHARED = "fed", "shared"


@dataclass(frozen=True)
class Federation:
    client: VaultClient  # the federation tenant's
    token_file: Path
    key_file: Path
    folder: Path

    def run_config(self, target: str, **settings: Any) -> dict[str, Any]:
        """A small, fast run on the tiny base; `settings` (snake_case) override it."""
        config = {
            "vault-address": target, "token-file": str(self.token_file), "key-files": str(self.key_file),
            "adapter": SHARED, "base": "tiny", "num-server-rounds": 2, "local-steps": 2, "facts-per-client": 4,
            "min-nodes": 3, "min-replies": 2, "round-timeout": 120.0,
            "ledger-dir": str(self.folder / "ledgers"), "report-file": str(self.folder / "report.json"),
        }
        config.update({k.replace("_", "-"): v for k, v in settings.items()})
        return config


def make_federation(server: RunningServer, folder: Path) -> Federation:
    """Tenant fed with a token file and the coordinator's key registered by the first AddKey (trust on first use)."""
    folder.mkdir(parents=True, exist_ok=True)
    with server.client() as admin:
        admin.create_tenant(FED)
        token = admin.issue_token(tenant=FED, label="coordinator").token
    token_file = folder / "fed.token"
    token_file.write_text(token + "\n")
    pem = generate_private_key_pem()
    key_file = save_private_key(folder / "coordinator.key", pem)
    client = server.client(token)
    client.add_key(public_key_dict(signer_from_pem(pem)))
    return Federation(client, token_file, key_file, folder)
