"""The erasure pipeline's configuration: stream limits, tensor and time checks, the probe check, audit checkpoints.

Built once in main() and passed in (frozen, validated here); nothing in the pipeline reads the environment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from loravault.core.errors import InvalidArgumentError
from loravault.proto.chunks import MAX_CHUNK_BYTES
from loravault.proto.envelope import MAX_ENVELOPE_BYTES
from loravault.proto.manifest import DEFAULT_CLOCK_SKEW_SECONDS

__all__ = ["ErasureChecks", "ErasureConfig", "ErasureLimits", "ProbeConfig"]



@dataclass(frozen=True)
class ErasureLimits:
    """Sizes refused with RESOURCE_EXHAUSTED before any byte beyond them is buffered."""

    max_envelope_bytes: int = MAX_ENVELOPE_BYTES  # the signed manifest in the header
    max_chunk_bytes: int = MAX_CHUNK_BYTES  # one delta chunk (the wire contract's bound)
    max_delta_bytes: int = 256 << 20  # a delta, whatever its schema allows (it is held in memory)
    head_cache_bytes: int = 256 << 20  # decoded heads kept by blob hash for the next erasure (0 = none)

    def __post_init__(self) -> None:
        if not isinstance(self.head_cache_bytes, int) or self.head_cache_bytes < 0:
            raise InvalidArgumentError("head_cache_bytes must be an integer >= 0")
        for name in ("max_envelope_bytes", "max_chunk_bytes", "max_delta_bytes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidArgumentError(f"erasure limit {name} must be a positive integer")


@dataclass(frozen=True)
class ErasureChecks:
    """Bounds on what a signed delta may do."""

    max_norm_ratio: float = 1.0  # ||delta||_F / ||head adapter||_F, over all tensors together
    clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS  # how far in the future issued_at may lie

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_norm_ratio) and self.max_norm_ratio > 0):
            raise InvalidArgumentError(f"max_norm_ratio must be finite and > 0, got {self.max_norm_ratio}")
        if not isinstance(self.clock_skew_seconds, int) or self.clock_skew_seconds < 0:
            raise InvalidArgumentError("clock_skew_seconds must be an integer >= 0")


@dataclass(frozen=True)
class ProbeConfig:
    """The probe-set check: loss on the server's fixed probe text under the new adapter vs the head."""

    enabled: bool = True  # off, or no base model loaded: the check is skipped (and says so in the log)
    max_loss_increase: float = 0.5  # nats of mean token NLL the new adapter may lose against the head
    max_length: int = 96  # tokens per probe sample
    models: int = 1  # copies of the base model probes may run on at once (each a full copy of its weights)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_loss_increase) and self.max_loss_increase >= 0):
            raise InvalidArgumentError(f"max_loss_increase must be finite and >= 0, got {self.max_loss_increase}")
        if self.max_length < 8 or self.models < 1:
            raise InvalidArgumentError("probe max_length must be >= 8 and models >= 1")


@dataclass(frozen=True)
class ErasureConfig:
    """Everything the erasure pipeline and its audit log are configured by."""

    # stages
    limits: ErasureLimits = field(default_factory=ErasureLimits)
    checks: ErasureChecks = field(default_factory=ErasureChecks)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    # audit log
    checkpoint_every: int = 16  # sign a checkpoint of the log every this many entries

    def __post_init__(self) -> None:
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 1:
            raise InvalidArgumentError("checkpoint_every must be an integer >= 1")
