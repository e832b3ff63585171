"""An eigenbasis of the exact curvature, built once per adapter version, and the damped solves it makes free.

Lanczos with full reorthogonalization (Lanczos 1950; Golub & Van Loan, Matrix Computations, 4th ed., sec. 10.1)
on the exact Gauss-Newton operator of the curvature sample: k products give k Ritz pairs (theta_i, v_i), the
extremal ones accurate first. A request then solves (G + delta I) x = b for any delta without another product:

    x(delta) = V (Theta + delta)^-1 V'b + (b - V V'b) / delta                    (Tikhonov on G_k = V Theta V')

Approximated: G by its rank-k Ritz approximation, so directions outside the basis are treated as curvature-free
(they get 1/delta, as they would under the exact inverse if their curvature were 0). With k = P the basis is an
eigendecomposition and x(delta) is the exact damped solve. The Ritz pairs' residuals ||G v_i - theta_i v_i|| are
returned so a caller can see which pairs are resolved.

Pure math: operators and vectors in, vectors out.

    >>> G = torch.diag(torch.tensor([4.0, 2.0, 1.0]))
    >>> basis = lanczos(lambda v: G @ v, torch.ones(3), steps=3)
    >>> [round(v, 4) for v in basis.values.tolist()]
    [4.0, 2.0, 1.0]
    >>> [round(v, 4) for v in basis.solve(torch.tensor([4.0, 2.0, 1.0]), damping=0.0).tolist()]
    [1.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

__all__ = ["SpectralBasis", "lanczos", "path_dampings"]

Operator = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SpectralBasis:
    """Ritz pairs of a symmetric positive semi-definite operator, largest first.

    `vectors` (k, P) are orthonormal rows; `values` (k,) their Ritz values (float64); `residuals` (k,) the bound
    ||G v_i - theta_i v_i|| from the Lanczos recurrence (beta_k |s_ki|), in the operator's units.
    """

    values: torch.Tensor  # (k,) float64, descending
    vectors: torch.Tensor  # (k, P)
    residuals: torch.Tensor  # (k,) float64

    @property
    def rank(self) -> int:
        return int(self.values.numel())

    def scaled(self, factor: float) -> SpectralBasis:
        """The same basis for the operator times `factor` (a mean over fewer samples)."""
        return SpectralBasis(self.values * factor, self.vectors, self.residuals * factor)

    def solve(self, b: torch.Tensor, *, damping: float) -> torch.Tensor:
        """x(delta) = V (Theta + delta)^-1 V'b + (b - V V'b) / delta; damping 0 leaves the complement out."""
        return self.solve_many(b, [damping])[0]

    def solve_many(self, b: torch.Tensor, dampings: Sequence[float]) -> list[torch.Tensor]:
        """x(delta) for each delta, from one projection of b (the whole regularization path at the cost of one)."""
        V = self.vectors.double()  # (k, P)
        coefficients = V @ b.double()  # (k,)
        complement = b.double() - coefficients @ V  # (P,)
        out = []
        for delta in dampings:
            inside = (coefficients / (self.values + delta)) @ V  # (P,)
            x = inside + complement / delta if delta > 0 else inside
            out.append(x.to(b.dtype))
        return out


def lanczos(
    operator: Operator, start: torch.Tensor, *, steps: int, progress: bool = True
) -> SpectralBasis:
    """`steps` Lanczos steps from `start`, each one product, with full reorthogonalization (twice, in float64).

    Stops early when the Krylov space is exhausted (beta below 1e-10 of the largest Ritz value): the basis is
    then invariant and exact. Guaranteed: the returned vectors are orthonormal to float32 precision.
    """
    size = start.numel()
    Q = torch.zeros(min(steps, size), size, dtype=torch.float64, device=start.device)  # (k, P)
    alphas: list[float] = []
    betas: list[float] = []
    q = start.double() / start.double().norm()
    bar = tqdm(total=Q.shape[0], desc="lanczos", disable=None if progress else True, leave=False)
    for j in range(Q.shape[0]):
        Q[j] = q
        w = operator(q.to(start.dtype)).double()  # (P,)
        alphas.append(float(q @ w))
        for _ in range(2):  # classical Gram-Schmidt twice against every kept vector
            w = w - (Q[: j + 1] @ w) @ Q[: j + 1]
        beta = float(w.norm())
        bar.update(1)
        if j + 1 == Q.shape[0] or beta <= 1e-10 * max(abs(a) for a in alphas):
            betas.append(beta)
            break
        betas.append(beta)
        q = w / beta
    bar.close()
    k = len(alphas)
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if k > 1:
        off = torch.tensor(betas[: k - 1], dtype=torch.float64)
        T += torch.diag(off, 1) + torch.diag(off, -1)
    values, S = torch.linalg.eigh((T + T.T) / 2)  # ascending
    order = torch.argsort(values, descending=True)
    values, S = values[order], S[:, order]  # (k,), (k, k)
    vectors = S.T @ Q[:k]  # (k, k) @ (k, P): Ritz vectors as rows
    residuals = abs(betas[k - 1] * S[k - 1])  # (k,)
    return SpectralBasis(values.clamp_min(0.0), vectors.to(start.dtype), residuals)


def path_dampings(basis: SpectralBasis, *, points: int, above: float, floor: float) -> list[float]:
    """A geometric path of dampings, strongest regularization first: from `above` down to `floor` times the largest
    Ritz value, `points` values."""
    top = float(basis.values[0])
    high, low = top * above, top * floor
    if points == 1:
        return [high]
    ratio = (low / high) ** (1.0 / (points - 1))
    return [high * ratio**i for i in range(points)]
