"""Solvers for (G + lambda I) x = b: pure math on operators (v -> Gv) and flat vectors.

They read no files, log nothing and know nothing of models; each returns the solution and a `SolveReport`
whose residual is the true relative residual ||b - (G + lambda I) x|| / ||b||, measured with one extra product
(never a recursion's running estimate, which CG reports beside it).

    >>> G = torch.tensor([[2.0, 0.0], [0.0, 4.0]])
    >>> x, report = conjugate_gradient(lambda v: v @ G, torch.tensor([2.0, 4.0]), damping=0.0, progress=False)
    >>> [round(v, 6) for v in x.tolist()], report.iterations, report.converged
    ([1.0, 1.0], 2, True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .config import CgConfig, LissaConfig, LlmEraserConfig

__all__ = [
    "SolveReport",
    "approximate_inverse_solve",
    "conjugate_gradient",
    "dense_matrix",
    "dense_solve",
    "lissa",
    "llmeraser_solve",
    "pcg_steps",
    "relative_residual",
]

Operator = Callable[[torch.Tensor], torch.Tensor]
SampledOperator = Callable[[torch.Tensor, int], torch.Tensor]  # (v, step) -> a mini-batch product


@dataclass(frozen=True)
class SolveReport:
    """What a solve did: iterations are curvature products spent inside the method."""

    method: str
    damping: float
    iterations: int
    residual: float  # true relative residual of the damped system; nan when no operator was given
    converged: bool  # residual reached the tolerance asked for (methods without one: residual <= 1e-2)
    recurrence_residual: float = float("nan")  # CG only: the recursion's own estimate when it stopped


def _damped(operator: Operator, damping: float) -> Operator:
    return lambda v: operator(v) + damping * v


def relative_residual(operator: Operator, b: torch.Tensor, x: torch.Tensor, *, damping: float) -> float:
    """||b - (G + lambda I) x|| / ||b|| in float64; 0 when b is zero and x solves it."""
    r = (b - _damped(operator, damping)(x)).double()
    norm_b = float(b.double().norm())
    return float(r.norm()) / norm_b if norm_b > 0 else float(r.norm())


def conjugate_gradient(
    operator: Operator,
    b: torch.Tensor,
    *,
    damping: float,
    config: CgConfig = CgConfig(),
    preconditioner: Operator | None = None,
    x0: torch.Tensor | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, SolveReport]:
    """Preconditioned CG (Hestenes & Stiefel 1952) on the damped symmetric positive-definite system.

    `preconditioner` applies an approximation of (G + lambda I)^-1 (EK-FAC); scalars are kept in float64.
    `x0` warm-starts the iteration (e.g. at EK-FAC's solution).

    Guaranteed: `converged` means the true relative residual ||b - (G + lambda I) x|| / ||b|| is at most
    `config.tolerance`. The recursion's residual drifts from the true one in float32, so when the recursion
    reaches the tolerance one extra product measures the true residual; if that is still above the tolerance,
    CG restarts from it while iterations remain (a restart at the true residual, cf. residual replacement, van
    der Vorst & Ye, SIAM J. Sci. Comput. 22(5), 2000). The report's `residual` is that true residual,
    `recurrence_residual` the recursion's own when it stopped.
    """
    A = _damped(operator, damping)
    M = preconditioner or (lambda v: v)
    norm_b = float(b.double().norm())
    if norm_b == 0.0:
        return torch.zeros_like(b), SolveReport("cg", damping, 0, 0.0, True, 0.0)
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - A(x) if x0 is not None else b.clone()
    iterations = 0
    # disable=None: a bar on a terminal only, so a piped log never fills with carriage returns
    bar = tqdm(total=config.max_iterations, desc="conjugate gradient", disable=None if progress else True, leave=False)
    while True:
        x, r, spent = _cg_iterations(A, M, x, r, tolerance=config.tolerance * norm_b,
                                     budget=config.max_iterations - iterations, bar=bar)
        iterations += spent
        recurrence = float(r.double().norm()) / norm_b
        if spent > 0:  # the recursion moved x: measure the true residual with one product
            r = b - A(x)
        residual = float(r.double().norm()) / norm_b
        if residual <= config.tolerance or iterations >= config.max_iterations or spent == 0:
            break
    bar.close()
    return x, SolveReport("cg", damping, iterations, residual, residual <= config.tolerance, recurrence)


def pcg_steps(operator: Operator, b: torch.Tensor, *, damping: float, preconditioner: Operator | None = None
              ) -> Iterator[torch.Tensor]:
    """The PCG iterates x_1, x_2, ... of (G + lambda I) x = b from x_0 = 0, one product each, for as long as the
    caller keeps taking them.

    Why a stream: early iterates are a regularized solution (their norm grows with each one), so a caller that
    chooses an iterate by what it does (the path step) takes products only until its rule stops.
    """
    A = _damped(operator, damping)
    for x, _ in _pcg(A, preconditioner or (lambda v: v), torch.zeros_like(b), b.clone()):
        yield x


def _pcg(A: Operator, M: Operator, x: torch.Tensor, r: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """PCG (Hestenes & Stiefel 1952) from (x, r = b - Ax): (x, r) after each product, scalars in float64."""
    z = M(r)
    p, rz = z.clone(), float((r.double() * z.double()).sum())
    while True:
        Ap = A(p)
        alpha = rz / float((p.double() * Ap.double()).sum())
        x = x + alpha * p
        r = r - alpha * Ap
        yield x, r
        z = M(r)
        rz_next = float((r.double() * z.double()).sum())
        p = z + (rz_next / rz) * p
        rz = rz_next


def _cg_iterations(
    A: Operator, M: Operator, x: torch.Tensor, r: torch.Tensor, *, tolerance: float, budget: int, bar: tqdm
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """PCG from (x, r = b - Ax) until ||r|| <= tolerance (absolute) or `budget` products: (x, r, products)."""
    spent = 0
    if budget <= 0 or float(r.double().norm()) <= tolerance:
        return x, r, spent
    for x, r in _pcg(A, M, x, r):
        spent += 1
        bar.update(1)
        if spent >= budget or float(r.double().norm()) <= tolerance:
            break
    return x, r, spent


def lissa(
    operator: Operator,
    b: torch.Tensor,
    *,
    damping: float,
    config: LissaConfig = LissaConfig(),
    sampled_operator: SampledOperator | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, SolveReport]:
    """LiSSA (Agarwal et al., arXiv:1602.03943, alg. 1): x_j = b + x_{j-1} - A_j x_{j-1} / s, returns x_J / s.

    A_j is `sampled_operator(v, j)` plus damping (the full operator when none is given); s must exceed the
    largest eigenvalue of A, else the recursion diverges; None means 2x a power-iteration estimate.
    """
    scale = config.scale
    spent = 0
    if scale is None:
        scale = 2.0 * largest_eigenvalue(_damped(operator, damping), b, iterations=config.power_iterations)
        spent = config.power_iterations
    step = sampled_operator or (lambda v, j: operator(v))
    x = b.clone()
    for j in tqdm(range(config.depth), desc="lissa", disable=None if progress else True, leave=False):
        x = b + x - (step(x, j) + damping * x) / scale
    x = x / scale
    residual = relative_residual(operator, b, x, damping=damping)
    return x, SolveReport("lissa", damping, config.depth + spent, residual, residual <= 1e-2)


def largest_eigenvalue(operator: Operator, start: torch.Tensor, *, iterations: int) -> float:
    """Power iteration from `start` (a positive semi-definite operator is assumed); a lower bound."""
    v = start / start.norm().clamp_min(1e-30)
    value = 0.0
    for _ in range(iterations):
        w = operator(v)
        value = float((v.double() * w.double()).sum())
        v = w / w.norm().clamp_min(1e-30)
    return max(value, 1e-12)


def dense_matrix(
    operator: Operator, size: int, *, device: str | torch.device = "cpu", chunk: int = 64, progress: bool = True
) -> torch.Tensor:
    """The operator as an explicit (P, P) float64 matrix, symmetrised; P products in chunks (small adapters only).

    The operator must accept a stack of vectors (k, P), as `CurvatureOperator` does.
    """
    rows = []
    for start in tqdm(range(0, size, chunk), desc="dense curvature", disable=None if progress else True, leave=False):
        stop = min(start + chunk, size)
        basis = torch.zeros(stop - start, size, device=device)
        basis[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        rows.append(operator(basis).double())  # (chunk, P): rows of G
    matrix = torch.cat(rows)
    return (matrix + matrix.T) / 2


def dense_solve(matrix: torch.Tensor, b: torch.Tensor, *, damping: float) -> tuple[torch.Tensor, SolveReport]:
    """The reference: solve (G + lambda I) x = b exactly in float64 (Cholesky-free, so semi-definite G is fine)."""
    A = matrix.double() + damping * torch.eye(matrix.shape[0], dtype=torch.float64, device=matrix.device)
    x = torch.linalg.solve(A, b.double())
    norm_b = float(b.double().norm())
    residual = float((b.double() - A @ x).norm()) / norm_b if norm_b > 0 else 0.0
    return x.to(b.dtype), SolveReport("dense", damping, 0, residual, True)


def approximate_inverse_solve(
    inverse: Operator, b: torch.Tensor, *, method: str, damping: float, operator: Operator | None = None
) -> tuple[torch.Tensor, SolveReport]:
    """x = M b for an approximate inverse M (EK-FAC, DataInf); residual measured when an operator is given."""
    x = inverse(b)
    residual = relative_residual(operator, b, x, damping=damping) if operator is not None else float("nan")
    return x, SolveReport(method, damping, 0, residual, residual <= 1e-2)


def llmeraser_solve(
    sampled_operator: SampledOperator,
    b: torch.Tensor,
    *,
    damping: float,
    config: LlmEraserConfig = LlmEraserConfig(),
    operator: Operator | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, SolveReport]:
    """The paper's released procedure: Adam on f(x) = 1/2 x'A_j x - b'x, one single-sample product A_j per step.

    Reproduced as released (x starts at a constant, Adam's weight decay is its only regularizer, no damping in
    the steps); `damping` is used only to measure the residual of the damped system it is compared against.
    NOTE: with the released learning rate every coordinate moves at most about lr per step, so 20 steps
    cannot reach the solution; this mode exists to show exactly that.
    """
    x = torch.full_like(b, config.initial_value).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=config.learning_rate, weight_decay=config.weight_decay)
    for step in tqdm(range(config.steps), desc="llmeraser", disable=None if progress else True, leave=False):
        x.grad = (sampled_operator(x.detach(), step) - b).detach()  # grad of 1/2 x'Ax - b'x for symmetric A
        optimizer.step()
    x = x.detach()
    residual = relative_residual(operator, b, x, damping=damping) if operator is not None else float("nan")
    return x, SolveReport("llmeraser", damping, config.steps, residual, residual <= 1e-2)
