"""The deployment's identity row: the public half of the one key that signs receipts and checkpoints.

Several replicas share one database; a receipt must verify whichever replica issued it, so they must all sign
with the same key. The first replica to start records its public key here; every later start compares its
own key with the recorded one and refuses to serve when they differ.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert, select

from loravault.core import FailedPreconditionError

from .clock import utc_now
from .db_locks import transaction_lock
from .tables import server_identity

__all__ = ["claim_server_key"]


def claim_server_key(conn: Connection, *, keyid: str, public_key: dict[str, Any]) -> bool:
    """Record `keyid` as the deployment's signing key if none is recorded yet (True), or check it (False).

    Raises FailedPreconditionError when the database names another key: this replica would sign receipts
    that the others' public key does not verify.
    """
    transaction_lock(conn, namespace="bootstrap", name="server-key")
    recorded = conn.scalar(select(server_identity.c.keyid).where(server_identity.c.id == 1))
    if recorded is None:
        conn.execute(insert(server_identity).values(
            id=1, keyid=keyid, public_key=json.dumps(public_key, sort_keys=True), created_at=utc_now()))
        return True
    if recorded != keyid:
        raise FailedPreconditionError(
            f"this server's signing key {keyid[:12]}… is not the deployment's key {recorded[:12]}… recorded in "
            "the database; give every replica the same key file (serve --server-key)"
        )
    return False
