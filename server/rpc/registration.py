"""Registering a servicer from its service descriptor, with framed chunk streams where the contract has them.

The generated `add_*Servicer_to_server` functions fix protobuf's own (de)serializers for every method. The
adapter streams (Upload's requests, Download's responses, Erasure.Submit's requests) carry 1 MiB chunks that
protobuf copies on every pass, so those methods use `loravault.proto.ChunkFraming` instead: the same bytes on
the wire, and a servicer that receives a chunk-only message as a memoryview of its payload.

Request bytes that do not parse become a `MalformedMessage` instead of an exception: grpc answers a failing
deserializer with INTERNAL and logs a traceback, before authentication, so any client could write error lines
at will. The edge (edge.py) answers a MalformedMessage INVALID_ARGUMENT after authentication, and the
deserializer logs one warning line, without a traceback, at most every `_WARN_EVERY_SECONDS` per service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from loravault.proto import ERASURE_CHUNKS, UPLOAD_CHUNKS, ChunkFraming
from loravault.proto import loravault_pb2 as pb

__all__ = ["MalformedMessage", "add_servicer"]

logger = logging.getLogger(__name__)
_WARN_EVERY_SECONDS = 10.0

_HANDLERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}

# (service, method) -> request deserializer; (service, method) -> response serializer
_FRAMED_REQUESTS: Mapping[tuple[str, str], Callable[[bytes], Any]] = {
    ("Adapters", "Upload"): UPLOAD_CHUNKS.deserializer(),
    ("Erasure", "Submit"): ERASURE_CHUNKS.deserializer(),
}
_FRAMED_RESPONSES: Mapping[tuple[str, str], Callable[[Any], bytes]] = {
    ("Adapters", "Download"): ChunkFraming.serialize,
}


@dataclass(frozen=True)
class MalformedMessage:
    """Stands in for request bytes that did not parse; the edge refuses it with INVALID_ARGUMENT."""

    method: str  # the full method name
    reason: str


class _WarnRarely:
    """One warning line per interval for a service's unparsable requests, counting the ones it kept quiet."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._lock = threading.Lock()
        self._next = 0.0
        self._quiet = 0

    def __call__(self, method: str, reason: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._quiet += 1
                return
            quiet, self._quiet, self._next = self._quiet, 0, now + _WARN_EVERY_SECONDS
        logger.warning("unparsable request to %s (%s); %d more since the last warning", method, reason, quiet)


def _tolerant(deserialize: Callable[[bytes], Any], method: str, warn: _WarnRarely) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, RecursionError) as exc:  # RecursionError: protobuf's nesting guard, on some builds
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            warn(method, reason)
            return MalformedMessage(method, reason)

    return parse


def add_servicer(server: grpc.Server, servicer: Any, service: str) -> None:
    """Register every method of loravault.v1.`service` on `server`, as the generated function would."""
    descriptor = pb.DESCRIPTOR.services_by_name[service]
    warn = _WarnRarely(service)
    handlers = {}
    for method in descriptor.methods:
        request_type = getattr(pb, method.input_type.name)
        response_type = getattr(pb, method.output_type.name)
        make = _HANDLERS[(method.client_streaming, method.server_streaming)]
        deserialize = _FRAMED_REQUESTS.get((service, method.name), request_type.FromString)
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_tolerant(deserialize, f"/{descriptor.full_name}/{method.name}", warn),
            response_serializer=_FRAMED_RESPONSES.get((service, method.name), response_type.SerializeToString),
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(descriptor.full_name, handlers),))
    server.add_registered_method_handlers(descriptor.full_name, handlers)
