"""The server side of the signed erasure protocol: limits, signatures, binding, tensor checks, float32 merge,
probe check and the one durable commit (see pipeline.py for the order)."""

from .config import CRASH_STEPS, ErasureChecks, ErasureConfig, ErasureLimits, ProbeConfig
from .pipeline import ErasurePipeline
from .probe import PROBE_SAMPLES, ProbeRunner
from .rotation import KEY_ROTATION_PREDICATE_TYPE, KeyRotation, rotate_keys, sign_key_rotation
from .submission import ErasureHeader, ErasureResult

__all__ = [
    "CRASH_STEPS",
    "KEY_ROTATION_PREDICATE_TYPE",
    "PROBE_SAMPLES",
    "ErasureChecks",
    "ErasureConfig",
    "ErasureHeader",
    "ErasureLimits",
    "ErasurePipeline",
    "ErasureResult",
    "KeyRotation",
    "ProbeConfig",
    "ProbeRunner",
    "rotate_keys",
    "sign_key_rotation",
]
