"""Ed25519 keys of tenants and of the server: generate, store, load, and name them by key id.

A public key travels in securesystemslib's key form (what a tenant registers):

    {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "<64 lowercase hex>"}}

Its key id is the SHA-256 hex digest of that dict in canonical JSON (keys sorted, no whitespace):

    key_id = sha256(b'{"keytype":"ed25519","keyval":{"public":"<hex>"},"scheme":"ed25519"}').hexdigest()

which is exactly what securesystemslib computes for `SSlibKey.from_crypto` and `CryptoSigner.generate_ed25519`
(its `compute_default_keyid`), so ids agree with standard tooling. Because the id is the key's hash, a key
cannot be registered under another key's id: `public_key_from_dict` recomputes it and refuses a mismatch.

Weak public keys are refused wherever a key enters (`check_public_key_bytes`): the eight points of small order
in any encoding, non-canonical encodings (y >= p, or a sign bit set on x = 0), and bytes that are not a point
of the prime-order subgroup. With the identity point registered, the signature (R = identity, s = 0) verifies
for every message (Chalkias et al., "Taming the many EdDSAs", 2020), so accepting one would make a tenant's
signatures worthless. libsodium's crypto_core_ed25519_is_valid_point (through PyNaCl) makes exactly this check.

Private keys are PKCS#8 PEM, optionally encrypted with a password, written with mode 0600 by an exclusive
create (an existing file is never overwritten).

Example:

    >>> pem = generate_private_key_pem()
    >>> signer = signer_from_pem(pem)
    >>> key = public_key_from_dict(public_key_dict(signer))
    >>> key.keyid == signer.public_key.keyid
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from nacl.bindings import crypto_core_ed25519_is_valid_point
from securesystemslib.signer import CryptoSigner, Key, Signer, SSlibKey

from .digests import is_sha256_hex
from .errors import MalformedKeyError

__all__ = [
    "KEY_TYPE",
    "generate_private_key_pem",
    "signer_from_pem",
    "public_key_dict",
    "key_id",
    "check_public_key_bytes",
    "public_key_from_dict",
    "save_private_key",
    "load_private_key",
]

logger = logging.getLogger(__name__)

KEY_TYPE = "ed25519"  # both the securesystemslib keytype and its scheme
_KEY_FIELDS = frozenset({"keytype", "scheme", "keyval"})
_MAX_PEM_BYTES = 16 * 1024


def generate_private_key_pem(*, password: bytes | None = None) -> bytes:
    """A new Ed25519 private key as PKCS#8 PEM, encrypted with `password` when one is given."""
    encryption = BestAvailableEncryption(password) if password else NoEncryption()
    return Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)


def signer_from_pem(pem: bytes, *, password: bytes | None = None) -> CryptoSigner:
    """A securesystemslib CryptoSigner for an Ed25519 PKCS#8 PEM private key.

    Raises:
        MalformedKeyError: not a PEM private key, the wrong password, or not an Ed25519 key.
    """
    if len(pem) > _MAX_PEM_BYTES:
        raise MalformedKeyError(f"private key PEM is {len(pem)} bytes, more than {_MAX_PEM_BYTES}")
    try:
        private_key = load_pem_private_key(bytes(pem), password=password)
    except (ValueError, TypeError) as exc:  # cryptography's errors for bad PEM, wrong or missing password
        raise MalformedKeyError(f"cannot load the private key: {exc}") from exc
    if not isinstance(private_key, Ed25519PrivateKey):
        raise MalformedKeyError(f"private key is {type(private_key).__name__}, loravault signs with Ed25519 only")
    public_key = _sslib_key(private_key.public_key())
    return CryptoSigner(private_key, public_key)


def _sslib_key(public_key: Ed25519PublicKey) -> SSlibKey:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    check_public_key_bytes(raw)
    public_hex = raw.hex()
    key_dict = {"keytype": KEY_TYPE, "scheme": KEY_TYPE, "keyval": {"public": public_hex}}
    return SSlibKey(key_id(key_dict), KEY_TYPE, KEY_TYPE, {"public": public_hex})


def public_key_dict(signer_or_key: Signer | Key) -> dict[str, Any]:
    """The securesystemslib dict form of a signer's (or key's) public key, without its key id."""
    key = signer_or_key.public_key if isinstance(signer_or_key, Signer) else signer_or_key
    return {"keytype": key.keytype, "scheme": key.scheme, "keyval": dict(key.keyval)}


def key_id(key: Mapping[str, Any]) -> str:
    """The key id of a public key dict: SHA-256 hex of its canonical JSON (see the module docstring)."""
    canonical = json.dumps(
        {"keytype": key["keytype"], "scheme": key["scheme"], "keyval": key["keyval"]},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_public_key_bytes(public: bytes) -> None:
    """Refuse an Ed25519 public key that could make signatures forgeable (see the module docstring).

    Raises:
        MalformedKeyError: not 32 bytes, not a canonical encoding, of small order, or not in the prime-order
            subgroup.
    """
    if len(public) != 32:
        raise MalformedKeyError(f"an Ed25519 public key is 32 bytes, got {len(public)}")
    if not crypto_core_ed25519_is_valid_point(bytes(public)):
        raise MalformedKeyError(
            f"public key {public.hex()[:16]}... is a weak Ed25519 key (small order, non-canonical, or not a point "
            "of the prime-order subgroup): signatures under it can be forged; generate a new key"
        )


def public_key_from_dict(data: Any, *, expected_key_id: str | None = None) -> SSlibKey:
    """Parse an untrusted public key dict into an SSlibKey whose key id is the hash of the key.

    `expected_key_id`, when given, must equal the recomputed id (a registered id is never taken on trust).

    Raises:
        MalformedKeyError: extra or missing fields, not Ed25519, public key not 32 bytes of lowercase hex,
            a weak key (`check_public_key_bytes`), or a key id that does not match.
    """
    if not isinstance(data, Mapping) or set(data) != _KEY_FIELDS:
        raise MalformedKeyError(f"public key must have exactly the fields {sorted(_KEY_FIELDS)}")
    if data["keytype"] != KEY_TYPE or data["scheme"] != KEY_TYPE:
        raise MalformedKeyError(
            f"public key is {data['keytype']!r}/{data['scheme']!r}, loravault accepts {KEY_TYPE}/{KEY_TYPE} only"
        )
    keyval = data["keyval"]
    if not isinstance(keyval, Mapping) or set(keyval) != {"public"}:
        raise MalformedKeyError('public key keyval must be {"public": "<64 lowercase hex>"}')
    public_hex = keyval["public"]
    if not is_sha256_hex(public_hex):  # 32 bytes in lowercase hex: the form of a SHA-256 digest
        raise MalformedKeyError("public key must be 32 bytes as 64 lowercase hex characters")
    check_public_key_bytes(bytes.fromhex(public_hex))
    computed = key_id({"keytype": KEY_TYPE, "scheme": KEY_TYPE, "keyval": {"public": public_hex}})
    if expected_key_id is not None and expected_key_id != computed:
        raise MalformedKeyError(f"key id {expected_key_id[:64]!r} is not the hash of its key ({computed})")
    return SSlibKey(computed, KEY_TYPE, KEY_TYPE, {"public": public_hex})


def save_private_key(path: str | os.PathLike[str], pem: bytes) -> Path:
    """Write a private key PEM to a new file readable by its owner only (mode 0600), durably.

    The file is created exclusively: an existing file, or a symlink planted at `path`, is never followed or
    overwritten (FileExistsError).
    """
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only remove bits; make the mode exact anyway
        view = memoryview(pem)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    logger.info("wrote private key %s (mode 0600)", target)
    return target


def load_private_key(path: str | os.PathLike[str], *, password: bytes | None = None) -> CryptoSigner:
    """Load a private key file written by `save_private_key` as a CryptoSigner.

    Raises:
        PermissionError: the file is readable or writable by group or others (chmod 600 it), as ssh refuses.
        MalformedKeyError: the file is not an Ed25519 PKCS#8 PEM key, or the password is wrong.
    """
    target = Path(path)
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        if mode & 0o077:
            raise PermissionError(f"private key {target} has mode {mode:#o}; run `chmod 600 {target}`")
        pem = handle.read(_MAX_PEM_BYTES + 1)
    try:
        return signer_from_pem(pem, password=password)
    except MalformedKeyError as exc:
        raise MalformedKeyError(f"private key {target}: {exc}") from exc
