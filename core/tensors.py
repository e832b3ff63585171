"""The adapter tensors codec: dicts of tensors to and from safetensors bytes, never pickle.

Encoding is canonical (safetensors orders entries itself and we add fixed metadata), so equal tensors give
equal bytes and the SHA-256 of the bytes identifies an adapter version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from .errors import DeserializationError

__all__ = ["encode_tensors", "decode_tensors", "sha256_hex", "canonical_float32"]

_METADATA = {"format": "pt"}


def encode_tensors(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """Serialize to safetensors bytes with PEFT's metadata, so the bytes load in PeftModel as they are."""
    plain = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    return _st_save(plain, metadata=dict(_METADATA))


def decode_tensors(data: bytes) -> dict[str, torch.Tensor]:
    """Parse untrusted safetensors bytes; any failure becomes DeserializationError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DeserializationError(f"tensor bytes must be bytes, not {type(data).__name__}")
    try:
        return _st_load(bytes(data))
    except Exception as exc:  # the parser's own errors are many and untyped: one type for callers
        raise DeserializationError(f"not a valid safetensors blob ({len(data)} bytes): {exc}") from exc


def canonical_float32(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """The canonical bytes of an adapter in float32: what result hashes in signed manifests cover."""
    return encode_tensors({name: t.to(torch.float32) for name, t in tensors.items()})


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()
