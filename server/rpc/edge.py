"""The only place that turns loravault errors into gRPC statuses (`context.abort`).

Every servicer method is wrapped with `unary` or `streaming_response`; library code raises
loravault.core.errors classes and never sees grpc.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from loravault.core.errors import InvalidArgumentError, LoravaultError
from loravault.proto.status import code_for

__all__ = ["unary", "streaming_response", "abort_for", "check_known_fields"]

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def abort_for(error: LoravaultError, context: grpc.ServicerContext, method: str) -> None:
    """Abort with the status mapped from `error` (any other exception reaches grpc, which answers UNKNOWN)."""
    code = code_for(error) or grpc.StatusCode.INTERNAL
    logger.info("rpc %s refused: %s %s", method, code.name, error)
    context.abort(code, str(error))


def check_known_fields(message: Message) -> None:
    """Refuse a message carrying field numbers this server does not know, at any depth.

    protobuf silently keeps unknown fields; a client built from another contract would then have part of its
    request ignored. Refusing it says so at once.
    """
    unknown = [field.field_number for field in UnknownFieldSet(message)]
    if unknown:
        raise InvalidArgumentError(
            f"{message.DESCRIPTOR.name} carries unknown field numbers {sorted(unknown)}: the client was built from "
            "another loravault.v1 contract"
        )
    for field in message.DESCRIPTOR.fields:  # not ListFields: it would copy every set bytes field (1 MiB chunks)
        if field.message_type is None:
            continue
        if field.is_repeated:
            items = getattr(message, field.name)
        elif message.HasField(field.name):
            items = (getattr(message, field.name),)
        else:
            continue
        for item in items:
            if isinstance(item, Message):
                check_known_fields(item)


def unary(method: F) -> F:
    """Wrap a servicer method whose response is a single message (its request is checked for unknown fields)."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            if isinstance(request, Message):
                check_known_fields(request)
            return method(self, request, context)
        except LoravaultError as error:
            abort_for(error, context, method.__qualname__)

    return wrapper  # type: ignore[return-value]


def streaming_response(method: F) -> F:
    """Wrap a servicer method that yields messages: errors raised while iterating are translated too."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            check_known_fields(request)
            yield from method(self, request, context)
        except LoravaultError as error:
            abort_for(error, context, method.__qualname__)

    return wrapper  # type: ignore[return-value]
