"""DataInf's closed-form inverse (Kwon et al., arXiv:2310.00902, eq. 5): no iterations, one pass of gradients.

Per layer l, (1/n sum_i g_i g_i' + lambda I)^-1 is approximated by (1/n) sum_i (g_i g_i' + lambda I)^-1, whose
terms invert in closed form (Sherman-Morrison):
    x_l = (1/lambda) * (v_l - (1/n) sum_i (g_il' v_l) / (lambda + ||g_il||^2) * g_il).
Approximated: swapping the inverse and the mean (exact only for rank-one curvature), and block-diagonal layers.
The g_i are the per-sample pseudo-gradients whose outer products estimate the Gauss-Newton matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from loravault.core import InvalidArgumentError

__all__ = ["datainf_inverse"]


def datainf_inverse(
    gradients: torch.Tensor, blocks: Sequence[slice], *, damping: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """v -> DataInf's approximation of (G + lambda I)^-1 v; gradients (n, P), blocks cover 0..P in order."""
    if damping <= 0:
        raise InvalidArgumentError(f"DataInf needs damping > 0, got {damping}")
    n = gradients.shape[0]
    norms = [gradients[:, block].pow(2).sum(-1) for block in blocks]  # per block (n,)

    def apply(v: torch.Tensor) -> torch.Tensor:
        parts = []
        for block, norm in zip(blocks, norms):
            g = gradients[:, block]  # (n, P_l)
            coefficients = (g @ v[block]) / (damping + norm)  # (n,)
            parts.append((v[block] - coefficients @ g / n) / damping)  # (P_l,)
        return torch.cat(parts)

    return apply
