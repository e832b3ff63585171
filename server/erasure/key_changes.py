"""Who may change a tenant's signing keys with a token alone, and the audit trail of an admin's changes.

Signatures exist so that a stolen bearer token is not enough to change what a tenant's signature means. So
(TUF's root rotation, DESIGN.md "Identity and auth"):

- a tenant token may register the tenant's first key and nothing else (trust on first use): once the tenant
  has an active key, every change to its keys or threshold is a rotation signed by a threshold of its current
  keys (loravault.server.erasure.rotation), revocation of a compromised key by the others included;
- an admin token may add or revoke keys and set the threshold at any time (recovery after keys are lost), and
  every such change is an entry in the audit log, in the same transaction as the change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from loravault.core.errors import UnavailableError

from ..audit import AuditLog, KeyChangeRecord
from ..audit.body import KEY_CHANGE_KIND
from ..vault import Vault
from ..vault.records import SigningPolicy

__all__ = ["KeyChanges"]


class KeyChanges:
    """Applies AddKey, RevokeKey and SetThreshold under the rule above; one per server."""

    def __init__(self, *, vault: Vault, audit: AuditLog | None, clock: Callable[[], float] = time.time) -> None:
        self._vault = vault
        self._audit = audit
        self._clock = clock

    def add_key(self, *, tenant: str, public_key: dict[str, Any], by_admin: bool) -> str:
        """Register a key; PermissionDeniedError for a tenant token once the tenant has an active key."""
        hook = self._admin_hook(tenant=tenant, action="add-key", key_id=None) if by_admin else None
        return str(self._vault.credentials.add_key(tenant=tenant, public_key=public_key, trust_on_first_use=not by_admin,
                                       in_transaction=hook))

    def revoke_key(self, *, tenant: str, keyid: str, by_admin: bool) -> None:
        """Revoke a key; a tenant holding keys revokes one by a signed rotation instead."""
        hook = self._admin_hook(tenant=tenant, action="revoke-key", key_id=keyid) if by_admin else None
        self._vault.credentials.revoke_key(tenant=tenant, keyid=keyid, trust_on_first_use=not by_admin, in_transaction=hook)

    def set_threshold(self, *, tenant: str, threshold: int, by_admin: bool) -> None:
        """Set the threshold; a tenant holding keys changes it by a signed rotation instead."""
        hook = self._admin_hook(tenant=tenant, action="set-threshold", key_id="") if by_admin else None
        self._vault.credentials.set_threshold(tenant=tenant, threshold=threshold, trust_on_first_use=not by_admin,
                                  in_transaction=hook)

    def _admin_hook(self, *, tenant: str, action: str,
                    key_id: str | None) -> Callable[[Connection, SigningPolicy], None]:
        """The in-transaction audit append of an admin's change (`key_id` None: the key the change added)."""
        audit = self._audit
        if audit is None:
            raise UnavailableError("an admin's key change must be audited, and this server has no audit log")

        def record(conn: Connection, policy: SigningPolicy) -> None:
            active = tuple(sorted(k.keyid for k in policy.keys if k.status == "active"))
            changed = key_id if key_id is not None else _newest_key(policy)
            audit.append_key_change(conn, KeyChangeRecord(
                kind=KEY_CHANGE_KIND, tenant=tenant, action=action, key_id=changed, active_key_ids=active,
                threshold=policy.threshold, committed_at=int(self._clock())))

        return record


def _newest_key(policy: SigningPolicy) -> str:
    """The key an add just inserted: the vault lists keys in insertion order."""
    return policy.keys[-1].keyid
