"""The Erasure service: signed erasure submissions, receipts, the server's key.

Thin: parse the wire, call loravault.server.erasure, reply.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from loravault.core.errors import InvalidArgumentError, UnavailableError
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc
from loravault.proto.keys import public_key_dict

from ..erasure import ErasureHeader, ErasurePipeline, ErasureResult
from .auth import PrincipalContext, tenant_scope
from .convert import version_to_pb
from .edge import unary
from .state import ServerState

__all__ = ["ErasureService"]


class ErasureService(pb_grpc.ErasureServicer):
    def __init__(self, state: ServerState) -> None:
        self._state = state

    @unary
    def Submit(self, request_iterator: Iterator[pb.ErasureMessage | memoryview], context: PrincipalContext
               ) -> pb.ErasureReceipt:
        first = next(request_iterator, None)
        if not isinstance(first, pb.ErasureMessage) or first.WhichOneof("part") != "header":
            raise InvalidArgumentError("erasure stream must start with a header message")
        h = first.header
        header = ErasureHeader(tenant=tenant_scope(context.principal, h.ref.tenant), adapter=h.ref.adapter,
                               envelope=h.envelope, delta_size=h.delta_size, delta_sha256=h.delta_sha256)
        return _receipt_to_pb(self._pipeline().submit(header, _chunks(request_iterator)))

    @unary
    def GetReceipt(self, request: pb.GetReceiptRequest, context: PrincipalContext) -> pb.ErasureReceipt:
        tenant = tenant_scope(context.principal, request.ref.tenant)
        result = self._pipeline().receipt(tenant=tenant, adapter=request.ref.adapter, request_id=request.request_id)
        return _receipt_to_pb(result)

    @unary
    def GetServerKey(self, request: pb.GetServerKeyRequest, context: PrincipalContext) -> pb.ServerKey:
        signer = self._pipeline().audit.signer
        if signer is None:
            raise UnavailableError("this server's audit log was opened without the server key")
        return pb.ServerKey(keyid=signer.public_key.keyid,
                            public_key_json=json.dumps(public_key_dict(signer), sort_keys=True))

    def _pipeline(self) -> ErasurePipeline:
        if self._state.erasure is None:
            raise UnavailableError("this server was started without the erasure pipeline (no server key)")
        return self._state.erasure


def _chunks(messages: Iterator[pb.ErasureMessage | memoryview]) -> Iterator[bytes | memoryview]:
    """The delta's chunks; a chunk-only message arrives as a memoryview of its payload (see registration.py)."""
    for message in messages:
        if isinstance(message, memoryview):
            yield message
            continue
        if message.WhichOneof("part") != "chunk":
            raise InvalidArgumentError("erasure stream may carry one header, then chunks only")
        yield message.chunk


def _receipt_to_pb(result: ErasureResult) -> pb.ErasureReceipt:
    return pb.ErasureReceipt(envelope=result.receipt, version=version_to_pb(result.version),
                             log_index=result.log_index)
