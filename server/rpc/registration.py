"""Registering a servicer from its service descriptor, with framed chunk streams where the contract has them.

The generated `add_*Servicer_to_server` functions fix protobuf's own (de)serializers for every method. The
adapter streams (Upload's requests, Download's responses, Erasure.Submit's requests) carry 1 MiB chunks that
protobuf copies on every pass, so those methods use `loravault.proto.ChunkFraming` instead: the same bytes on
the wire, and a servicer that receives a chunk-only message as a memoryview of its payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc

from loravault.proto import ERASURE_CHUNKS, UPLOAD_CHUNKS, ChunkFraming
from loravault.proto import loravault_pb2 as pb

__all__ = ["add_servicer"]

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


def add_servicer(server: grpc.Server, servicer: Any, service: str) -> None:
    """Register every method of loravault.v1.`service` on `server`, as the generated function would."""
    descriptor = pb.DESCRIPTOR.services_by_name[service]
    handlers = {}
    for method in descriptor.methods:
        request_type = getattr(pb, method.input_type.name)
        response_type = getattr(pb, method.output_type.name)
        make = _HANDLERS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_FRAMED_REQUESTS.get((service, method.name), request_type.FromString),
            response_serializer=_FRAMED_RESPONSES.get((service, method.name), response_type.SerializeToString),
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(descriptor.full_name, handlers),))
    server.add_registered_method_handlers(descriptor.full_name, handlers)
