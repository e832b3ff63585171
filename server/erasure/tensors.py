"""Step 5, `check_tensors`: the delta is exactly the adapter's shape in float32, finite, non-zero, and small.

The delta's bytes already hash to the signed delta hash (receive_delta held them to the header's digest and
check_signatures held that to the manifest). Here they must parse as safetensors with the schema's names and
shapes in float32, all finite, not all zero (an erasure that changes nothing is refused), and with
||delta||_F <= max_norm_ratio * ||head||_F over all tensors together (a "norm bomb" is refused). Finiteness
comes with the norm: one reduction per tensor answers both (core.norms.finite_frobenius_norm).
"""

from __future__ import annotations

import dataclasses

import torch

from loravault.core.adapter_schema import AdapterSchema
from loravault.core.errors import InvalidArgumentError
from loravault.core.norms import finite_frobenius_norm
from loravault.core.tensors import decode_tensors
from loravault.proto.manifest import ErasureManifest

from .config import ErasureChecks

__all__ = ["check_tensors"]


def check_tensors(
    delta_bytes: bytes,
    *,
    manifest: ErasureManifest,
    schema: AdapterSchema,
    head_norm: float,
    checks: ErasureChecks,
) -> dict[str, torch.Tensor]:
    """The parsed delta; raises DeserializationError (not safetensors) or InvalidArgumentError (the rest)."""
    what = f"{manifest.label} delta"
    delta = decode_tensors(delta_bytes)
    dataclasses.replace(schema, dtype="float32").check_tensors(delta, what=what, finite=False)
    delta_norm, nonfinite = finite_frobenius_norm(delta.items())
    if nonfinite is not None:
        raise InvalidArgumentError(f"{what} tensor {nonfinite} has NaN or infinite values")
    if delta_norm == 0.0:
        raise InvalidArgumentError(f"{what} is all zeros: it would forget nothing")
    if delta_norm > checks.max_norm_ratio * head_norm:
        raise InvalidArgumentError(
            f"{what} has norm {delta_norm:.4g}, {delta_norm / max(head_norm, 1e-300):.3g} times the adapter's "
            f"{head_norm:.4g}; at most {checks.max_norm_ratio} is allowed")
    return delta
