"""Tenants' Ed25519 signing keys (securesystemslib key form) and their signing threshold.

A key id is computed in one place, loravault.proto.keys.key_id: the same id securesystemslib's CryptoSigner
gives the key, so the SDK and the server agree without exchanging ids.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loravault.core import AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError
from loravault.proto.errors import MalformedKeyError
from loravault.proto.keys import public_key_dict, public_key_from_dict

from .clock import as_utc, utc_now
from .records import KeyRecord
from .tables import keys, tenants

__all__ = ["active_key_count", "insert_key", "list_key_records", "parse_public_key", "revoke_key_row"]

def parse_public_key(public_key: object) -> tuple[str, dict[str, Any]]:
    """Validate an ed25519 key in securesystemslib form and return (keyid, the canonical key dict).

    The one parser and key id of loravault.proto.keys (weak keys refused there); InvalidArgumentError with its
    reason.
    """
    try:
        key = public_key_from_dict(public_key)
    except MalformedKeyError as exc:
        raise InvalidArgumentError(str(exc)) from exc
    return key.keyid, public_key_dict(key)


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
    threshold = int(conn.execute(select(tenants.c.signing_threshold).where(tenants.c.id == tenant_id)).scalar_one())
    remaining = active_key_count(conn, tenant_id=tenant_id) - 1
    if remaining < threshold:
        raise FailedPreconditionError(
            f"tenant {tenant}: revoking key {keyid[:12]}… would leave {remaining} active key(s) for a threshold "
            f"of {threshold}; add a new key or lower the threshold first"
        )
    conn.execute(update(keys).where(keys.c.tenant_id == tenant_id, keys.c.keyid == keyid).values(status="revoked"))
