"""Tenants' Ed25519 signing keys (securesystemslib key form) and their signing threshold.

A key id is the SHA-256 of the key's canonical JSON (securesystemslib's encode_canonical), the same id
securesystemslib's CryptoSigner gives the key, so the SDK and the server agree without exchanging ids.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import SSlibKey
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loravault.core import AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError

from .clock import as_utc, utc_now
from .records import KeyRecord
from .tables import keys, tenants

__all__ = ["active_key_count", "insert_key", "list_key_records", "parse_public_key", "revoke_key_row"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = {"keytype", "scheme", "keyval"}


def parse_public_key(public_key: object) -> tuple[str, dict[str, Any]]:
    """Validate an ed25519 key in securesystemslib form and return (keyid, the canonical key dict).

    Exactly the fields keytype, scheme and keyval {public} are accepted; the public value must be 64 lowercase
    hex digits that decode to a valid Ed25519 point. Raises InvalidArgumentError with the reason.
    """
    if not isinstance(public_key, dict) or set(public_key) != _FIELDS:
        raise InvalidArgumentError(
            "public key must be a securesystemslib key dict with exactly keytype, scheme and keyval"
        )
    keyval = public_key["keyval"]
    if public_key["keytype"] != "ed25519" or public_key["scheme"] != "ed25519":
        raise InvalidArgumentError(
            f"public key type {public_key['keytype']!r}/{public_key['scheme']!r} is not ed25519/ed25519"
        )
    if not isinstance(keyval, dict) or set(keyval) != {"public"} or not isinstance(keyval["public"], str):
        raise InvalidArgumentError("public key keyval must be {'public': '<64 hex digits>'}")
    if not _HEX64.fullmatch(keyval["public"]):
        raise InvalidArgumentError("ed25519 public key must be 64 lowercase hex digits (32 bytes)")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(keyval["public"]))
    except ValueError as exc:
        raise InvalidArgumentError(f"ed25519 public key does not decode: {exc}") from exc
    canonical = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": keyval["public"]}}
    keyid = hashlib.sha256(encode_canonical(canonical).encode("utf-8")).hexdigest()
    SSlibKey.from_dict(keyid, dict(canonical, keyval=dict(canonical["keyval"])))  # the form verifiers will load
    return keyid, canonical


def insert_key(conn: Connection, *, tenant_id: int, tenant: str, public_key: object) -> str:
    """Register a key for the tenant and return its key id; AlreadyExistsError if it was ever registered."""
    keyid, canonical = parse_public_key(public_key)
    exists = select(keys.c.id).where(keys.c.tenant_id == tenant_id, keys.c.keyid == keyid)
    if conn.scalar(exists) is not None:
        raise AlreadyExistsError(f"key {keyid} is already registered for tenant {tenant} (revoked keys stay)")
    try:
        conn.execute(
            insert(keys).values(
                tenant_id=tenant_id,
                keyid=keyid,
                public_key=json.dumps(canonical, sort_keys=True, separators=(",", ":")),
                status="active",
                created_at=utc_now(),
            )
        )
    except IntegrityError as exc:
        raise AlreadyExistsError(f"key {keyid} is already registered for tenant {tenant}") from exc
    return keyid


def list_key_records(conn: Connection, *, tenant_id: int) -> list[KeyRecord]:
    rows = conn.execute(select(keys).where(keys.c.tenant_id == tenant_id).order_by(keys.c.id)).mappings()
    return [
        KeyRecord(
            keyid=r["keyid"],
            public_key=json.loads(r["public_key"]),
            status=r["status"],
            created_at=as_utc(r["created_at"]),
        )
        for r in rows
    ]


def active_key_count(conn: Connection, *, tenant_id: int) -> int:
    query = select(func.count()).select_from(keys).where(keys.c.tenant_id == tenant_id, keys.c.status == "active")
    return int(conn.scalar(query) or 0)


def revoke_key_row(conn: Connection, *, tenant_id: int, tenant: str, keyid: str) -> None:
    """Revoke an active key, unless that would leave fewer active keys than the tenant's threshold."""
    status = conn.scalar(select(keys.c.status).where(keys.c.tenant_id == tenant_id, keys.c.keyid == keyid))
    if status is None:
        raise NotFoundError(f"key {keyid} does not exist for tenant {tenant}")
    if status == "revoked":
        return
    threshold = int(conn.scalar(select(tenants.c.signing_threshold).where(tenants.c.id == tenant_id)))
    remaining = active_key_count(conn, tenant_id=tenant_id) - 1
    if remaining < threshold:
        raise FailedPreconditionError(
            f"tenant {tenant}: revoking key {keyid[:12]}… would leave {remaining} active key(s) for a threshold "
            f"of {threshold}; add a new key or lower the threshold first"
        )
    conn.execute(update(keys).where(keys.c.tenant_id == tenant_id, keys.c.keyid == keyid).values(status="revoked"))
