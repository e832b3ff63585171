"""Ed25519 key handling: key ids agree with securesystemslib, untrusted key dicts are parsed strictly,
private key files are written 0600 and never overwritten."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from securesystemslib.signer import CryptoSigner, SSlibKey
from securesystemslib.signer._utils import compute_default_keyid

from loravault.proto.errors import MalformedEnvelopeError, MalformedKeyError
from loravault.proto.keys import (
    generate_private_key_pem,
    key_id,
    load_private_key,
    public_key_dict,
    public_key_from_dict,
    save_private_key,
    signer_from_pem,
)
from loravault.server.vault.keys import parse_public_key

from conftest import derived_pem, key_path

# Pinned: the fixture keys' ids must never drift, or every golden envelope would change meaning.
TENANT_A1_KEY_ID = "21dcb1193252d897b9dd7bdbbf93909b6f4135d7b21bd680562d215a6ec6d14e"
TENANT_A1_PUBLIC = "fc74361ee2160f94af046724d3ba555673c434abda8daa57134870a68cc43b2a"


def test_key_id_is_sha256_of_canonical_key_json():
    key = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": TENANT_A1_PUBLIC}}
    assert key_id(key) == TENANT_A1_KEY_ID
    # the same id, computed by hand from the documented rule
    import hashlib

    canonical = b'{"keytype":"ed25519","keyval":{"public":"' + TENANT_A1_PUBLIC.encode() + b'"},"scheme":"ed25519"}'
    assert hashlib.sha256(canonical).hexdigest() == TENANT_A1_KEY_ID


def test_key_id_matches_securesystemslib_default_keyid():
    generated = CryptoSigner.generate_ed25519()
    assert key_id(public_key_dict(generated)) == generated.public_key.keyid
    signer = signer_from_pem(generate_private_key_pem())
    from_crypto = SSlibKey.from_crypto(signer.public_key._crypto_key())
    assert signer.public_key.keyid == from_crypto.keyid


@pytest.mark.parametrize("source", ["tenant_a1", "tenant_a2", "tenant_b", "server", "generated-1", "generated-2"])
def test_sdk_server_and_securesystemslib_compute_the_same_key_id(source):
    """One computation (proto.keys.key_id) behind the SDK's and the server's ids, equal to securesystemslib's own."""
    pem = derived_pem(source) if not source.startswith("generated") else generate_private_key_pem()
    signer = signer_from_pem(pem)
    key = public_key_dict(signer)
    theirs = compute_default_keyid(key["keytype"], key["scheme"], key["keyval"])
    from_crypto = SSlibKey.from_crypto(signer.public_key._crypto_key())
    server_id, server_key = parse_public_key(key)
    assert key_id(key) == signer.public_key.keyid == from_crypto.keyid == theirs == server_id
    assert public_key_from_dict(key, expected_key_id=theirs).keyid.encode() == theirs.encode()
    assert server_key == {"keytype": "ed25519", "scheme": "ed25519", "keyval": from_crypto.keyval}


def test_fixture_key_files_hold_the_derived_keys(signers):
    assert key_path("tenant_a1").read_bytes() == derived_pem("tenant_a1")
    assert signers["tenant_a1"].public_key.keyid == TENANT_A1_KEY_ID
    assert signers["tenant_a1"].public_key.keyval == {"public": TENANT_A1_PUBLIC}


def test_public_key_round_trips_through_its_dict(signers):
    key = public_key_from_dict(public_key_dict(signers["tenant_b"]))
    assert key == signers["tenant_b"].public_key


def _key(**overrides):
    base = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": TENANT_A1_PUBLIC}}
    base.update(overrides)
    return base


BAD_KEY_DICTS = [
    pytest.param("not a dict", id="not-a-mapping"),
    pytest.param({"keytype": "ed25519", "scheme": "ed25519"}, id="missing-keyval"),
    pytest.param({**_key(), "keyid": TENANT_A1_KEY_ID}, id="extra-field"),
    pytest.param(_key(keytype="rsa"), id="rsa-keytype"),
    pytest.param(_key(scheme="ecdsa-sha2-nistp256"), id="other-scheme"),
    pytest.param(_key(keyval={"public": TENANT_A1_PUBLIC.upper()}), id="uppercase-hex"),
    pytest.param(_key(keyval={"public": TENANT_A1_PUBLIC[:-2]}), id="31-bytes"),
    pytest.param(_key(keyval={"public": TENANT_A1_PUBLIC + "00"}), id="33-bytes"),
    pytest.param(_key(keyval={"public": TENANT_A1_PUBLIC, "private": "00"}), id="private-in-keyval"),
    pytest.param(_key(keyval={"public": 5}), id="public-not-string"),
    pytest.param(_key(keyval=[TENANT_A1_PUBLIC]), id="keyval-list"),
]


@pytest.mark.parametrize("data", BAD_KEY_DICTS)
def test_public_key_from_dict_refuses(data):
    with pytest.raises(MalformedKeyError):
        public_key_from_dict(data)


def test_public_key_from_dict_refuses_a_key_id_that_is_not_its_hash():
    with pytest.raises(MalformedKeyError, match="is not the hash of its key"):
        public_key_from_dict(_key(), expected_key_id="ab" * 32)
    assert public_key_from_dict(_key(), expected_key_id=TENANT_A1_KEY_ID).keyid == TENANT_A1_KEY_ID


def test_malformed_key_error_is_a_malformed_envelope_error():
    assert issubclass(MalformedKeyError, MalformedEnvelopeError)


def test_private_key_saved_with_mode_0600_loads_back(tmp_path):
    pem = generate_private_key_pem()
    path = save_private_key(tmp_path / "tenant.pem", pem)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes() == pem
    assert load_private_key(path).public_key == signer_from_pem(pem).public_key


def test_save_private_key_never_overwrites(tmp_path):
    path = tmp_path / "tenant.pem"
    path.write_bytes(b"existing")
    with pytest.raises(FileExistsError):
        save_private_key(path, generate_private_key_pem())
    assert path.read_bytes() == b"existing"


def test_save_private_key_does_not_follow_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "tenant.pem").symlink_to(victim)
    with pytest.raises(FileExistsError):
        save_private_key(tmp_path / "tenant.pem", generate_private_key_pem())
    assert victim.read_bytes() == b"keep"


def test_load_private_key_refuses_a_file_others_can_read(tmp_path):
    path = save_private_key(tmp_path / "tenant.pem", generate_private_key_pem())
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_private_key(path)


def test_encrypted_private_key_needs_its_password(tmp_path):
    pem = generate_private_key_pem(password=b"correct horse")
    assert b"ENCRYPTED" in pem
    path = save_private_key(tmp_path / "tenant.pem", pem)
    signer = load_private_key(path, password=b"correct horse")
    assert signer.public_key.keytype == "ed25519"
    with pytest.raises(MalformedKeyError, match="tenant.pem"):
        load_private_key(path, password=b"wrong")
    with pytest.raises(MalformedKeyError):
        load_private_key(path)


BAD_PEMS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", id="truncated"),
    pytest.param(b"x" * 20000, id="huge"),
    pytest.param(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        id="ecdsa-key",
    ),
]


@pytest.mark.parametrize("pem", BAD_PEMS)
def test_signer_from_pem_refuses(pem):
    with pytest.raises(MalformedKeyError):
        signer_from_pem(pem)
