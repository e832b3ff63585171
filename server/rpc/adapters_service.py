"""The Adapters service: schemas, versions, streaming upload and download, rollback."""

from __future__ import annotations

from collections.abc import Iterator

from loravault.core.adapter_schema import AdapterSchema
from loravault.core.base_layout import check_fits
from loravault.core.errors import InvalidArgumentError
from loravault.proto import DOWNLOAD_CHUNKS
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc

from ..uploads import UploadHeader, check_adapter_bytes, receive_version
from .auth import PrincipalContext, tenant_scope
from .convert import adapter_to_pb, schema_from_pb, version_to_pb
from .edge import streaming_response, unary
from .state import ServerState

__all__ = ["AdaptersService"]

_DEFAULT_PAGE = 1000


class AdaptersService(pb_grpc.AdaptersServicer):
    def __init__(self, state: ServerState) -> None:
        self._state = state

    @unary
    def CreateAdapter(self, request: pb.CreateAdapterRequest, context: PrincipalContext) -> pb.Adapter:
        tenant = tenant_scope(context.principal, request.ref.tenant)
        schema = self._new_schema(request.schema, what=f"adapter {tenant}/{request.ref.adapter}")
        return adapter_to_pb(self._state.vault.adapters.create_adapter(tenant=tenant, name=request.ref.adapter, schema=schema))

    def _new_schema(self, message: pb.AdapterSchema, *, what: str) -> AdapterSchema:
        """A schema an adapter is created with: within the server's size cap, and fitting the base it holds."""
        schema = schema_from_pb(message)
        check_adapter_bytes(schema.max_blob_bytes(), limit=self._state.max_adapter_bytes, what=what)
        check_fits(schema, self._state.base)
        return schema

    @unary
    def GetAdapter(self, request: pb.GetAdapterRequest, context: PrincipalContext) -> pb.Adapter:
        tenant = tenant_scope(context.principal, request.ref.tenant)
        return adapter_to_pb(self._state.vault.adapters.get_adapter(tenant=tenant, name=request.ref.adapter))

    @unary
    def ListAdapters(self, request: pb.ListAdaptersRequest, context: PrincipalContext) -> pb.ListAdaptersResponse:
        tenant = tenant_scope(context.principal, request.tenant)
        return pb.ListAdaptersResponse(adapters=[adapter_to_pb(a) for a in self._state.vault.adapters.list_adapters(tenant=tenant)])

    @unary
    def ListVersions(self, request: pb.ListVersionsRequest, context: PrincipalContext) -> pb.ListVersionsResponse:
        tenant = tenant_scope(context.principal, request.ref.tenant)
        page = self._state.vault.adapters.list_versions(tenant=tenant, adapter=request.ref.adapter, after=request.after,
                                               limit=min(request.limit or _DEFAULT_PAGE, _DEFAULT_PAGE))
        return pb.ListVersionsResponse(versions=[version_to_pb(v) for v in page])

    @unary
    def DeleteAdapter(self, request: pb.DeleteAdapterRequest, context: PrincipalContext) -> pb.DeleteAdapterResponse:
        tenant = tenant_scope(context.principal, request.ref.tenant)
        purged = self._state.vault.adapters.delete_adapter(tenant=tenant, name=request.ref.adapter)
        self._state.events.adapter_deleted(tenant=tenant, adapter=request.ref.adapter)
        return pb.DeleteAdapterResponse(purged_blobs=purged)

    @unary
    def Upload(self, request_iterator: Iterator[pb.UploadMessage | memoryview], context: PrincipalContext
               ) -> pb.Version:
        first = next(request_iterator, None)
        if not isinstance(first, pb.UploadMessage) or first.WhichOneof("part") != "header":
            raise InvalidArgumentError("upload stream must start with a header message")
        header = first.header
        tenant = tenant_scope(context.principal, header.ref.tenant)
        create = self._new_schema(header.schema, what=f"adapter {tenant}/{header.ref.adapter}") \
            if header.HasField("schema") else None
        upload = UploadHeader(tenant=tenant, adapter=header.ref.adapter, parent_version=header.parent_version,
                              total_size=header.total_size, create=create)
        stream = _UploadStream(request_iterator)
        record = receive_version(self._state.vault, upload, stream.chunks(), declared_digest=lambda: stream.sha256,
                                 max_chunk_bytes=self._state.max_chunk_bytes,
                                 max_adapter_bytes=self._state.max_adapter_bytes)
        return version_to_pb(record)

    @streaming_response
    def Download(self, request: pb.DownloadRequest, context: PrincipalContext) -> Iterator[pb.DownloadMessage | bytes]:
        tenant = tenant_scope(context.principal, request.ref.tenant)
        vault = self._state.vault
        adapter = vault.adapters.get_adapter(tenant=tenant, name=request.ref.adapter)
        version = vault.adapters.get_version(tenant=tenant, adapter=request.ref.adapter, version=request.version or None)
        with vault.adapters.open_version_blob(tenant=tenant, adapter=request.ref.adapter, version=version.number) as reader:
            yield pb.DownloadMessage(
                header=pb.DownloadHeader(adapter=adapter_to_pb(adapter), version=version_to_pb(version)))
            # NOTE: the reader checks the digest at the end; a mismatch aborts the stream with DATA_LOSS, and the
            # client, which hashes too, discards what it received.
            for chunk in reader.chunks(self._state.max_chunk_bytes):
                yield DOWNLOAD_CHUNKS.encode(chunk)

    @unary
    def Rollback(self, request: pb.RollbackRequest, context: PrincipalContext) -> pb.Version:
        tenant = tenant_scope(context.principal, request.ref.tenant)
        record = self._state.vault.adapters.rollback(
            tenant=tenant, adapter=request.ref.adapter, to_version=request.to_version,
            parent_version=request.parent_version,
        )
        return version_to_pb(record)


class _UploadStream:
    """Splits the messages after the header into chunks and the trailing digest.

    A chunk-only message arrives as a memoryview of its payload (registration.py frames Upload's requests).
    """

    def __init__(self, messages: Iterator[pb.UploadMessage | memoryview]) -> None:
        self._messages = messages
        self.sha256: str | None = None

    def chunks(self) -> Iterator[bytes | memoryview]:
        for message in self._messages:
            if self.sha256 is not None:
                raise InvalidArgumentError("upload stream continues after its trailer")
            if isinstance(message, memoryview):
                yield message
                continue
            part = message.WhichOneof("part")
            if part == "chunk":
                yield message.chunk
            elif part == "trailer":
                self.sha256 = message.trailer.sha256
            else:
                raise InvalidArgumentError("upload stream may carry only one header, then chunks, then a trailer")
