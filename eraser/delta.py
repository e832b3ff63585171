"""The eraser's output: an adapter delta under the adapter's tensor names, its report, and helpers to use it.

    >>> result = eraser.erase(request)  # doctest: +SKIP
    >>> apply_delta(peft_model, result.delta)  # the model now carries the erased adapter  # doctest: +SKIP
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from loravault.core import AdapterSchema, InvalidArgumentError, effective_distance

from .calibrate import CalibrationReport
from .path import PathReport

__all__ = ["ErasureReport", "ErasureResult", "adapter_distance", "apply_delta", "peak_memory_bytes"]


@dataclass(frozen=True)
class ErasureReport:
    """How a delta was computed, for the signed manifest and for benchmarks."""

    # method
    method: str  # solver: spectral, cg, lissa, ekfac, datainf, dense, llmeraser
    step: str  # path, calibrated or influence
    curvature: str  # gauss_newton or hessian, "+ekfac" when EK-FAC preconditioned or solved, "+lanczos" (spectral)
    damping: float
    # solve
    iterations: int
    residual: float  # true relative residual of the damped system (nan when not measured)
    converged: bool
    scale: float  # multiple of the solved direction that was applied (1 for the influence step)
    # cost
    wall_seconds: float
    peak_memory_bytes: int
    peak_memory_scope: str  # "cuda-allocated" (this request) or "process-rss" (the process so far)
    # request
    size_before: int
    size_after: int
    kinds: dict[str, int] = field(default_factory=dict)
    calibration: CalibrationReport | None = None
    path: PathReport | None = None
    residual_seconds: float = 0.0  # of wall_seconds, those spent measuring the residual (a check, not the solve)


@dataclass(frozen=True)
class ErasureResult:
    """delta: float32 CPU tensors under the adapter's (PEFT saved) names; adapter + delta is the erased adapter."""

    delta: dict[str, torch.Tensor]
    report: ErasureReport


def apply_delta(model: nn.Module, delta: Mapping[str, torch.Tensor], *, scale: float = 1.0) -> None:
    """Add scale * delta to a peft model's LoRA weights in place; every name is checked before anything moves.

    Raises InvalidArgumentError when a delta tensor names no LoRA weight of the model or has another shape.
    """
    adapter = getattr(model, "active_adapter", "default")
    live = {name.replace(f".{adapter}.weight", ".weight"): p for name, p in model.named_parameters()}
    for name, tensor in delta.items():
        if name not in live:
            raise InvalidArgumentError(f"delta tensor {name} is not a LoRA weight of this model")
        if tuple(live[name].shape) != tuple(tensor.shape):
            raise InvalidArgumentError(f"delta tensor {name} has shape {tuple(tensor.shape)}, model has {tuple(live[name].shape)}")
        if not bool(torch.isfinite(tensor).all()):
            raise InvalidArgumentError(f"delta tensor {name} has NaN or infinite values")
    with torch.no_grad():
        for name, tensor in delta.items():
            live[name].add_(tensor.to(live[name]), alpha=scale)


def adapter_distance(schema: AdapterSchema, left: Mapping[str, torch.Tensor], right: Mapping[str, torch.Tensor]) -> float:
    """Frobenius distance of two adapters in effective weights (core's effective_distance), float32 inputs."""
    return effective_distance(
        schema, {k: v.to("cpu", torch.float32) for k, v in left.items()}, {k: v.to("cpu", torch.float32) for k, v in right.items()}
    )


def peak_memory_bytes(device: torch.device) -> tuple[int, str]:
    """Peak memory and what it covers: CUDA allocations since the last reset, else the process's peak RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda-allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process-rss"
