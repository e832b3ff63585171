"""Building the gRPC server: services, auth, health, reflection, limits. `serve()` lives in main.py.

    >>> server, port = create_server(config, state=state)
    >>> server.start()
"""

from __future__ import annotations

from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from loravault.core.errors import InvalidArgumentError
from loravault.proto import loravault_pb2 as pb

from ..config import MAX_CHUNK_BYTES, ServerConfig
from .adapters_service import AdaptersService
from .admin_service import AdminService
from .auth import AuthInterceptor
from .erasure_service import ErasureService
from .federation_service import FederationService
from .inference_service import InferenceService
from .registration import add_servicer
from .state import ServerState
from .tenants_service import TenantsService

__all__ = ["create_server", "SERVICE_NAMES"]

SERVICE_NAMES = tuple(pb.DESCRIPTOR.services_by_name[name].full_name
                      for name in ("Admin", "Tenants", "Adapters", "Erasure", "Inference", "Federation"))
# a message carries at most one 1 MiB chunk plus its envelope; 4 MiB leaves room for headers and envelopes
_MESSAGE_LIMIT = 4 * MAX_CHUNK_BYTES


def create_server(config: ServerConfig, *, state: ServerState) -> tuple[grpc.Server, int]:
    """A server with every service registered and bound to config.host:config.port (0 picks a free port).

    Erasure answers UNAVAILABLE when `state.erasure` is None, Inference when `state.inference` is None.
    Raises InvalidArgumentError when the port cannot be bound.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc"),
        interceptors=[AuthInterceptor(state.vault.credentials.authenticate, require_client_cert=config.tls_client_ca is not None)],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", _MESSAGE_LIMIT),
            ("grpc.max_send_message_length", _MESSAGE_LIMIT),
            ("grpc.so_reuseport", 0),
        ],
    )
    add_servicer(server, AdminService(state), "Admin")
    add_servicer(server, TenantsService(state), "Tenants")
    add_servicer(server, AdaptersService(state), "Adapters")
    add_servicer(server, ErasureService(state), "Erasure")
    add_servicer(server, InferenceService(state), "Inference")
    add_servicer(server, FederationService(state), "Federation")
    health_pb2_grpc.add_HealthServicer_to_server(state.health, server)
    for name in ("", *SERVICE_NAMES):
        state.health.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{config.host}:{config.port}"
    port = server.add_secure_port(address, _credentials(config)) if config.tls_cert else server.add_insecure_port(address)
    if port == 0:
        raise InvalidArgumentError(f"cannot listen on {address}: the port is taken or the host is not local")
    return server, port


def _credentials(config: ServerConfig) -> grpc.ServerCredentials:
    if config.tls_key is None or config.tls_cert is None:  # ServerConfig refuses one without the other
        raise InvalidArgumentError("TLS needs both a certificate chain and its private key")
    key = config.tls_key.read_bytes()
    chain = config.tls_cert.read_bytes()
    if config.tls_client_ca is None:
        return grpc.ssl_server_credentials([(key, chain)])
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=config.tls_client_ca.read_bytes(), require_client_auth=True
    )
