"""`Credentials`: who may do what. Tenants, their tokens, their signing keys and threshold, and the deployment's
receipt-signing key, each change in one transaction of the metadata database.

A tenant's keys change one at a time across replicas (a database lock per tenant), and a tenant token alone may
set up only the first key (trust on first use): every later change is a rotation signed by a threshold of the
keys it replaces.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Set
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from loravault.core import AbortedError, AlreadyExistsError, FailedPreconditionError, InvalidArgumentError
from loravault.core import PermissionDeniedError
from loravault.proto.names import check_name

from . import db_locks, identity
from . import keys as key_rows
from . import tenants as tenant_rows
from . import tokens as token_rows
from .durable import write_file_durably
from .metadata import MetadataDB, tenant_id_of
from .records import IssuedToken, KeyRecord, Principal, SigningPolicy, TenantRecord, TokenRecord

__all__ = ["Credentials", "KeyChangeHook"]

log = logging.getLogger(__name__)

# runs inside a key change's transaction with the tenant's keys and threshold after the change (the audit entry)
KeyChangeHook = Callable[[Connection, SigningPolicy], None]


def _require_no_active_key(conn: Connection, *, tenant_id: int, tenant: str, change: str) -> None:
    """A token alone may set up a tenant's first key (trust on first use), never change keys it already has."""
    active = key_rows.active_key_count(conn, tenant_id=tenant_id)
    if active:
        raise PermissionDeniedError(
            f"tenant {tenant} has {active} active signing key(s): to {change}, send a key rotation signed by a "
            "threshold of them (`loravault keys ... --key FILE`), or ask an admin to reset the keys"
        )


class Credentials:
    """Tenants, tokens and keys over the vault's metadata database (`vault.credentials`)."""

    def __init__(self, db: MetadataDB) -> None:
        self._db = db

    def create_tenant(self, name: str) -> TenantRecord:
        check_name(name, what="tenant")
        with self._db.write() as conn:
            return tenant_rows.insert_tenant(conn, name)

    def list_tenants(self) -> list[TenantRecord]:
        with self._db.read() as conn:
            return tenant_rows.list_tenant_records(conn)

    def issue_token(self, *, role: str, tenant: str | None = None, label: str = "") -> IssuedToken:
        """A new token; its secret is in the result only. NotFoundError when the tenant does not exist."""
        checked_role = token_rows.check_role(role=role, tenant=tenant)
        with self._db.write() as conn:
            tenant_id = None if tenant is None else tenant_id_of(conn, tenant)
            return token_rows.insert_token(conn, role=checked_role, tenant_id=tenant_id, label=label)

    def revoke_token(self, token_id: str, *, tenant: str | None = None) -> None:
        """Revoke a token; with `tenant`, another tenant's token is NotFoundError, like a missing one."""
        with self._db.write() as conn:
            tenant_id = None if tenant is None else tenant_id_of(conn, tenant)
            token_rows.revoke_token_row(conn, token_id, tenant_id=tenant_id)

    def list_tokens(self, *, tenant: str | None = None) -> list[TokenRecord]:
        """Every token (tenant=None) or one tenant's tokens; never their secrets."""
        with self._db.read() as conn:
            tenant_id = None if tenant is None else tenant_id_of(conn, tenant)
            return token_rows.list_token_records(conn, tenant_id=tenant_id)

    def authenticate(self, secret: str) -> Principal:
        """Who `secret` speaks for; UnauthenticatedError if it is unknown or revoked."""
        with self._db.read() as conn:
            return token_rows.authenticate_secret(conn, secret)

    def ensure_admin_token(self, path: Path) -> str | None:
        """On a vault with no tokens at all, issue an admin token and write it to `path` (mode 0600).

        Returns the secret, or None when the vault already has tokens. The file is created exclusively and
        with mode 0600 from the start; an existing file is never overwritten (AlreadyExistsError). The token
        row commits only if the file was written, and the file is removed if the commit fails.
        """
        path = Path(path)
        written = False
        try:
            with self._db.write() as conn:
                db_locks.transaction_lock(conn, namespace="bootstrap", name="admin-token")  # replicas start together
                issued = token_rows.insert_first_admin(conn)
                if issued is None:
                    return None
                write_file_durably(path, (issued.secret + "\n").encode(), mode=0o600, exclusive=True)
                written = True
        except BaseException:
            if written:  # the commit failed after the file was written: a token nobody can use
                path.unlink(missing_ok=True)
            raise
        log.info("wrote the initial admin token to %s", path)
        return issued.secret

    def add_key(self, *, tenant: str, public_key: dict[str, Any], trust_on_first_use: bool = False,
                in_transaction: KeyChangeHook | None = None) -> str:
        """Register an ed25519 public key (securesystemslib form) and return its key id.

        With `trust_on_first_use` (a caller holding only a tenant token), refused with PermissionDeniedError
        once the tenant has an active key: later changes are rotations signed by a threshold of its keys.
        `in_transaction(conn, policy)` runs in the same transaction with the resulting keys and threshold.
        """
        with self._db.write() as conn:
            tenant_id = self._keys_locked(conn, tenant)
            if trust_on_first_use:
                _require_no_active_key(conn, tenant_id=tenant_id, tenant=tenant, change="add a key")
            keyid = key_rows.insert_key(conn, tenant_id=tenant_id, tenant=tenant, public_key=public_key)
            self._key_change_done(conn, tenant_id, in_transaction)
            return keyid

    def list_keys(self, *, tenant: str) -> list[KeyRecord]:
        with self._db.read() as conn:
            return key_rows.list_key_records(conn, tenant_id=tenant_id_of(conn, tenant))

    def revoke_key(self, *, tenant: str, keyid: str, trust_on_first_use: bool = False,
                   in_transaction: KeyChangeHook | None = None) -> None:
        """Revoke a key; refused (FailedPreconditionError) if fewer active keys than the threshold would remain.

        `trust_on_first_use` and `in_transaction` as for `add_key`.
        """
        with self._db.write() as conn:
            tenant_id = self._keys_locked(conn, tenant)
            if trust_on_first_use:
                _require_no_active_key(conn, tenant_id=tenant_id, tenant=tenant, change="revoke a key")
            key_rows.revoke_key_row(conn, tenant_id=tenant_id, tenant=tenant, keyid=keyid)
            self._key_change_done(conn, tenant_id, in_transaction)

    def set_threshold(self, *, tenant: str, threshold: int, trust_on_first_use: bool = False,
                      in_transaction: KeyChangeHook | None = None) -> None:
        """Set how many active keys must sign; 1 up to the number of active keys.

        `trust_on_first_use` and `in_transaction` as for `add_key`.
        """
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            raise InvalidArgumentError(f"signing threshold must be an integer, got {threshold!r}")
        with self._db.write() as conn:
            tenant_id = self._keys_locked(conn, tenant)
            if trust_on_first_use:
                _require_no_active_key(conn, tenant_id=tenant_id, tenant=tenant, change="change the threshold")
            active = key_rows.active_key_count(conn, tenant_id=tenant_id)
            if not 1 <= threshold <= active:
                raise FailedPreconditionError(
                    f"tenant {tenant}: threshold {threshold} must be between 1 and its {active} active key(s)"
                )
            tenant_rows.set_signing_threshold(conn, tenant_id=tenant_id, threshold=threshold)
            self._key_change_done(conn, tenant_id, in_transaction)

    @staticmethod
    def _key_change_done(conn: Connection, tenant_id: int, hook: KeyChangeHook | None) -> None:
        if hook is not None:
            hook(conn, SigningPolicy(keys=key_rows.list_key_records(conn, tenant_id=tenant_id),
                                     threshold=tenant_rows.get_signing_threshold(conn, tenant_id)))

    def get_threshold(self, *, tenant: str) -> int:
        with self._db.read() as conn:
            return tenant_rows.get_signing_threshold(conn, tenant_id_of(conn, tenant))

    def signing_policy(self, *, tenant: str) -> SigningPolicy:
        """Keys and threshold from one read, so a rotation between two reads cannot pair old keys with a new
        threshold (verifying a signature needs both as of the same moment)."""
        with self._db.read() as conn:
            tenant_id = tenant_id_of(conn, tenant)
            return SigningPolicy(keys=key_rows.list_key_records(conn, tenant_id=tenant_id),
                                 threshold=tenant_rows.get_signing_threshold(conn, tenant_id))

    def rotate_keys(
        self, *, tenant: str, public_keys: list[dict[str, Any]], threshold: int, expected_active: Set[str]
    ) -> None:
        """Make `public_keys` the tenant's active keys and `threshold` its threshold, in one transaction.

        Keys not yet registered are added, active keys not listed are revoked. `expected_active` are the
        key ids the caller verified the rotation against: if the active set changed since, AbortedError.
        A key revoked earlier cannot come back (AlreadyExistsError); the threshold must be 1..len(public_keys).
        """
        with self._db.write() as conn:
            tenant_id = self._keys_locked(conn, tenant)
            records = key_rows.list_key_records(conn, tenant_id=tenant_id)
            active = {k.keyid for k in records if k.status == "active"}
            if active != set(expected_active):
                raise AbortedError(f"tenant {tenant}: its active keys changed while the rotation was checked; retry")
            known = {k.keyid for k in records}
            wanted = [key_rows.parse_public_key(key)[0] for key in public_keys]
            for keyid, key in zip(wanted, public_keys, strict=True):
                if keyid not in known:
                    key_rows.insert_key(conn, tenant_id=tenant_id, tenant=tenant, public_key=key)
                elif keyid not in active:
                    raise AlreadyExistsError(f"tenant {tenant}: key {keyid[:12]}… was revoked and cannot return")
            if not 1 <= threshold <= len(set(wanted)):
                raise FailedPreconditionError(
                    f"tenant {tenant}: threshold {threshold} must be between 1 and the {len(set(wanted))} new key(s)"
                )
            tenant_rows.set_signing_threshold(conn, tenant_id=tenant_id, threshold=1)
            for keyid in sorted(active - set(wanted)):
                key_rows.revoke_key_row(conn, tenant_id=tenant_id, tenant=tenant, keyid=keyid)
            tenant_rows.set_signing_threshold(conn, tenant_id=tenant_id, threshold=threshold)

    def claim_server_key(self, *, keyid: str, public_key: dict[str, Any]) -> bool:
        """Record (True) or check (False) the deployment's receipt-signing key; see identity.claim_server_key."""
        with self._db.write() as conn:
            return identity.claim_server_key(conn, keyid=keyid, public_key=public_key)

    def _keys_locked(self, conn: Connection, tenant: str) -> int:
        """The tenant's id, with its keys and threshold locked for this transaction (replicas change them one
        at a time: each change reads the active keys, then writes)."""
        tenant_id = tenant_id_of(conn, tenant)
        db_locks.transaction_lock(conn, namespace="tenant-keys", name=tenant)
        return tenant_id
