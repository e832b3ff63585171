"""What every side shares about models: base loading and fingerprints, adapter schema, tensor codec, LoRA math.

Names load on first use (PEP 562): the CLI imports the error classes in a fraction of a second, while
`load_base` or the PEFT helpers pull in transformers and peft (several seconds) only when they are called.
Type checkers read the same names eagerly from the `TYPE_CHECKING` block and never see the module
`__getattr__`, so a misspelt name is an error there too (tests/core/test_exports.py checks that the block and
`_EXPORTS` agree).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# submodule -> the public names it defines: the one list that `__all__` and the lazy loader are derived from
_EXPORTS: dict[str, tuple[str, ...]] = {
    "adapter_schema": ("DTYPES", "AdapterSchema", "LoraPair", "TensorSpec"),
    "aggregation": ("AggregationReport", "ClientUpdate", "aggregate"),
    "canonical_layout": ("CanonicalLayout",),
    "errors": (
        "AbortedError",
        "AlreadyExistsError",
        "DataLossError",
        "DeadlineExceededError",
        "DeserializationError",
        "FailedPreconditionError",
        "InvalidArgumentError",
        "LoravaultError",
        "NotFoundError",
        "PermissionDeniedError",
        "ResourceExhaustedError",
        "UnauthenticatedError",
        "UnavailableError",
    ),
    "fingerprint": ("weights_fingerprint",),
    "lora": ("add_delta", "effective_distance", "effective_weights"),
    "merge": ("merge_float32",),
    "models": ("BUILTIN_BASES", "BaseModel", "default_cache_dir", "load_base"),
    "norms": ("finite_frobenius_norm", "finite_norm", "frobenius_norm"),
    "peft_format": (
        "adapter_from_peft_model",
        "lora_config_for",
        "new_peft_model",
        "peft_model_with_adapter",
        "read_peft_folder",
        "write_peft_folder",
    ),
    "samples": ("IGNORE_INDEX", "RenderedBatch", "Sample", "render", "render_batch"),
    "schema_wire": ("schema_from_pb", "schema_to_pb"),
    "tensors": ("canonical_float32", "decode_tensors", "encode_tensors", "sha256_hex"),
}

_SOURCES = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_SOURCES)

if TYPE_CHECKING:
    # `X as X` marks each name as re-exported, for checkers run with --no-implicit-reexport
    from .adapter_schema import DTYPES as DTYPES, AdapterSchema as AdapterSchema, LoraPair as LoraPair
    from .adapter_schema import TensorSpec as TensorSpec
    from .aggregation import AggregationReport as AggregationReport, ClientUpdate as ClientUpdate
    from .aggregation import aggregate as aggregate
    from .canonical_layout import CanonicalLayout as CanonicalLayout
    from .errors import AbortedError as AbortedError, AlreadyExistsError as AlreadyExistsError
    from .errors import DataLossError as DataLossError, DeadlineExceededError as DeadlineExceededError
    from .errors import DeserializationError as DeserializationError
    from .errors import FailedPreconditionError as FailedPreconditionError
    from .errors import InvalidArgumentError as InvalidArgumentError, LoravaultError as LoravaultError
    from .errors import NotFoundError as NotFoundError, PermissionDeniedError as PermissionDeniedError
    from .errors import ResourceExhaustedError as ResourceExhaustedError
    from .errors import UnauthenticatedError as UnauthenticatedError, UnavailableError as UnavailableError
    from .fingerprint import weights_fingerprint as weights_fingerprint
    from .lora import add_delta as add_delta, effective_distance as effective_distance
    from .lora import effective_weights as effective_weights
    from .merge import merge_float32 as merge_float32
    from .models import BUILTIN_BASES as BUILTIN_BASES, BaseModel as BaseModel
    from .models import default_cache_dir as default_cache_dir, load_base as load_base
    from .norms import finite_frobenius_norm as finite_frobenius_norm, finite_norm as finite_norm
    from .norms import frobenius_norm as frobenius_norm
    from .peft_format import adapter_from_peft_model as adapter_from_peft_model
    from .peft_format import lora_config_for as lora_config_for, new_peft_model as new_peft_model
    from .peft_format import peft_model_with_adapter as peft_model_with_adapter
    from .peft_format import read_peft_folder as read_peft_folder, write_peft_folder as write_peft_folder
    from .samples import IGNORE_INDEX as IGNORE_INDEX, RenderedBatch as RenderedBatch, Sample as Sample
    from .samples import render as render, render_batch as render_batch
    from .schema_wire import schema_from_pb as schema_from_pb, schema_to_pb as schema_to_pb
    from .tensors import canonical_float32 as canonical_float32, decode_tensors as decode_tensors
    from .tensors import encode_tensors as encode_tensors, sha256_hex as sha256_hex


else:

    def __getattr__(name: str) -> object:
        module = _SOURCES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return list(__all__)
