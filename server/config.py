"""The server's configuration, built once in main() and passed in; nothing reads the environment later."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loravault.core.errors import InvalidArgumentError
from loravault.proto.chunks import MAX_CHUNK_BYTES

from .erasure.config import ErasureConfig
from .inference.config import InferenceConfig

__all__ = ["ServerConfig", "MAX_CHUNK_BYTES", "DEFAULT_MAX_ADAPTER_BYTES"]

DEFAULT_MAX_ADAPTER_BYTES = 2 << 30  # 2 GiB: rank 64 on every linear layer of a 70B model in float32 fits


@dataclass(frozen=True)
class ServerConfig:
    """Where the server keeps its state, what it serves and how it listens."""

    # state
    data_dir: Path  # metadata database, blobs, admin token file, server key
    base: str = "tiny"  # tiny | smollm2-135m | a local Hugging Face model folder
    database_url: str | None = None  # SQLAlchemy URL; None = SQLite (WAL) inside data_dir
    blobs: str | None = None  # s3://bucket/prefix; None = blob files inside data_dir
    s3_endpoint: str | None = None  # the S3-compatible endpoint's URL (None: AWS); credentials: AWS env/files
    server_key: Path | None = None  # the deployment's signing key file; None = one made in data_dir
    # network
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port (tests)
    max_workers: int = 16  # threads serving RPCs
    max_concurrent_rpcs: int = 64  # beyond this, calls answer RESOURCE_EXHAUSTED at once
    grace_seconds: float = 10.0  # how long SIGTERM lets calls in flight finish
    # limits
    max_adapter_bytes: int = DEFAULT_MAX_ADAPTER_BYTES  # the largest adapter blob anyone may create or upload
    # optional TLS and mTLS
    tls_cert: Path | None = None  # server certificate chain (PEM)
    tls_key: Path | None = None  # server private key (PEM)
    tls_client_ca: Path | None = None  # when set, clients must present a certificate signed by this CA
    # erasure protocol: stream limits, checks, probe, audit checkpoints
    erasure: ErasureConfig = field(default_factory=ErasureConfig)
    # inference engine: device, dtype, batch, queue, cache and per-request caps; None serves no inference
    inference: InferenceConfig | None = field(default_factory=InferenceConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InvalidArgumentError(f"port {self.port} is outside 0..65535")
        if self.max_adapter_bytes < 1:
            raise InvalidArgumentError(f"max_adapter_bytes must be positive, got {self.max_adapter_bytes}")
        if self.max_workers < 1 or self.max_concurrent_rpcs < 1:
            raise InvalidArgumentError("max_workers and max_concurrent_rpcs must be at least 1")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidArgumentError("TLS needs both --tls-cert and --tls-key")
        if self.s3_endpoint is not None and self.blobs is None:
            raise InvalidArgumentError("--s3-endpoint needs --blobs s3://bucket/prefix")
        if self.blobs is not None and not self.blobs.startswith("s3://"):
            raise InvalidArgumentError(f"--blobs {self.blobs!r}: only s3://bucket/prefix (omit it for files)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise InvalidArgumentError("mTLS (--tls-client-ca) needs --tls-cert and --tls-key")

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin.token"
