"""Bearer tokens: 256-bit random secrets, of which the database keeps only the SHA-256."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import Connection, func, insert, select, update

from loravault.core import InvalidArgumentError, NotFoundError, UnauthenticatedError

from .clock import as_utc, utc_now
from .records import IssuedToken, Principal, Role, TokenRecord
from .tables import tenants, tokens

__all__ = [
    "authenticate_secret",
    "check_role",
    "hash_secret",
    "insert_first_admin",
    "insert_token",
    "list_token_records",
    "revoke_token_row",
]

SECRET_PREFIX = "lvt_"
MAX_LABEL_LENGTH = 200
_ROLES = ("admin", "tenant")


def hash_secret(secret: str) -> str:
    """What the database stores and looks up: hex SHA-256 of the secret's UTF-8 bytes.

    A plain hash suffices (no salt, no slow KDF) because the secret is 256 bits of randomness, not a password.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_role(*, role: str, tenant: str | None) -> Role:
    if role not in _ROLES:
        raise InvalidArgumentError(f"token role {role!r} is not one of admin, tenant")
    if role == "admin" and tenant is not None:
        raise InvalidArgumentError("an admin token belongs to no tenant; pass tenant=None")
    if role == "tenant" and tenant is None:
        raise InvalidArgumentError("a tenant token needs the tenant it speaks for")
    return "admin" if role == "admin" else "tenant"


def insert_token(conn: Connection, *, role: Role, tenant_id: int | None, label: str) -> IssuedToken:
    """Create a token and return its secret, the only time the secret exists outside the caller."""
    if not isinstance(label, str) or len(label) > MAX_LABEL_LENGTH:
        raise InvalidArgumentError(f"token label must be a string of at most {MAX_LABEL_LENGTH} characters")
    token_id = secrets.token_hex(8)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)  # 32 random bytes = 256 bits
    conn.execute(
        insert(tokens).values(
            id=token_id,
            token_hash=hash_secret(secret),
            role=role,
            tenant_id=tenant_id,
            label=label,
            created_at=utc_now(),
        )
    )
    return IssuedToken(token_id=token_id, secret=secret)


def insert_first_admin(conn: Connection) -> IssuedToken | None:
    """An admin token if the vault has no tokens at all (a fresh install), else None."""
    if conn.scalar(select(func.count()).select_from(tokens)):
        return None
    return insert_token(conn, role="admin", tenant_id=None, label="initial admin")


def revoke_token_row(conn: Connection, token_id: str, *, tenant_id: int | None) -> None:
    """Revoke a token; with `tenant_id`, only that tenant's tokens are visible (NotFoundError otherwise).

    Revoking a revoked token is a no-op: the first revocation time is kept.
    """
    query = select(tokens.c.id, tokens.c.revoked_at).where(tokens.c.id == token_id)
    if tenant_id is not None:
        query = query.where(tokens.c.tenant_id == tenant_id)
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"token {token_id} does not exist")
    if row.revoked_at is None:
        conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=utc_now()))


def list_token_records(conn: Connection, *, tenant_id: int | None) -> list[TokenRecord]:
    query = select(tokens, tenants.c.name.label("tenant_name")).select_from(
        tokens.outerjoin(tenants, tokens.c.tenant_id == tenants.c.id)
    )
    if tenant_id is not None:
        query = query.where(tokens.c.tenant_id == tenant_id)
    rows = conn.execute(query.order_by(tokens.c.created_at, tokens.c.id)).mappings()
    return [
        TokenRecord(
            token_id=r["id"],
            role=r["role"],
            tenant=r["tenant_name"],
            label=r["label"],
            created_at=as_utc(r["created_at"]),
            revoked_at=None if r["revoked_at"] is None else as_utc(r["revoked_at"]),
        )
        for r in rows
    ]


def authenticate_secret(conn: Connection, secret: str) -> Principal:
    """The principal of a valid, unrevoked secret; UnauthenticatedError for anything else.

    The message never says whether a token exists but is revoked, so it tells a guesser nothing.
    """
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX) or len(secret) > 128:
        raise UnauthenticatedError("invalid or revoked token; ask an admin for a new one")
    query = (
        select(tokens.c.id, tokens.c.role, tokens.c.revoked_at, tenants.c.name.label("tenant_name"))
        .select_from(tokens.outerjoin(tenants, tokens.c.tenant_id == tenants.c.id))
        .where(tokens.c.token_hash == hash_secret(secret))
    )
    row = conn.execute(query).first()
    if row is None or row.revoked_at is not None:
        raise UnauthenticatedError("invalid or revoked token; ask an admin for a new one")
    return Principal(role=row.role, tenant=row.tenant_name, token_id=row.id)
