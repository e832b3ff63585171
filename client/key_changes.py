"""Key changes as the SDK sends them: a tenant's first key with its token, every later change as a rotation.

Once a tenant has an active key the server accepts a change to its keys or threshold only as a rotation signed
by a threshold of the current keys (loravault.proto.rotation), so that a stolen token alone cannot change what
the tenant's signatures mean. This module turns "add this key", "revoke that one" and "set the threshold" into
that rotation: the new key set and threshold, bound to the active set it replaces, valid for a short window.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from securesystemslib.signer import Signer

from loravault.proto.keys import key_id
from loravault.proto.rotation import sign_key_rotation

__all__ = ["ROTATION_VALIDITY_SECONDS", "rotation_envelope"]

ROTATION_VALIDITY_SECONDS = 600


def rotation_envelope(
    *, tenant: str, active: Sequence[dict[str, Any]], keys: Sequence[dict[str, Any]], threshold: int,
    signers: Sequence[Signer], now: float | None = None,
) -> bytes:
    """A signed rotation that replaces the `active` keys by `keys` with `threshold`.

    `signers` must be a threshold of the `active` keys; the server checks that, and that `active` is still the
    tenant's active set when the rotation arrives (AbortedError otherwise: list the keys again and re-sign).
    """
    issued = int(time.time() if now is None else now)
    return sign_key_rotation(tenant=tenant, new_keys=list(keys), threshold=threshold,
                             replaces=sorted(key_id(k) for k in active), issued_at=issued,
                             expires_at=issued + ROTATION_VALIDITY_SECONDS, signers=list(signers))
