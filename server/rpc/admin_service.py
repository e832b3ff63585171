"""The Admin service: tenants, storage checks and the audit log stream, for the admin role only."""

from __future__ import annotations

from collections.abc import Iterator

from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc

from ..audit import AuditLog
from .auth import PrincipalContext, require_admin
from .convert import unix_ms
from .edge import streaming_response, unary
from .state import ServerState

__all__ = ["AdminService"]


class AdminService(pb_grpc.AdminServicer):
    def __init__(self, state: ServerState) -> None:
        self._state = state

    @unary
    def CreateTenant(self, request: pb.CreateTenantRequest, context: PrincipalContext) -> pb.Tenant:
        require_admin(context.principal)
        record = self._state.vault.credentials.create_tenant(request.name)
        return pb.Tenant(name=record.name, created_unix_ms=unix_ms(record.created_at))

    @unary
    def ListTenants(self, request: pb.ListTenantsRequest, context: PrincipalContext) -> pb.ListTenantsResponse:
        require_admin(context.principal)
        tenants = self._state.vault.credentials.list_tenants()
        return pb.ListTenantsResponse(
            tenants=[pb.Tenant(name=t.name, created_unix_ms=unix_ms(t.created_at)) for t in tenants]
        )

    @unary
    def DeleteTenant(self, request: pb.DeleteTenantRequest, context: PrincipalContext) -> pb.DeleteTenantResponse:
        require_admin(context.principal)
        result = self._state.vault.delete_tenant(request.name)
        self._state.events.tenant_deleted(tenant=request.name)
        return pb.DeleteTenantResponse(deleted_adapters=result.deleted_adapters, purged_blobs=result.purged_blobs)

    @unary
    def Fsck(self, request: pb.FsckRequest, context: PrincipalContext) -> pb.FsckResponse:
        require_admin(context.principal)
        report = self._state.vault.adapters.fsck(repair=request.repair)
        return pb.FsckResponse(
            checked_versions=report.checked_versions,
            missing=list(report.missing),
            corrupt=list(report.corrupt),
            orphans=list(report.orphans),
            temp_files=list(report.temp_files),
            repaired=report.repaired,
            clean=report.clean,
        )

    @streaming_response
    def StreamAuditLog(self, request: pb.StreamAuditLogRequest, context: PrincipalContext) -> Iterator[pb.AuditEntry]:
        require_admin(context.principal)
        for entry in AuditLog(self._state.vault, signer=None).entries(start=request.from_index):
            yield pb.AuditEntry(index=entry.index, entry_hash=entry.entry_hash, previous_hash=entry.previous_hash,
                                body=entry.body)
