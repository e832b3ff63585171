"""Automatic damping: lambda = factor x the mean eigenvalue of the curvature, so it scales with the problem.

The mean eigenvalue is trace(G) / P: read exactly off EK-FAC's eigenvalues when factors exist, else estimated
with Hutchinson's estimator (Hutchinson 1989: E[z'Gz] = trace(G) for Rademacher z), a few products.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from loravault.core import FailedPreconditionError

__all__ = ["auto_damping", "hutchinson_mean_eigenvalue"]


def hutchinson_mean_eigenvalue(
    operator: Callable[[torch.Tensor], torch.Tensor],
    size: int,
    *,
    probes: int = 4,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> float:
    """trace(G) / P from `probes` Rademacher vectors, taken as one stacked (probes, P) product."""
    generator = torch.Generator(device=device).manual_seed(seed)
    z = torch.randint(0, 2, (probes, size), generator=generator, device=device).to(torch.float32) * 2 - 1  # (k, P)
    return float((z.double() * operator(z).double()).sum() / (probes * size))


def auto_damping(mean_eigenvalue: float, *, factor: float) -> float:
    """factor x mean eigenvalue; refuses a curvature with no positive mass (nothing to scale against)."""
    if not mean_eigenvalue > 0:
        raise FailedPreconditionError(
            f"curvature has mean eigenvalue {mean_eigenvalue:.3g}: cannot choose damping automatically, set it"
        )
    return factor * mean_eigenvalue
