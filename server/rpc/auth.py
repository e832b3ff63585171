"""Bearer-token authentication as a server interceptor, and the principal every servicer sees.

The interceptor resolves `authorization: Bearer <token>` through the vault's token table (hashes only) and
hands the servicer a context that carries the principal; a call without a valid token never reaches a servicer.
With mTLS, a tenant token is accepted only over a connection whose client certificate names the same tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from loravault.core.errors import LoravaultError, NotFoundError, PermissionDeniedError, UnauthenticatedError
from loravault.proto.status import code_for

from ..vault import Principal

__all__ = ["AuthInterceptor", "PrincipalContext", "tenant_scope", "is_admin", "require_admin", "OPEN_METHODS"]

logger = logging.getLogger(__name__)

# Health and reflection answer without a token, so probes and grpcurl's listing work.
OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                "/grpc.reflection.v1.ServerReflection/")
CERT_TENANT_PREFIX = "loravault-tenant:"


class PrincipalContext:
    """A servicer context that also carries the authenticated principal; everything else is delegated."""

    def __init__(self, context: grpc.ServicerContext, principal: Principal) -> None:
        self._context = context
        self.principal = principal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def is_admin(principal: Principal) -> bool:
    return principal.role == "admin"


def require_admin(principal: Principal) -> None:
    if not is_admin(principal):
        raise PermissionDeniedError("this call needs an admin token")


def tenant_scope(principal: Principal, requested: str) -> str:
    """The tenant a request acts on: a tenant acts only on itself, an admin must name one.

    A tenant naming another tenant gets NotFoundError, indistinguishable from a tenant that does not exist.
    """
    if is_admin(principal):
        if not requested:
            raise NotFoundError("tenant '': an admin call must name the tenant")
        return requested
    if requested and requested != principal.tenant:
        raise NotFoundError(f"tenant {requested!r} not found")
    return str(principal.tenant)


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates each call before its handler runs and passes the principal on."""

    def __init__(self, authenticate: Callable[[str], Principal], *, require_client_cert: bool = False) -> None:
        self._authenticate = authenticate
        self._require_client_cert = require_client_cert

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_METHODS):
            return handler
        return _wrap_handler(handler, self._principal_for)

    def _principal_for(self, context: grpc.ServicerContext) -> Principal:
        metadata = dict(context.invocation_metadata())
        header = metadata.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret:
            raise UnauthenticatedError("missing 'authorization: Bearer <token>' metadata")
        principal = self._authenticate(secret.strip())
        if self._require_client_cert and not is_admin(principal):
            names = _certificate_tenants(context)
            if principal.tenant not in names:
                raise UnauthenticatedError(
                    f"client certificate names {sorted(names) or 'no tenant'}, token belongs to {principal.tenant!r}"
                )
        return principal


def _certificate_tenants(context: grpc.ServicerContext) -> set[str]:
    """Tenant names in the peer certificate's SAN entries `loravault-tenant:<name>` (URI) or DNS names."""
    auth = context.auth_context()
    names = set()
    for value in auth.get("x509_subject_alternative_name", []):
        text = value.decode() if isinstance(value, bytes) else str(value)
        names.add(text.removeprefix(CERT_TENANT_PREFIX))
    return names


def _wrap_handler(handler: grpc.RpcMethodHandler, principal_for: Callable) -> grpc.RpcMethodHandler:
    """Rebuild the handler so its behavior authenticates first and receives a PrincipalContext."""

    def guard(behavior: Callable) -> Callable:
        def authenticated(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                principal = principal_for(context)
            except LoravaultError as error:
                context.abort(code_for(error) or grpc.StatusCode.UNAUTHENTICATED, str(error))
            return behavior(request, PrincipalContext(context, principal))

        return authenticated

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            guard(handler.unary_unary), handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            guard(handler.unary_stream), handler.request_deserializer, handler.response_serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            guard(handler.stream_unary), handler.request_deserializer, handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(
        guard(handler.stream_stream), handler.request_deserializer, handler.response_serializer)
