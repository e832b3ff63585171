"""Frobenius norms of adapter tensors, and the finiteness that a finite norm proves.

Every part that bounds or reports a norm (the server's delta check, its merge, the federation's aggregate
check, distances in effective weights) calls these, so that a bound means the same number everywhere. Norms
are taken per tensor in float32 (one vectorized reduction, no float64 copy of the adapter; float64 tensors,
such as the aggregation's exactness check works in, keep their precision) and combined in float64; the
relative error of a float32 reduction (about 1e-6 at adapter sizes) does not matter to a bound or a report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch

__all__ = ["finite_frobenius_norm", "finite_norm", "frobenius_norm"]


def finite_norm(tensor: torch.Tensor) -> float | None:
    """||tensor||_F in float32, or None when an element is NaN or infinite.

    A NaN or infinity makes the norm non-finite, so a finite norm proves every element finite; only a
    non-finite norm needs the elementwise test, to tell NaN or infinite elements from finite ones whose norm
    overflowed.
    """
    norm = _norm(tensor)
    if math.isfinite(norm) or bool(torch.isfinite(tensor).all()):
        return norm
    return None


def finite_frobenius_norm(named: Iterable[tuple[str, torch.Tensor]]) -> tuple[float, str | None]:
    """||.||_F of all tensors together and None, or NaN and the name of the first tensor (in the given order)
    that holds a NaN or infinity, so that each caller refuses with its own message."""
    squares = 0.0
    for name, tensor in named:
        norm = finite_norm(tensor)
        if norm is None:
            return math.nan, name
        squares += norm**2
    return math.sqrt(squares), None


def frobenius_norm(tensors: Mapping[str, torch.Tensor] | Iterable[torch.Tensor]) -> float:
    """||.||_F of all tensors together (a mapping's values, or any iterable of tensors, read once): norms per
    tensor, combined in float64; NaN if a tensor holds a NaN."""
    values = tensors.values() if isinstance(tensors, Mapping) else tensors
    return math.sqrt(sum(_norm(t) ** 2 for t in values))


def _norm(tensor: torch.Tensor) -> float:
    """||tensor||_F, reduced in float32, or in float64 for a float64 tensor."""
    return float(torch.linalg.vector_norm(tensor if tensor.dtype == torch.float64 else tensor.to(torch.float32)))
