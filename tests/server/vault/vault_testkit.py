"""Helpers shared by the vault tests: a tiny schema, distinct adapter bytes, staging and uploading."""

from __future__ import annotations

import torch

from loravault.core import AdapterSchema, TensorSpec, encode_tensors
from loravault.server.vault import StagedBlob, Vault, VersionRecord
from loravault.server.vault.blobs import BlobStore

FINGERPRINT = "ab" * 32
OTHER_FINGERPRINT = "cd" * 32
A, B = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"
MANIFEST = "ee" * 32


def make_schema(fingerprint: str = FINGERPRINT) -> AdapterSchema:
    return AdapterSchema(
        rank=2,
        alpha=4.0,
        target_modules=("q_proj",),
        tensors=(TensorSpec(A, (2, 4)), TensorSpec(B, (4, 2))),
        dtype="float32",
        base_fingerprint=fingerprint,
    )


def adapter_bytes(seed: int) -> bytes:
    """Distinct, valid safetensors bytes per seed."""
    generator = torch.Generator().manual_seed(seed)
    return encode_tensors({A: torch.randn(2, 4, generator=generator), B: torch.randn(4, 2, generator=generator)})


def stage(vault: Vault, data: bytes) -> StagedBlob:
    writer = vault.adapters.new_blob_writer(max_bytes=len(data))
    writer.write(data)
    return writer.finish()


def upload(vault: Vault, *, tenant: str, adapter: str, data: bytes, parent: int) -> VersionRecord:
    return vault.adapters.commit_version(tenant=tenant, adapter=adapter, parent_version=parent, blob=stage(vault, data))


def erase(vault: Vault, *, tenant: str, adapter: str, data: bytes, parent: int) -> VersionRecord:
    return vault.adapters.erasure_commit(
        tenant=tenant, adapter=adapter, parent_version=parent, blob=stage(vault, data), manifest_hash=MANIFEST
    )


# the stored bytes behind a digest, whichever backend holds them (tests damage them on purpose)

def blob_exists(vault: Vault, sha256: str) -> bool:
    return vault._store.exists(sha256)


def overwrite_blob(vault: Vault, sha256: str, data: bytes) -> None:
    """Replace the stored bytes under `sha256`, as bit rot or a tampering operator would."""
    store = vault._store
    if isinstance(store, BlobStore):
        store.path_for(sha256).parent.mkdir(exist_ok=True)
        store.path_for(sha256).write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=str(store.path_for(sha256)), Body=data)


def remove_blob(vault: Vault, sha256: str) -> None:
    store = vault._store
    if isinstance(store, BlobStore):
        store.path_for(sha256).unlink()
    else:
        store.client.delete_object(Bucket=store.bucket, Key=str(store.path_for(sha256)))
