"""What every side shares about models: base loading and fingerprints, adapter schema, tensor codec, LoRA math.

Names load on first use (PEP 562): the CLI imports the error classes in a fraction of a second, while
`load_base` or the PEFT helpers pull in transformers and peft (several seconds) only when they are called.
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCES = {
    "AbortedError": "errors",
    "AdapterSchema": "adapter_schema",
    "AggregationReport": "aggregation",
    "AlreadyExistsError": "errors",
    "BUILTIN_BASES": "models",
    "BaseModel": "models",
    "CanonicalLayout": "canonical_layout",
    "ClientUpdate": "aggregation",
    "DTYPES": "adapter_schema",
    "DataLossError": "errors",
    "DeserializationError": "errors",
    "FailedPreconditionError": "errors",
    "IGNORE_INDEX": "samples",
    "InvalidArgumentError": "errors",
    "LoraPair": "adapter_schema",
    "LoravaultError": "errors",
    "NotFoundError": "errors",
    "PermissionDeniedError": "errors",
    "RenderedBatch": "samples",
    "ResourceExhaustedError": "errors",
    "Sample": "samples",
    "TensorSpec": "adapter_schema",
    "UnauthenticatedError": "errors",
    "UnavailableError": "errors",
    "DeadlineExceededError": "errors",
    "adapter_from_peft_model": "peft_format",
    "add_delta": "lora",
    "aggregate": "aggregation",
    "canonical_float32": "tensors",
    "decode_tensors": "tensors",
    "default_cache_dir": "models",
    "effective_distance": "lora",
    "effective_weights": "lora",
    "encode_tensors": "tensors",
    "finite_frobenius_norm": "norms",
    "finite_norm": "norms",
    "frobenius_norm": "norms",
    "load_base": "models",
    "merge_float32": "merge",
    "lora_config_for": "peft_format",
    "new_peft_model": "peft_format",
    "peft_model_with_adapter": "peft_format",
    "read_peft_folder": "peft_format",
    "render": "samples",
    "render_batch": "samples",
    "schema_from_pb": "schema_wire",
    "schema_to_pb": "schema_wire",
    "sha256_hex": "tensors",
    "weights_fingerprint": "fingerprint",
    "write_peft_folder": "peft_format",
}

__all__ = [
    "AbortedError",
    "AdapterSchema",
    "AggregationReport",
    "AlreadyExistsError",
    "BUILTIN_BASES",
    "BaseModel",
    "CanonicalLayout",
    "ClientUpdate",
    "DTYPES",
    "DataLossError",
    "DeserializationError",
    "FailedPreconditionError",
    "IGNORE_INDEX",
    "InvalidArgumentError",
    "LoraPair",
    "LoravaultError",
    "NotFoundError",
    "PermissionDeniedError",
    "RenderedBatch",
    "ResourceExhaustedError",
    "Sample",
    "TensorSpec",
    "UnauthenticatedError",
    "UnavailableError",
    "DeadlineExceededError",
    "adapter_from_peft_model",
    "add_delta",
    "aggregate",
    "canonical_float32",
    "decode_tensors",
    "default_cache_dir",
    "effective_distance",
    "effective_weights",
    "encode_tensors",
    "finite_frobenius_norm",
    "finite_norm",
    "frobenius_norm",
    "load_base",
    "lora_config_for",
    "merge_float32",
    "new_peft_model",
    "peft_model_with_adapter",
    "read_peft_folder",
    "render",
    "render_batch",
    "schema_from_pb",
    "schema_to_pb",
    "sha256_hex",
    "weights_fingerprint",
    "write_peft_folder",
]



def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
