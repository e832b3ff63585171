"""Raising loravault's typed errors from gRPC statuses, through proto's one translation table."""

from __future__ import annotations

import grpc

from loravault.core import errors
from loravault.proto.status import error_class_for

__all__ = ["from_rpc_error"]


def from_rpc_error(error: grpc.RpcError) -> errors.LoravaultError:
    """The loravault.core.errors instance for a failed call, carrying the server's message.

    UNAVAILABLE and DEADLINE_EXCEEDED become UnavailableError so callers can retry on one class.
    """
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.UnavailableError(f"deadline exceeded: {details}")
    return error_class_for(code)(details or code.name)
