"""The one error tree every part raises, so the gRPC edge can map causes to status codes in one table.

    LoravaultError
     +-- InvalidArgumentError      the request itself is malformed (names, shapes, bytes that do not parse)
     |    +-- DeserializationError untrusted bytes (safetensors, envelopes, manifests) failed to parse
     +-- NotFoundError             no such resource, or one the caller may not see
     +-- AlreadyExistsError        the name or request id is taken
     +-- PermissionDeniedError     the caller is known but lacks the role
     +-- UnauthenticatedError      no valid token, or a signature that does not verify
     +-- FailedPreconditionError   the request is well formed but the state forbids it (wrong base, below floor)
     +-- AbortedError              a concurrent change won (compare-and-swap lost)
     +-- ResourceExhaustedError    a size or concurrency limit was hit
     +-- DeadlineExceededError     the caller's deadline passed before the work finished
     +-- UnavailableError          the service is shutting down or not ready
     +-- DataLossError             stored bytes no longer hash to their recorded digest

core never imports grpc: the translation to status codes lives in loravault.proto.status.
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
    """The caller is authenticated but its role does not allow the call."""


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
