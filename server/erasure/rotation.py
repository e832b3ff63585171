"""Key rotation signed by a threshold of the tenant's current keys (DESIGN.md, Identity and auth).

A rotation is an in-toto Statement in a DSSE envelope, predicateType KEY_ROTATION_PREDICATE_TYPE, whose one
subject is `<tenant>/keys` with the sha256 of the canonical JSON of {keys, threshold}. Its predicate:

    {"tenant": ..., "keys": [public key dicts, sorted by key id], "threshold": n,
     "replaces": [the active key ids it was signed against, sorted], "issued_at": s, "expires_at": s}

`replaces` binds the rotation to the key set it changes, so it cannot be replayed once that set changed; the
validity window bounds how long a signed rotation stays usable. Revoked keys never sign again, and the vault
refuses to bring one back.

NOTE: the client needs `sign_key_rotation` too; it belongs in loravault.proto (which the client may import)
and lives here until it moves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Signer

from loravault.core.errors import AbortedError, InvalidArgumentError
from loravault.proto.envelope import sign_statement, verify_envelope
from loravault.proto.keys import key_id, public_key_from_dict
from loravault.proto.manifest import MAX_VALIDITY_SECONDS
from loravault.proto.statement import Statement, Subject, canonical_json

from .signatures import as_loravault_error

__all__ = ["KEY_ROTATION_PREDICATE_TYPE", "KeyRotation", "rotate_keys", "sign_key_rotation"]

KEY_ROTATION_PREDICATE_TYPE = "urn:loravault:key-rotation:v1"
MAX_NEW_KEYS = 16


@dataclass(frozen=True)
class KeyRotation:
    tenant: str
    keys: tuple[dict[str, Any], ...]  # the new active set, securesystemslib form
    threshold: int
    replaces: tuple[str, ...]  # the active key ids it was signed against
    issued_at: int
    expires_at: int

    def __post_init__(self) -> None:
        if not 0 < len(self.keys) <= MAX_NEW_KEYS:
            raise InvalidArgumentError(f"a key rotation lists 1 to {MAX_NEW_KEYS} keys")
        for key in self.keys:
            with as_loravault_error():
                public_key_from_dict(key)
        ids = [key_id(k) for k in self.keys]
        if ids != sorted(set(ids)):
            raise InvalidArgumentError("rotation keys must be distinct and sorted by key id")
        valid_int = isinstance(self.threshold, int) and not isinstance(self.threshold, bool)
        if not valid_int or not 1 <= self.threshold <= len(ids):
            raise InvalidArgumentError(f"rotation threshold must be 1 to {len(ids)}, got {self.threshold!r}")
        if list(self.replaces) != sorted(set(self.replaces)):
            raise InvalidArgumentError("rotation replaces must be sorted, distinct key ids")
        if not 0 < self.expires_at - self.issued_at <= MAX_VALIDITY_SECONDS:
            raise InvalidArgumentError(f"rotation window must be positive and at most {MAX_VALIDITY_SECONDS} s")

    def to_statement(self) -> Statement:
        digest = hashlib.sha256(canonical_json({"keys": list(self.keys), "threshold": self.threshold})).hexdigest()
        return Statement(
            subject=(Subject(name=f"{self.tenant}/keys", digest={"sha256": digest}),),
            predicate_type=KEY_ROTATION_PREDICATE_TYPE,
            predicate={"tenant": self.tenant, "keys": list(self.keys), "threshold": self.threshold,
                       "replaces": list(self.replaces), "issued_at": self.issued_at, "expires_at": self.expires_at},
        )

    @classmethod
    def from_statement(cls, statement: Statement) -> KeyRotation:
        if statement.predicate_type != KEY_ROTATION_PREDICATE_TYPE:
            raise InvalidArgumentError(f"predicateType is not {KEY_ROTATION_PREDICATE_TYPE!r}")
        data = statement.to_dict()["predicate"]
        fields = {"tenant", "keys", "threshold", "replaces", "issued_at", "expires_at"}
        if not isinstance(data, dict) or set(data) != fields:
            raise InvalidArgumentError(f"key rotation predicate must have exactly the fields {sorted(fields)}")
        try:
            rotation = cls(tenant=data["tenant"], keys=tuple(data["keys"]), threshold=data["threshold"],
                           replaces=tuple(data["replaces"]), issued_at=int(data["issued_at"]),
                           expires_at=int(data["expires_at"]))
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"key rotation predicate is invalid: {exc}") from exc
        if rotation.to_statement().to_bytes() != statement.to_bytes():
            raise InvalidArgumentError("key rotation statement is not in its canonical form")
        return rotation


def sign_key_rotation(
    *, tenant: str, new_keys: Sequence[dict[str, Any]], threshold: int, replaces: Sequence[str],
    issued_at: int, expires_at: int, signers: Sequence[Signer],
) -> bytes:
    """The DSSE envelope bytes of a rotation, signed by `signers` (a threshold of the current active keys)."""
    keys = tuple(sorted((dict(k) for k in new_keys), key=key_id))
    rotation = KeyRotation(tenant=tenant, keys=keys, threshold=threshold, replaces=tuple(sorted(replaces)),
                           issued_at=issued_at, expires_at=expires_at)
    return sign_statement(rotation.to_statement(), signers=signers)


def rotate_keys(envelope: bytes, *, tenant: str, vault: Any, now: float, clock_skew: int) -> KeyRotation:
    """Verify a rotation against the tenant's current active keys and threshold, then apply it atomically.

    Raises UnauthenticatedError (too few current keys signed), InvalidArgumentError (malformed, another
    tenant, outside its window), AbortedError (the active key set is no longer the one it replaces),
    AlreadyExistsError (it lists a revoked key), FailedPreconditionError (threshold out of range).
    """
    active = {k.keyid: k.public_key for k in vault.list_keys(tenant=tenant) if k.status == "active"}
    with as_loravault_error():
        statement = verify_envelope(envelope, keys=list(active.values()),
                                    threshold=vault.get_threshold(tenant=tenant), label=f"key rotation of {tenant}")
    rotation = KeyRotation.from_statement(statement)
    if rotation.tenant != tenant:
        raise InvalidArgumentError(f"key rotation is for tenant {rotation.tenant!r}, not {tenant!r}")
    if not rotation.issued_at - clock_skew <= now < rotation.expires_at:
        raise InvalidArgumentError(
            f"key rotation of {tenant} is valid in [{rotation.issued_at}, {rotation.expires_at}), now is {int(now)}")
    if set(rotation.replaces) != set(active):
        raise AbortedError(f"key rotation of {tenant} replaces another key set than the active one; re-sign it")
    vault.rotate_keys(tenant=tenant, public_keys=[dict(k) for k in rotation.keys], threshold=rotation.threshold,
                      expected_active=set(rotation.replaces))
    return rotation
