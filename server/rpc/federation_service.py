"""The Federation service: signed federation rounds committed as shared-adapter versions, and their provenance.

Thin: parse the wire, call loravault.server.federation, reply. The round pipeline shares the erasure
pipeline's audit log (and so the server key that signs receipts); without it the service answers UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import Iterator

from loravault.core.errors import InvalidArgumentError, UnavailableError
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc

from ..federation import RoundHeader, RoundPipeline
from .auth import PrincipalContext, tenant_scope
from .convert import version_to_pb
from .edge import unary
from .state import ServerState

__all__ = ["FederationService"]

_DEFAULT_LIMIT = 1000


class FederationService(pb_grpc.FederationServicer):
    def __init__(self, state: ServerState) -> None:
        self._pipeline = None if state.erasure is None else RoundPipeline(
            vault=state.vault, audit=state.erasure.audit, base_fingerprint=state.base.fingerprint)

    @unary
    def CommitRound(self, request_iterator: Iterator[pb.RoundMessage], context: PrincipalContext) -> pb.RoundReceipt:
        first = next(request_iterator, None)
        if not isinstance(first, pb.RoundMessage) or first.WhichOneof("part") != "header":
            raise InvalidArgumentError("round stream must start with a header message")
        h = first.header
        header = RoundHeader(tenant=tenant_scope(context.principal, h.ref.tenant), adapter=h.ref.adapter,
                             envelope=h.envelope, aggregate_size=h.aggregate_size, aggregate_sha256=h.aggregate_sha256)
        result = self._require().submit(header, _chunks(request_iterator))
        return pb.RoundReceipt(envelope=result.receipt, version=version_to_pb(result.version),
                               log_index=result.log_index)

    @unary
    def ListRounds(self, request: pb.ListRoundsRequest, context: PrincipalContext) -> pb.ListRoundsResponse:
        tenant = tenant_scope(context.principal, request.ref.tenant)
        rounds = self._require().rounds(tenant=tenant, adapter=request.ref.adapter, after=request.after,
                                        limit=min(request.limit or _DEFAULT_LIMIT, _DEFAULT_LIMIT))
        return pb.ListRoundsResponse(rounds=[pb.RoundProvenance(version=r.version, manifest_hash=r.manifest_hash,
                                                                envelope=r.envelope) for r in rounds])

    def _require(self) -> RoundPipeline:
        if self._pipeline is None:
            raise UnavailableError("this server was started without the erasure pipeline (no server key), "
                                   "which signs round receipts too")
        return self._pipeline


def _chunks(messages: Iterator[pb.RoundMessage]) -> Iterator[bytes]:
    for message in messages:  # each already passed the edge's check_message
        if message.WhichOneof("part") != "chunk":
            raise InvalidArgumentError("round stream may carry one header, then chunks only")
        yield message.chunk
