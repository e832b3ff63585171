"""The errors of the signed-envelope primitives, so the gRPC edge can map each cause to one status code.

proto may not import loravault.core (DESIGN.md), so these classes are a small tree of their own; the edge
maps them by class name in loravault.proto.status (the most specific class in the MRO wins):

    EnvelopeError                   base of everything below; never raised itself
     +-- MalformedEnvelopeError     untrusted bytes do not parse: not JSON, missing or extra fields, bad
     |    |                         base64, wrong payload type, a Statement that breaks the in-toto v1
     |    |                         schema, input over the size cap                     -> INVALID_ARGUMENT
     |    +-- MalformedKeyError     a public key dict or private key PEM that does not parse, or a key id
     |                              that is not the hash of its key                     -> INVALID_ARGUMENT
     +-- SignatureError             signatures do not verify: unknown keys, tampered bytes, fewer valid
     |                              signatures than the threshold                       -> UNAUTHENTICATED
     +-- ManifestError              a manifest or receipt field is invalid or inconsistent, or it does not
          |                         match what the caller expected                      -> INVALID_ARGUMENT
          +-- TimeWindowError       outside its issued-at / expires-at window
          +-- CommitmentError       a Merkle inclusion proof does not verify against the forget commitment

Every parser of untrusted bytes here raises exactly one of these, `from` the parser's own exception.
"""

from __future__ import annotations

__all__ = [
    "EnvelopeError",
    "MalformedEnvelopeError",
    "MalformedKeyError",
    "SignatureError",
    "ManifestError",
    "TimeWindowError",
    "CommitmentError",
]


class EnvelopeError(Exception):
    """Base of every error the envelope primitives raise on purpose."""


class MalformedEnvelopeError(EnvelopeError):
    """Bytes from outside do not parse as what they claim to be; resending them unchanged fails again."""


class MalformedKeyError(MalformedEnvelopeError):
    """A key (public key dict, private key PEM, key id) does not parse or does not match its id."""


class SignatureError(EnvelopeError):
    """The envelope parsed, but not enough of its signatures verify against the registered keys."""


class ManifestError(EnvelopeError):
    """A manifest or receipt field is invalid, inconsistent, or not the one the caller expected."""


class TimeWindowError(ManifestError):
    """The manifest has expired, or was issued further in the future than the allowed clock skew."""


class CommitmentError(ManifestError):
    """An inclusion proof does not lead from the given leaf to the committed Merkle root."""
