"""The one translation table between loravault's error classes and gRPC status codes.

proto may not import core (DESIGN.md), so the table is keyed by class name and walks the exception's MRO:
the most specific class wins. The server edge uses `code_for`; the SDK uses `error_name_for` to raise the
matching loravault.core.errors class. Envelope errors from loravault.proto.errors are mapped here too.
"""

from __future__ import annotations

import grpc

__all__ = ["STATUS_BY_ERROR", "code_for", "error_name_for"]

STATUS_BY_ERROR: dict[str, grpc.StatusCode] = {
    "DeserializationError": grpc.StatusCode.INVALID_ARGUMENT,
    "InvalidArgumentError": grpc.StatusCode.INVALID_ARGUMENT,
    "MalformedEnvelopeError": grpc.StatusCode.INVALID_ARGUMENT,
    "ManifestError": grpc.StatusCode.INVALID_ARGUMENT,
    "EnvelopeError": grpc.StatusCode.INVALID_ARGUMENT,
    "NotFoundError": grpc.StatusCode.NOT_FOUND,
    "AlreadyExistsError": grpc.StatusCode.ALREADY_EXISTS,
    "PermissionDeniedError": grpc.StatusCode.PERMISSION_DENIED,
    "UnauthenticatedError": grpc.StatusCode.UNAUTHENTICATED,
    "SignatureError": grpc.StatusCode.UNAUTHENTICATED,
    "FailedPreconditionError": grpc.StatusCode.FAILED_PRECONDITION,
    "AbortedError": grpc.StatusCode.ABORTED,
    "ResourceExhaustedError": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "DeadlineExceededError": grpc.StatusCode.DEADLINE_EXCEEDED,
    "UnavailableError": grpc.StatusCode.UNAVAILABLE,
    "DataLossError": grpc.StatusCode.DATA_LOSS,
    "LoravaultError": grpc.StatusCode.INTERNAL,
}

# The class the SDK raises for each code: the general class of each cause, never a more specific subclass.
_ERROR_BY_STATUS: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgumentError",
    grpc.StatusCode.NOT_FOUND: "NotFoundError",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExistsError",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDeniedError",
    grpc.StatusCode.UNAUTHENTICATED: "UnauthenticatedError",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPreconditionError",
    grpc.StatusCode.ABORTED: "AbortedError",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhaustedError",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceededError",
    grpc.StatusCode.UNAVAILABLE: "UnavailableError",
    grpc.StatusCode.DATA_LOSS: "DataLossError",
}


def code_for(error: BaseException) -> grpc.StatusCode | None:
    """The status code of a loravault error, or None for anything else (which the edge reports as INTERNAL)."""
    for cls in type(error).__mro__:
        code = STATUS_BY_ERROR.get(cls.__name__)
        if code is not None:
            return code
    return None


def error_name_for(code: grpc.StatusCode) -> str:
    """The name of the loravault.core.errors class that the SDK raises for a status code."""
    return _ERROR_BY_STATUS.get(code, "LoravaultError")
