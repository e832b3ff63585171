"""The one translation table between loravault's error classes and gRPC status codes.

Keyed by the classes themselves, most specific first: `code_for` walks the table in order and the first class
the error is an instance of wins. The server edge aborts with `code_for`; the SDK raises `error_class_for`.
"""

from __future__ import annotations

import grpc

from . import errors

__all__ = ["STATUS_BY_ERROR", "code_for", "error_class_for"]

# most specific first: a SignatureError is an UnauthenticatedError, a ManifestError an InvalidArgumentError
STATUS_BY_ERROR: tuple[tuple[type[errors.LoravaultError], grpc.StatusCode], ...] = (
    (errors.SignatureError, grpc.StatusCode.UNAUTHENTICATED),
    (errors.InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (errors.PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (errors.UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (errors.FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.AbortedError, grpc.StatusCode.ABORTED),
    (errors.ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (errors.DataLossError, grpc.StatusCode.DATA_LOSS),
    (errors.LoravaultError, grpc.StatusCode.INTERNAL),
)

# The class the SDK raises for each code: the general class of each cause, never a more specific subclass.
_ERROR_BY_STATUS: dict[grpc.StatusCode, type[errors.LoravaultError]] = {
    code: cls for cls, code in reversed(STATUS_BY_ERROR) if cls is not errors.SignatureError
}


def code_for(error: BaseException) -> grpc.StatusCode | None:
    """The status code of a loravault error, or None for anything else (which the edge reports as INTERNAL)."""
    for cls, code in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return code
    return None


def error_class_for(code: grpc.StatusCode) -> type[errors.LoravaultError]:
    """The loravault error class that the SDK raises for a status code (LoravaultError for any other code)."""
    return _ERROR_BY_STATUS.get(code, errors.LoravaultError)
