"""What the servicers share: the vault, the base model, the erasure pipeline, the inference engine, the purge
events and the server's limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from grpc_health.v1.health import HealthServicer

from loravault.core.base_layout import BaseLayout

from ..config import DEFAULT_MAX_ADAPTER_BYTES
from ..erasure import ErasurePipeline
from ..events import PurgeEvents
from ..vault import Vault

if TYPE_CHECKING:  # both import torch, which a server without model compute never loads
    from loravault.core.models import BaseModel

    from ..inference import InferenceEngine

__all__ = ["ServerState"]


@dataclass(frozen=True)
class ServerState:
    """Built once in create_server; servicers read it and never replace it."""

    vault: Vault
    base: BaseLayout  # every adapter is checked against it (core/base_layout.py)
    max_chunk_bytes: int
    max_adapter_bytes: int = DEFAULT_MAX_ADAPTER_BYTES  # ServerConfig.max_adapter_bytes
    base_model: BaseModel | None = None  # the base the server loaded (None: no model compute, e.g. tests)
    erasure: ErasurePipeline | None = None  # None answers Erasure calls UNAVAILABLE
    inference: InferenceEngine | None = None  # None answers Inference calls UNAVAILABLE
    # purges (erasures, adapter and tenant deletions) are announced here; the inference engine subscribes
    events: PurgeEvents = field(default_factory=PurgeEvents)
    # the health service create_server registers; serve() turns it NOT_SERVING first thing on SIGTERM, so
    # probes take the server out of rotation while calls in flight finish
    health: HealthServicer = field(default_factory=HealthServicer)
