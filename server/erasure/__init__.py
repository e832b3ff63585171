"""The server side of the signed erasure protocol: limits, signatures, binding, tensor checks, float32 merge,
probe check and the one durable commit (see pipeline.py for the order)."""

from .config import ErasureChecks, ErasureConfig, ErasureLimits, ProbeConfig
from .pipeline import ErasurePipeline
from .probe import PROBE_SAMPLES, ProbeRunner
from .rotation import rotate_keys
from .submission import ErasureHeader, ErasureResult

__all__ = [
    "PROBE_SAMPLES",
    "ErasureChecks",
    "ErasureConfig",
    "ErasureHeader",
    "ErasureLimits",
    "ErasurePipeline",
    "ErasureResult",
    "ProbeConfig",
    "ProbeRunner",
    "rotate_keys",
]
