"""DSSE envelopes around in-toto Statements: sign, serialize, parse untrusted bytes, verify against a threshold.

All pre-authentication encoding and signature work is securesystemslib's (`dsse.Envelope`, `CryptoSigner`,
`SSlibKey`); this module adds what a server facing the internet needs around it:

- a strict parser: size cap, strict JSON, exactly the DSSE fields, canonical standard base64, the in-toto
  payload type, a bounded number of signatures; every failure is one MalformedEnvelopeError;
- threshold verification against a tenant's registered keys, in which signatures by unknown keys do not count
  and several signatures by one key count once, with an error that names the numbers;
- deterministic bytes: Ed25519 signs deterministically and the envelope is written as canonical JSON with its
  signatures sorted by key id, so signing the same statement with the same keys reproduces the same bytes.

NOTE: a valid envelope stays valid forever: replay protection (request ids, time windows) is the caller's job.

Example:

    >>> from loravault.proto.keys import generate_private_key_pem, public_key_dict, signer_from_pem
    >>> from loravault.proto.statement import Statement, Subject
    >>> signer = signer_from_pem(generate_private_key_pem())
    >>> statement = Statement(subject=(Subject(name="a/b@v2", digest={"sha256": "00" * 32}),),
    ...                       predicate_type="urn:example:v1", predicate={})
    >>> data = sign_statement(statement, signers=[signer])
    >>> verify_envelope(data, keys=[public_key_dict(signer)], threshold=1, label="adapter a/b") == statement
    True
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Signature, Signer, SSlibKey

from .errors import MalformedEnvelopeError, SignatureError
from .keys import public_key_dict, public_key_from_dict
from .statement import Statement, canonical_json
from .untrusted_json import parse_json

__all__ = [
    "PAYLOAD_TYPE",
    "MAX_ENVELOPE_BYTES",
    "MAX_SIGNATURES",
    "SignatureCheck",
    "sign_statement",
    "envelope_to_bytes",
    "parse_envelope",
    "check_signatures",
    "verify_signatures",
    "verify_envelope",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_ENVELOPE_BYTES = 64 * 1024  # a signed manifest is about 3 KiB; the stream limit upstream is the real guard
MAX_SIGNATURES = 16  # each signature costs a verification: bound the work one request can ask for
_MAX_SIG_BYTES = 1024
_MAX_KEY_ID_CHARS = 256
_ENVELOPE_FIELDS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})

KeyLike = Mapping[str, Any] | SSlibKey


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome of checking an envelope's signatures: truthy when the threshold is met.

    `accepted_key_ids` are the registered keys (sorted, each once) with at least one valid signature.
    """

    label: str
    accepted_key_ids: tuple[str, ...]
    threshold: int

    def __bool__(self) -> bool:
        return len(self.accepted_key_ids) >= self.threshold

    @property
    def reason(self) -> str:
        """Empty when the check passed, otherwise the message the error carries."""
        if self:
            return ""
        return f"{self.label}: signed by {len(self.accepted_key_ids)} of {self.threshold} required keys"


def _b64decode(text: Any, *, what: str) -> bytes:
    """Standard base64 in its one canonical spelling (padding, no stray bits), as `envelope_to_bytes` writes."""
    if not isinstance(text, str):
        raise MalformedEnvelopeError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise MalformedEnvelopeError(f"{what} is not valid base64: {exc}") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedEnvelopeError(f"{what} is not canonical base64")
    return raw


def _parse_signatures(entries: Any) -> dict[str, Signature]:
    """Key id -> Signature; an entry repeated verbatim collapses into one, two different ones are refused."""
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_SIGNATURES:
        raise MalformedEnvelopeError(f"envelope signatures must be a list of 1 to {MAX_SIGNATURES} entries")
    signatures: dict[str, Signature] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != _SIGNATURE_FIELDS:
            raise MalformedEnvelopeError(f"signature {index} must have exactly the fields {sorted(_SIGNATURE_FIELDS)}")
        keyid = entry["keyid"]
        if not isinstance(keyid, str) or not 0 < len(keyid) <= _MAX_KEY_ID_CHARS:
            raise MalformedEnvelopeError(f"signature {index}: keyid must be 1 to {_MAX_KEY_ID_CHARS} characters")
        sig = _b64decode(entry["sig"], what=f"signature {index} sig")
        if not 0 < len(sig) <= _MAX_SIG_BYTES:
            raise MalformedEnvelopeError(f"signature {index}: sig must be 1 to {_MAX_SIG_BYTES} bytes")
        signature = Signature(keyid, sig.hex())
        if keyid in signatures and signatures[keyid] != signature:
            raise MalformedEnvelopeError(f"envelope holds two different signatures for key id {keyid[:64]!r}")
        signatures[keyid] = signature
    return signatures


def parse_envelope(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    """Parse untrusted bytes as a DSSE envelope carrying an in-toto Statement; signatures are not checked.

    Raises:
        MalformedEnvelopeError: over `max_bytes`, not strict JSON, missing or extra fields, bad base64, a
            payload type other than PAYLOAD_TYPE, no or too many signatures. Always `from` the cause.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedEnvelopeError(f"envelope must be bytes, not {type(data).__name__}")
    if len(data) > max_bytes:
        raise MalformedEnvelopeError(f"envelope is {len(data)} bytes, more than the {max_bytes} allowed")
    document = parse_json(bytes(data), what="envelope", max_bytes=max_bytes)
    if not isinstance(document, dict) or set(document) != _ENVELOPE_FIELDS:
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise MalformedEnvelopeError(f"envelope must have exactly the fields {sorted(_ENVELOPE_FIELDS)}, found {found}")
    if document["payloadType"] != PAYLOAD_TYPE:
        raise MalformedEnvelopeError(f"envelope payloadType must be {PAYLOAD_TYPE!r}")
    payload = _b64decode(document["payload"], what="envelope payload")
    return Envelope(payload, PAYLOAD_TYPE, _parse_signatures(document["signatures"]))


def envelope_to_bytes(envelope: Envelope) -> bytes:
    """The envelope as canonical JSON with its signatures sorted by key id (deterministic bytes)."""
    document = envelope.to_dict()
    document["signatures"] = sorted(document["signatures"], key=lambda s: s["keyid"])
    return canonical_json(document)


def sign_statement(statement: Statement, *, signers: Sequence[Signer]) -> bytes:
    """Sign a Statement's canonical bytes with each signer; returns the envelope's bytes.

    Raises:
        ValueError: no signers, or two signers with one key id (the second would replace the first).
    """
    key_ids = [signer.public_key.keyid for signer in signers]
    if not key_ids or len(set(key_ids)) != len(key_ids):
        raise ValueError(f"need one or more signers with distinct key ids, got {key_ids}")
    envelope = Envelope(statement.to_bytes(), PAYLOAD_TYPE, {})
    for signer in signers:
        envelope.sign(signer)
    return envelope_to_bytes(envelope)


def _registered_keys(keys: Iterable[KeyLike]) -> list[SSlibKey]:
    """Re-validate registered keys and drop repeats, so one key can never be counted twice."""
    unique: dict[str, SSlibKey] = {}
    for key in keys:
        if isinstance(key, SSlibKey):
            parsed = public_key_from_dict(public_key_dict(key), expected_key_id=key.keyid)
        else:
            parsed = public_key_from_dict(key)
        unique[parsed.keyid] = parsed
    return list(unique.values())


def _check_threshold(threshold: int) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError(f"threshold must be a positive integer, got {threshold!r}")


def check_signatures(
    envelope: Envelope, *, keys: Iterable[KeyLike], threshold: int, label: str = "envelope"
) -> SignatureCheck:
    """Which registered keys signed the envelope, and whether they reach the threshold.

    `keys` are public key dicts (or SSlibKeys) registered by the signer's owner; `label` names the object
    in the reason ("adapter acme/support"). Never raises for bad signatures: see `verify_signatures`.

    Raises:
        ValueError: threshold is not a positive integer.
        MalformedKeyError: a registered key is invalid (a server-side bug, not the caller's).
    """
    _check_threshold(threshold)
    accepted = []
    for key in _registered_keys(keys):
        try:
            envelope.verify([key], 1)  # securesystemslib: PAE, key id match, Ed25519 verify
        except UnverifiedSignatureError:  # also its subclass VerificationError: no valid signature by this key
            continue
        accepted.append(key.keyid)
    return SignatureCheck(label=label, accepted_key_ids=tuple(sorted(accepted)), threshold=threshold)


def verify_signatures(
    envelope: Envelope, *, keys: Iterable[KeyLike], threshold: int, label: str = "envelope"
) -> tuple[str, ...]:
    """The ids of the registered keys that signed, when they reach the threshold.

    Raises:
        SignatureError: fewer than `threshold` registered keys signed ("adapter acme/support: signed by 1 of 2
            required keys").
        ValueError, MalformedKeyError: as `check_signatures`.
    """
    registered = _registered_keys(keys)
    check = check_signatures(envelope, keys=registered, threshold=threshold, label=label)
    if not check:
        raise SignatureError(check.reason)
    try:  # the library's own threshold rule must agree with the count above
        envelope.verify([*registered], threshold)  # a list[Key], which list[SSlibKey] is not (invariance)
    except UnverifiedSignatureError as exc:
        raise SignatureError(f"{label}: signatures do not reach the threshold of {threshold}") from exc
    return check.accepted_key_ids


def verify_envelope(
    data: bytes,
    *,
    keys: Iterable[KeyLike],
    threshold: int,
    label: str = "envelope",
    max_bytes: int = MAX_ENVELOPE_BYTES,
) -> Statement:
    """Parse untrusted envelope bytes, verify the threshold of signatures, and return the signed Statement.

    Signatures are checked before the payload is parsed as a Statement, so unauthenticated bytes reach only the
    envelope parser.

    Raises:
        MalformedEnvelopeError: the envelope or its Statement does not parse.
        SignatureError: fewer than `threshold` registered keys signed.
    """
    envelope = parse_envelope(data, max_bytes=max_bytes)
    verify_signatures(envelope, keys=keys, threshold=threshold, label=label)
    return Statement.from_bytes(envelope.payload)
