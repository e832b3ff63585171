"""The one error tree every part of loravault raises, in the lowest part so every other part can import it.

Each class names a cause; the gRPC edge maps causes to status codes with one table (loravault.proto.status,
keyed by these classes) and the SDK raises the class of each code. core re-exports the tree as
loravault.core.errors. Stdlib only.

    LoravaultError
     +-- InvalidArgumentError          the request itself is malformed (names, shapes, values)
     |    +-- DeserializationError     untrusted bytes (safetensors, JSON, protobuf) failed to parse
     |    |    +-- MalformedEnvelopeError  not JSON, missing or extra fields, bad base64, wrong payload type,
     |    |         |                      a Statement that breaks the in-toto v1 schema, over a size cap
     |    |         +-- MalformedKeyError  a public key dict or private key PEM that does not parse, a weak
     |    |                                key, or a key id that is not the hash of its key
     |    +-- ManifestError            a manifest or receipt field is invalid or inconsistent, or it does not
     |         |                       match what the caller expected
     |         +-- TimeWindowError     outside its issued-at / expires-at window
     |         +-- CommitmentError     a Merkle inclusion proof does not verify against the forget commitment
     +-- NotFoundError                 no such resource, or one the caller may not see
     +-- AlreadyExistsError            the name or request id is taken
     +-- PermissionDeniedError         the caller is known but lacks the authority
     +-- UnauthenticatedError          no valid token
     |    +-- SignatureError           signatures do not verify: unknown keys, tampered bytes, fewer valid
     |                                 signatures than the threshold
     +-- FailedPreconditionError       well formed, but the state forbids it (wrong base, below the floor)
     +-- AbortedError                  a concurrent change won (compare-and-swap lost)
     +-- ResourceExhaustedError        a size or concurrency limit was hit
     +-- DeadlineExceededError         the caller's deadline passed before the work finished
     +-- UnavailableError              the service is shutting down or not ready
     +-- DataLossError                 stored bytes no longer hash to their recorded digest

`EnvelopeError` is a mixin marking the errors of the signed-envelope primitives (MalformedEnvelopeError,
SignatureError, ManifestError and below), so a caller can catch those alone. Every parser of untrusted bytes
raises exactly one of these, `from` the parser's own exception.
"""

from __future__ import annotations

__all__ = [
    "LoravaultError",
    "InvalidArgumentError",
    "DeserializationError",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "FailedPreconditionError",
    "AbortedError",
    "ResourceExhaustedError",
    "DeadlineExceededError",
    "UnavailableError",
    "DataLossError",
    "EnvelopeError",
    "MalformedEnvelopeError",
    "MalformedKeyError",
    "SignatureError",
    "ManifestError",
    "TimeWindowError",
    "CommitmentError",
]


class LoravaultError(Exception):
    """Base of every error loravault raises on purpose."""


class InvalidArgumentError(LoravaultError):
    """The request is malformed: fix the request, retrying it unchanged will fail again."""


class DeserializationError(InvalidArgumentError):
    """Untrusted bytes did not parse; raised `from` the parser's own exception."""


class NotFoundError(LoravaultError):
    """No such resource, or one that belongs to another tenant (the two are indistinguishable on purpose)."""


class AlreadyExistsError(LoravaultError):
    """The name or id is already taken by a different object."""


class PermissionDeniedError(LoravaultError):
    """The caller is authenticated but lacks the authority for the call (role, or signatures it needs)."""


class UnauthenticatedError(LoravaultError):
    """Missing or unknown credentials, or signatures that do not verify."""


class FailedPreconditionError(LoravaultError):
    """Well formed, but the current state forbids it (another base model, below the erasure floor)."""


class AbortedError(LoravaultError):
    """A concurrent change moved the head first; re-read and retry."""


class ResourceExhaustedError(LoravaultError):
    """A size or concurrency limit was exceeded."""


class DeadlineExceededError(LoravaultError):
    """The request's deadline passed while it waited or ran; its work was stopped and its resources freed."""


class UnavailableError(LoravaultError):
    """The service is not able to answer now (shutting down); retrying later may succeed."""


class DataLossError(LoravaultError):
    """Stored bytes are missing or no longer hash to the digest recorded for them."""


class EnvelopeError(LoravaultError):
    """Marks the errors of the signed-envelope primitives; never raised itself."""


class MalformedEnvelopeError(EnvelopeError, DeserializationError):
    """Bytes from outside do not parse as what they claim to be; resending them unchanged fails again."""


class MalformedKeyError(MalformedEnvelopeError):
    """A key (public key dict, private key PEM, key id) does not parse, is weak, or does not match its id."""


class SignatureError(EnvelopeError, UnauthenticatedError):
    """The envelope parsed, but not enough of its signatures verify against the registered keys."""


class ManifestError(EnvelopeError, InvalidArgumentError):
    """A manifest or receipt field is invalid, inconsistent, or not the one the caller expected."""


class TimeWindowError(ManifestError):
    """The manifest has expired, or was issued further in the future than the allowed clock skew."""


class CommitmentError(ManifestError):
    """An inclusion proof does not lead from the given leaf to the committed Merkle root."""
