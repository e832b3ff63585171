"""A real server on 127.0.0.1 with a free port, in-process, over a fresh data folder per test; each test that
takes `server` runs twice, its metadata on SQLite and on PostgreSQL (tests/conftest.py database_url)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from loravault.core.base_layout import BaseLayout
from loravault.client import VaultClient
from loravault.core import AdapterSchema, BaseModel, TensorSpec, load_base
from loravault.server import ServerConfig, ServerState, create_server
from loravault.server.config import MAX_CHUNK_BYTES
from loravault.server.vault import Vault


@dataclass
class RunningServer:
    target: str
    admin_token: str
    data_dir: Path
    vault: Vault
    fingerprint: str
    state: ServerState | None = None  # None for a server in another process
    database_url: str | None = None  # None: SQLite in data_dir

    def client(self, token: str | None = None) -> VaultClient:
        return VaultClient(self.target, token=token or self.admin_token, timeout=30)

    def tenant(self, name: str) -> VaultClient:
        """Create a tenant and return a client holding a fresh token of its own."""
        with self.client() as admin:
            admin.create_tenant(name)
            issued = admin.issue_token(tenant=name, label="test")
        return self.client(issued.token)


@pytest.fixture(scope="session")
def tiny() -> BaseModel:
    return load_base("tiny")


@pytest.fixture
def server(tmp_path: Path, tiny: BaseModel, database_url: str | None) -> Iterator[RunningServer]:
    data = tmp_path / "data"
    data.mkdir()
    config = ServerConfig(data_dir=data, port=0, database_url=database_url)
    vault = Vault.open(data, base_fingerprint=tiny.fingerprint, database_url=database_url)
    token = vault.credentials.ensure_admin_token(config.admin_token_path)
    state = ServerState(vault=vault, base=BaseLayout.of(tiny),
                        max_chunk_bytes=MAX_CHUNK_BYTES)
    grpc_server, port = create_server(config, state=state)
    grpc_server.start()
    try:
        yield RunningServer(f"127.0.0.1:{port}", token, data, vault, tiny.fingerprint, state, database_url)
    finally:
        grpc_server.stop(None)
        vault.close()


def peft_tiny(seed: int = 0) -> PeftModel:
    """A tiny Llama with a LoRA (r=4 on q and v) whose B is not zero, so it changes the logits."""
    torch.manual_seed(seed)
    base = load_base("tiny").model
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                        init_lora_weights=False)
    return get_peft_model(base, config).eval()


def big_schema(fingerprint: str, *, rank: int = 512) -> AdapterSchema:
    """A LoRA on all seven linear layers of tiny: 2,176 x rank float32 values (4.5 MiB at the default rank,
    several chunks); it fits the base, so the server accepts it."""
    dims = {"self_attn.q_proj": (64, 64), "self_attn.k_proj": (64, 64), "self_attn.v_proj": (64, 64),
            "self_attn.o_proj": (64, 64), "mlp.gate_proj": (64, 128), "mlp.up_proj": (64, 128),
            "mlp.down_proj": (128, 64)}
    tensors = []
    for layer in range(2):
        for module, (d_in, d_out) in dims.items():
            prefix = f"base_model.model.model.layers.{layer}.{module}"
            tensors += [TensorSpec(f"{prefix}.lora_A.weight", (rank, d_in)),
                        TensorSpec(f"{prefix}.lora_B.weight", (d_out, rank))]
    return AdapterSchema(rank=rank, alpha=2.0 * rank, target_modules=tuple(sorted(m.split(".")[1] for m in dims)),
                         tensors=tuple(sorted(tensors, key=lambda t: t.name)), dtype="float32",
                         base_fingerprint=fingerprint)


def big_tensors(schema: AdapterSchema, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {t.name: torch.randn(t.shape, generator=generator) for t in schema.tensors}
