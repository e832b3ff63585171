"""Step 5, `check_tensors`: the delta is exactly the adapter's shape in float32, finite, non-zero, and small.

The delta's bytes already hash to the signed delta hash (receive_delta held them to the header's digest and
check_signatures held that to the manifest). Here they must parse as safetensors with the schema's names and
shapes in float32, all finite, not all zero (an erasure that changes nothing is refused), and with
||delta||_F <= max_norm_ratio * ||head||_F over all tensors together (a "norm bomb" is refused). Finiteness
comes with the norm: one reduction per tensor answers both (`finite_norm`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import torch

from loravault.core.adapter_schema import AdapterSchema
from loravault.core.errors import InvalidArgumentError
from loravault.core.tensors import decode_tensors
from loravault.proto.manifest import ErasureManifest

from .config import ErasureChecks

__all__ = ["check_tensors", "finite_frobenius_norm", "finite_norm", "frobenius_norm"]


def frobenius_norm(tensors: dict[str, torch.Tensor]) -> float:
    """||.||_F of all tensors together: float32 norms per tensor (vectorized), combined in float64.

    NOTE: core.lora.frobenius_norm converts to float64 first, which costs a copy of the adapter; for a bound
    check the float32 reduction's relative error (about 1e-6 here) does not matter.
    """
    return math.sqrt(sum(float(torch.linalg.vector_norm(t.to(torch.float32))) ** 2 for t in tensors.values()))


def finite_norm(tensor: torch.Tensor) -> float | None:
    """||tensor||_F in float32, or None when an element is NaN or infinite.

    A NaN or infinity makes the norm non-finite, so a finite norm proves every element finite; only a
    non-finite norm needs the elementwise test, to tell NaN or infinite elements from finite ones whose norm
    overflowed.
    """
    norm = float(torch.linalg.vector_norm(tensor))
    if math.isfinite(norm) or bool(torch.isfinite(tensor).all()):
        return norm
    return None


def finite_frobenius_norm(named: Iterable[tuple[str, torch.Tensor]]) -> tuple[float, str | None]:
    """||.||_F of all tensors together and None, or NaN and the name of the first tensor (in the given order)
    that holds a NaN or infinity: the delta check and the merge refuse with their own messages."""
    squares = 0.0
    for name, tensor in named:
        norm = finite_norm(tensor)
        if norm is None:
            return math.nan, name
        squares += norm**2
    return math.sqrt(squares), None


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
