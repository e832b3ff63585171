"""The only place that turns loravault errors into gRPC statuses (`context.abort`), and the checks every
request message passes before a servicer sees it.

Every servicer method is wrapped with `unary` or `streaming_response`; library code raises
loravault.core.errors classes and never sees grpc. Each request message (and each message of a request stream)
is refused with INVALID_ARGUMENT when its bytes did not parse (registration.MalformedMessage), when it carries
field numbers this server does not know, or when an unsigned 64-bit field holds 2^63 or more: such fields are
versions, indexes and counts that the database stores as signed 64-bit integers, and a value past that range
would otherwise fail deep inside the database driver (a sampling seed, which is never stored, is exempt).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from loravault.core.errors import InvalidArgumentError, LoravaultError
from loravault.proto.status import code_for

from .registration import MalformedMessage

__all__ = ["unary", "streaming_response", "abort_for", "check_message", "MAX_UINT64_FIELD"]

MAX_UINT64_FIELD = 2**63 - 1
_UNSIGNED_64 = (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64)
# unsigned 64-bit fields that are not stored and take their whole range (a sampling seed)
_FULL_RANGE_FIELDS = frozenset({"loravault.v1.SamplingParams.seed"})

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def abort_for(error: LoravaultError, context: grpc.ServicerContext, method: str) -> None:
    """Abort with the status mapped from `error` (any other exception reaches grpc, which answers UNKNOWN)."""
    code = code_for(error) or grpc.StatusCode.INTERNAL
    logger.info("rpc %s refused: %s %s", method, code.name, error)
    context.abort(code, str(error))


def check_message(message: object) -> None:
    """Refuse a request message that did not parse, or that `_check_fields` refuses at any depth."""
    if isinstance(message, MalformedMessage):
        raise InvalidArgumentError(f"request to {message.method} is not a valid protobuf message ({message.reason})")
    if isinstance(message, Message):
        _check_fields(message)


def _check_fields(message: Message) -> None:
    """Unknown field numbers (protobuf silently keeps them: a client built from another contract would have part
    of its request ignored) and unsigned 64-bit values past the signed range."""
    unknown = [field.field_number for field in UnknownFieldSet(message)]
    if unknown:
        raise InvalidArgumentError(
            f"{message.DESCRIPTOR.name} carries unknown field numbers {sorted(unknown)}: the client was built from "
            "another loravault.v1 contract"
        )
    for field in message.DESCRIPTOR.fields:  # not ListFields: it would copy every set bytes field (1 MiB chunks)
        if field.type in _UNSIGNED_64 and field.full_name not in _FULL_RANGE_FIELDS:
            values = getattr(message, field.name)
            for value in values if field.is_repeated else (values,):
                if value > MAX_UINT64_FIELD:
                    raise InvalidArgumentError(
                        f"{message.DESCRIPTOR.name}.{field.name} is {value}, at most {MAX_UINT64_FIELD} allowed")
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
                _check_fields(item)


def _checked_stream(requests: Iterator[Any]) -> Iterator[Any]:
    """A request stream whose every message passes `check_message` as it is read."""
    for request in requests:
        check_message(request)
        yield request


def unary(method: F) -> F:
    """Wrap a servicer method whose response is a single message; its request (or each message of a request
    stream) passes `check_message`."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            if isinstance(request, (Message, MalformedMessage)):
                check_message(request)
            else:
                request = _checked_stream(request)
            return method(self, request, context)
        except LoravaultError as error:
            abort_for(error, context, method.__qualname__)

    return wrapper  # type: ignore[return-value]


def streaming_response(method: F) -> F:
    """Wrap a servicer method that yields messages: errors raised while iterating are translated too."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            check_message(request)
            yield from method(self, request, context)
        except LoravaultError as error:
            abort_for(error, context, method.__qualname__)

    return wrapper  # type: ignore[return-value]
