"""Dispatch from a method name to its solver, wiring the curvature the eraser built to the pure-math solvers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from loravault.core import FailedPreconditionError, InvalidArgumentError, Sample

from .config import EraserConfig
from .curvature import CurvatureOperator
from .datainf import datainf_inverse
from .ekfac import EkfacFactors
from .objective import Objective
from .spectral import SpectralBasis
from .solvers import (
    Operator,
    SolveReport,
    approximate_inverse_solve,
    conjugate_gradient,
    dense_matrix,
    dense_solve,
    lissa,
    llmeraser_solve,
    pcg_steps,
)

__all__ = ["DENSE_LIMIT", "SolveInputs", "cg_iterates", "solve"]

_NO_PRODUCTS = "method {method} needs curvature products: load the base with attn_implementation='eager', or use ekfac"
DENSE_LIMIT = 20_000  # parameters: a (P, P) float64 matrix of 3.2 GB and P curvature products


@dataclass(frozen=True)
class SolveInputs:
    """The curvature of the retained samples, in every form a method may use."""

    objective: Objective
    theta: torch.Tensor  # (P,)
    operator: CurvatureOperator | None  # exact products; None when the model cannot take them (sdpa)
    factors: EkfacFactors | None  # EK-FAC, downdated to the retained samples
    gradients: torch.Tensor | None  # (m, P) retained pseudo-gradients, for DataInf
    shuffled: Sequence[Sample]  # retained samples in a seeded order, for single-sample products
    basis: SpectralBasis | None = None  # the exact curvature's Lanczos basis, for the spectral method


def solve(
    method: str, inputs: SolveInputs, b: torch.Tensor, *, damping: float, config: EraserConfig, progress: bool = True
) -> tuple[torch.Tensor, SolveReport]:
    """x ~ (G_retained + lambda I)^-1 b by `method`; raises FailedPreconditionError when its curvature is missing."""
    operator, layout = inputs.operator, inputs.objective.layout
    if method in ("cg", "lissa", "dense", "llmeraser") and operator is None:
        raise FailedPreconditionError(_NO_PRODUCTS.format(method=method))
    if method == "spectral":
        basis = inputs.basis
        assert basis is not None  # the eraser builds it for this method
        # no residual: measuring it would cost an exact product over the sample, the price this method avoids
        return approximate_inverse_solve(lambda v: basis.solve(v, damping=damping), b, method="spectral", damping=damping)
    if method == "cg":
        assert operator is not None  # refused above
        return conjugate_gradient(operator, b, damping=damping, config=config.cg, preconditioner=_cg_preconditioner(inputs, damping),
                                  progress=progress)
    if method == "lissa":
        assert operator is not None  # refused above
        return lissa(operator, b, damping=damping, config=config.lissa, sampled_operator=operator.batch_product, progress=progress)
    if method == "ekfac":
        assert inputs.factors is not None  # the eraser builds them for this method
        return approximate_inverse_solve(inputs.factors.inverse(layout, damping=damping), b, method="ekfac", damping=damping, operator=operator)
    if method == "datainf":
        assert inputs.gradients is not None  # the eraser collects them for this method
        inverse = datainf_inverse(inputs.gradients, _module_blocks(inputs.objective), damping=damping)
        return approximate_inverse_solve(inverse, b, method="datainf", damping=damping, operator=operator)
    if method == "dense":
        if b.numel() > DENSE_LIMIT:
            raise InvalidArgumentError(f"dense solve is for adapters up to {DENSE_LIMIT} parameters, this one has {b.numel()}")
        assert operator is not None  # refused above
        matrix = dense_matrix(operator, b.numel(), device=b.device, progress=progress)
        return dense_solve(matrix, b, damping=damping)
    if method == "llmeraser":
        single = CurvatureOperator(inputs.objective, inputs.theta, inputs.shuffled, kind=config.curvature.kind, batch_size=1)
        return llmeraser_solve(single.batch_product, b, damping=damping, config=config.llmeraser, operator=operator, progress=progress)
    raise InvalidArgumentError(f"unknown method {method!r}")


def cg_iterates(inputs: SolveInputs, b: torch.Tensor, *, damping: float) -> Iterator[torch.Tensor]:
    """PCG's iterates with the same operator and preconditioner `solve("cg", ...)` uses, for the path step."""
    if inputs.operator is None:
        raise FailedPreconditionError(_NO_PRODUCTS.format(method="cg"))
    return pcg_steps(inputs.operator, b, damping=damping, preconditioner=_cg_preconditioner(inputs, damping))


def _cg_preconditioner(inputs: SolveInputs, damping: float) -> Operator | None:
    """EK-FAC's damped inverse when the eraser built factors for CG, else none."""
    return inputs.factors.inverse(inputs.objective.layout, damping=damping) if inputs.factors is not None else None


def _module_blocks(objective: Objective) -> list[slice]:
    """DataInf's layers: the A and B weights of one LoRA module form one block (adjacent in sorted order)."""
    blocks: dict[str, slice] = {}
    for name, span in objective.layout.spans().items():
        module = name.rsplit(".lora_", 1)[0]
        start = blocks[module].start if module in blocks else span.start
        blocks[module] = slice(start, span.stop)
    return list(blocks.values())
