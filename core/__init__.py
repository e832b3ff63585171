"""What every side shares about models: base loading and fingerprints, adapter schema, tensor codec, LoRA math."""

from .adapter_schema import DTYPES, AdapterSchema, LoraPair, TensorSpec
from .errors import (
    AbortedError,
    AlreadyExistsError,
    DataLossError,
    DeserializationError,
    FailedPreconditionError,
    InvalidArgumentError,
    LoravaultError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from .fingerprint import weights_fingerprint
from .lora import add_delta, effective_distance, effective_weights, frobenius_norm
from .models import BUILTIN_BASES, BaseModel, default_cache_dir, load_base
from .peft_format import (
    adapter_from_peft_model,
    lora_config_for,
    peft_model_with_adapter,
    read_peft_folder,
    write_peft_folder,
)
from .samples import IGNORE_INDEX, RenderedBatch, Sample, render, render_batch
from .schema_wire import schema_from_pb, schema_to_pb
from .tensors import canonical_float32, decode_tensors, encode_tensors, sha256_hex

__all__ = [
    "AbortedError",
    "AdapterSchema",
    "AlreadyExistsError",
    "BUILTIN_BASES",
    "BaseModel",
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
    "adapter_from_peft_model",
    "add_delta",
    "canonical_float32",
    "decode_tensors",
    "default_cache_dir",
    "effective_distance",
    "effective_weights",
    "encode_tensors",
    "frobenius_norm",
    "load_base",
    "lora_config_for",
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
