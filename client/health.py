"""The standard gRPC health check (grpc.health.v1) against a vault server: what container and compose probes
run (`loravault health`), where Kubernetes uses its own gRPC probe. The health service needs no token."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .errors import from_rpc_error

__all__ = ["check_health"]


def check_health(target: str, *, service: str = "", timeout: float = 5.0) -> str:
    """The serving status of `service` ("" = the server as a whole): SERVING, NOT_SERVING, ...

    Raises UnavailableError when the server cannot be reached within `timeout` seconds, NotFoundError for a
    service the server does not know.
    """
    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
