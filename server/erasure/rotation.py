"""Applying a key rotation (its format: loravault.proto.rotation) signed by a threshold of the current keys.

`replaces` binds the rotation to the key set it changes, so it cannot be replayed once that set changed; the
validity window bounds how long a signed rotation stays usable. Revoked keys never sign again, and the vault
refuses to bring one back.
"""

from __future__ import annotations

from loravault.core.errors import AbortedError, InvalidArgumentError
from loravault.proto.envelope import verify_envelope
from loravault.proto.rotation import KeyRotation

from ..vault import Vault

__all__ = ["rotate_keys"]


def rotate_keys(envelope: bytes, *, tenant: str, vault: Vault, now: float, clock_skew: int) -> KeyRotation:
    """Verify a rotation against the tenant's current active keys and threshold, then apply it atomically.

    Raises UnauthenticatedError (too few current keys signed), InvalidArgumentError (malformed, another
    tenant, outside its window), AbortedError (the active key set is no longer the one it replaces),
    AlreadyExistsError (it lists a revoked key), FailedPreconditionError (threshold out of range).
    """
    policy = vault.credentials.signing_policy(tenant=tenant)
    active = {k.keyid: k.public_key for k in policy.keys if k.status == "active"}
    statement = verify_envelope(envelope, keys=list(active.values()), threshold=policy.threshold,
                                label=f"key rotation of {tenant}")
    rotation = KeyRotation.from_statement(statement)
    if rotation.tenant != tenant:
        raise InvalidArgumentError(f"key rotation is for tenant {rotation.tenant!r}, not {tenant!r}")
    if not rotation.issued_at - clock_skew <= now < rotation.expires_at:
        raise InvalidArgumentError(
            f"key rotation of {tenant} is valid in [{rotation.issued_at}, {rotation.expires_at}), now is {int(now)}")
    if set(rotation.replaces) != set(active):
        raise AbortedError(f"key rotation of {tenant} replaces another key set than the active one; re-sign it")
    vault.credentials.rotate_keys(tenant=tenant, public_keys=[dict(k) for k in rotation.keys], threshold=rotation.threshold,
                      expected_active=set(rotation.replaces))
    return rotation
