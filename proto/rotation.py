"""Key rotation signed by a threshold of the tenant's current keys (DESIGN.md, Identity and auth).

A rotation is an in-toto Statement in a DSSE envelope, predicateType KEY_ROTATION_PREDICATE_TYPE, whose one
subject is `<tenant>/keys` with the sha256 of the canonical JSON of {keys, threshold}. Its predicate:

    {"tenant": ..., "keys": [public key dicts, sorted by key id], "threshold": n,
     "replaces": [the active key ids it was signed against, sorted], "issued_at": s, "expires_at": s}

`replaces` binds the rotation to the key set it changes, so it cannot be replayed once that set changed; the
validity window bounds how long a signed rotation stays usable. Revoked keys never sign again, and the vault
refuses to bring one back.

The format and its signing live here, where the client (which builds and signs rotations) and the server (which
verifies and applies them, in loravault.server.erasure.rotation) both reach them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Signer

from .envelope import sign_statement
from .errors import ManifestError
from .keys import key_id, public_key_from_dict
from .manifest import MAX_VALIDITY_SECONDS
from .statement import Statement, Subject, canonical_json

__all__ = ["KEY_ROTATION_PREDICATE_TYPE", "KeyRotation", "sign_key_rotation"]

KEY_ROTATION_PREDICATE_TYPE = "urn:loravault:key-rotation:v1"
MAX_NEW_KEYS = 16


@dataclass(frozen=True)
class KeyRotation:
    """What a rotation signs; validates itself, so a malformed one never reaches a signer or the vault."""

    tenant: str
    keys: tuple[dict[str, Any], ...]  # the new active set, securesystemslib form
    threshold: int
    replaces: tuple[str, ...]  # the active key ids it was signed against
    issued_at: int
    expires_at: int

    def __post_init__(self) -> None:
        if not 0 < len(self.keys) <= MAX_NEW_KEYS:
            raise ManifestError(f"a key rotation lists 1 to {MAX_NEW_KEYS} keys")
        for key in self.keys:
            public_key_from_dict(key)
        ids = [key_id(k) for k in self.keys]
        if ids != sorted(set(ids)):
            raise ManifestError("rotation keys must be distinct and sorted by key id")
        valid_int = isinstance(self.threshold, int) and not isinstance(self.threshold, bool)
        if not valid_int or not 1 <= self.threshold <= len(ids):
            raise ManifestError(f"rotation threshold must be 1 to {len(ids)}, got {self.threshold!r}")
        if list(self.replaces) != sorted(set(self.replaces)):
            raise ManifestError("rotation replaces must be sorted, distinct key ids")
        if not 0 < self.expires_at - self.issued_at <= MAX_VALIDITY_SECONDS:
            raise ManifestError(f"rotation window must be positive and at most {MAX_VALIDITY_SECONDS} s")

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
            raise ManifestError(f"predicateType is not {KEY_ROTATION_PREDICATE_TYPE!r}")
        data = statement.to_dict()["predicate"]
        fields = {"tenant", "keys", "threshold", "replaces", "issued_at", "expires_at"}
        if not isinstance(data, dict) or set(data) != fields:
            raise ManifestError(f"key rotation predicate must have exactly the fields {sorted(fields)}")
        try:
            rotation = cls(tenant=data["tenant"], keys=tuple(data["keys"]), threshold=data["threshold"],
                           replaces=tuple(data["replaces"]), issued_at=int(data["issued_at"]),
                           expires_at=int(data["expires_at"]))
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"key rotation predicate is invalid: {exc}") from exc
        if rotation.to_statement().to_bytes() != statement.to_bytes():
            raise ManifestError("key rotation statement is not in its canonical form")
        return rotation


def sign_key_rotation(
    *, tenant: str, new_keys: Sequence[dict[str, Any]], threshold: int, replaces: Sequence[str],
    issued_at: int, expires_at: int, signers: Sequence[Signer],
) -> bytes:
    """The DSSE envelope bytes of a rotation, signed by `signers` (a threshold of the current active keys)."""
    for key in new_keys:
        public_key_from_dict(key)  # MalformedKeyError here, before a malformed key is sorted by its id
    keys = tuple(sorted((dict(k) for k in new_keys), key=key_id))
    rotation = KeyRotation(tenant=tenant, keys=keys, threshold=threshold, replaces=tuple(sorted(replaces)),
                           issued_at=issued_at, expires_at=expires_at)
    return sign_statement(rotation.to_statement(), signers=signers)
