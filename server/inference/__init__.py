"""The multi-tenant inference engine: continuous batching over one base model, each row with its own LoRA.

Only the names below are for other parts (the RPC servicer, main, benchmarks); the rest is private.
"""

from .adapters import AdapterSlot
from .cache import AdapterCache
from .config import InferenceConfig
from .engine import EngineStats, InferenceEngine
from .requests import Delta, Finished, Handle, Scored
from .sampling import SamplingParams

__all__ = [
    "AdapterCache",
    "AdapterSlot",
    "Delta",
    "EngineStats",
    "Finished",
    "Handle",
    "InferenceConfig",
    "InferenceEngine",
    "SamplingParams",
    "Scored",
]
