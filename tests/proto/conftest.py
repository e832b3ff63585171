"""Shared fixtures for the envelope tests: fixed TEST-ONLY Ed25519 keys from tests/data and golden objects.

The keys are derived from fixed seeds so the golden envelopes can be rebuilt bit for bit: Ed25519 signatures
are deterministic. Regenerate every file in tests/data this module owns with

    .venv/bin/python tests/proto/conftest.py

NOTE: these private keys are public test data; nothing may ever trust them.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from securesystemslib.signer import CryptoSigner

from loravault.proto.commitment import commit
from loravault.proto.keys import signer_from_pem
from loravault.proto.manifest import ErasureManifest, ErasureMethod, ForgetSet, ValidityWindow, sign_manifest
from loravault.proto.receipt import Receipt, sign_receipt

DATA = Path(__file__).resolve().parents[1] / "data"
KEY_NAMES = ("tenant_a1", "tenant_a2", "tenant_b", "server")
GOLDEN_MANIFEST_FILE = DATA / "erasure_manifest.dsse.json"
GOLDEN_RECEIPT_FILE = DATA / "erasure_receipt.dsse.json"
GOLDEN_SALT = hashlib.sha256(b"loravault golden forget salt").digest()
GOLDEN_SAMPLE_IDS = ("sample-0003", "sample-0017", "sample-0042")


def key_path(name: str) -> Path:
    return DATA / f"test_only_{name}_ed25519.pem"


def derived_pem(name: str) -> bytes:
    """The PEM of a fixed key derived from its name (what the files in tests/data hold)."""
    seed = hashlib.sha256(f"loravault TEST ONLY key {name}".encode()).digest()
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def load_signer(name: str) -> CryptoSigner:
    return signer_from_pem(key_path(name).read_bytes())


def build_golden_manifest() -> ErasureManifest:
    """The manifest inside the golden envelope: signed by tenant_a1 and tenant_a2."""
    forget = commit(GOLDEN_SAMPLE_IDS, salt=GOLDEN_SALT)
    return ErasureManifest(
        tenant="acme",
        adapter="support",
        key_ids=(load_signer("tenant_a1").public_key.keyid, load_signer("tenant_a2").public_key.keyid),
        request_id="0123456789abcdef0123456789abcdef",
        base_fingerprint=hashlib.sha256(b"base").hexdigest(),
        parent_version=7,
        parent_hash=hashlib.sha256(b"v7").hexdigest(),
        new_version=8,
        delta_hash=hashlib.sha256(b"delta").hexdigest(),
        result_hash=hashlib.sha256(b"v8").hexdigest(),
        forget=ForgetSet(commitment=forget.root, count=forget.count, train_size_before=1000, train_size_after=997),
        method=ErasureMethod(solver="cg", curvature="ekfac", damping=0.001, iterations=24, residual=3.5e-05),
        window=ValidityWindow(issued_at=1_767_225_600, expires_at=1_767_229_200),  # 2026-01-01T00:00Z, +1 h
    )


def build_golden_receipt() -> Receipt:
    manifest = build_golden_manifest()
    return Receipt(
        tenant=manifest.tenant,
        adapter=manifest.adapter,
        request_id=manifest.request_id,
        log_index=41,
        entry_hash=hashlib.sha256(b"log entry 41").hexdigest(),
        new_version=manifest.new_version,
        new_adapter_hash=manifest.result_hash,
        committed_at=1_767_225_700,
    )


def golden_manifest_bytes() -> bytes:
    return sign_manifest(build_golden_manifest(), signers=[load_signer("tenant_a1"), load_signer("tenant_a2")])


def golden_receipt_bytes() -> bytes:
    return sign_receipt(build_golden_receipt(), signer=load_signer("server"))


@pytest.fixture(scope="session")
def signers() -> dict[str, CryptoSigner]:
    """name -> CryptoSigner for the fixed TEST-ONLY keys."""
    return {name: load_signer(name) for name in KEY_NAMES}


@pytest.fixture(scope="session")
def golden_manifest() -> ErasureManifest:
    return build_golden_manifest()


@pytest.fixture(scope="session")
def golden_receipt() -> Receipt:
    return build_golden_receipt()


def _write_fixtures() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for name in KEY_NAMES:
        key_path(name).write_bytes(derived_pem(name))
    GOLDEN_MANIFEST_FILE.write_bytes(golden_manifest_bytes())
    GOLDEN_RECEIPT_FILE.write_bytes(golden_receipt_bytes())
    sys.stderr.write(f"wrote {len(KEY_NAMES)} keys and 2 golden envelopes under {DATA}\n")


if __name__ == "__main__":
    _write_fixtures()
