"""CG at its default settings on LoRA adapters of GPT-2, Qwen2 and GPT-NeoX (built from configs) and tiny: one
damping for every method, agreement with the dense solve, "converged" meaning the true residual, and the
default's choice of preconditioner taking no more products than the other choice."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from eraser_problems import relative_error
from hypothesis import given, settings
from hypothesis import strategies as st

from loravault.bench.eraser_cg import BenchConfig
from loravault.eraser import (
    CgConfig,
    CurvatureOperator,
    Eraser,
    EraserConfig,
    ErasureRequest,
    LissaConfig,
    LlmEraserConfig,
    conjugate_gradient,
    request_vector,
)
from loravault.eraser.config import METHODS
from loravault.eraser.solvers import relative_residual

# the eraser-cg benchmark's problems: a curvature sample of 8 keeps every dense matrix at <= 512 columns over a
# few samples (seconds on one core); the request removes two people
DEFAULTS = BenchConfig().eraser
REQUEST_ROWS = slice(*BenchConfig().forget)


def flat(delta: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([delta[name].flatten() for name in sorted(delta)])


def solve_with(setup, method: str, config: EraserConfig = DEFAULTS):
    eraser = Eraser(setup.objective, train=setup.train, config=replace(config, method=method), progress=False)
    return eraser.erase(ErasureRequest.of(removals=setup.train[REQUEST_ROWS]))


@pytest.fixture(scope="module")
def every_method(architectures) -> dict:
    """Every method's erasure of one request on the Qwen2 adapter, at default settings but for the budgets of
    the methods not compared here (cut to a few products: the damping is chosen before any solver runs)."""
    setup = architectures("qwen2")
    cut = replace(DEFAULTS, lissa=LissaConfig(depth=2, power_iterations=1), llmeraser=LlmEraserConfig(steps=2))
    return {method: solve_with(setup, method, DEFAULTS if method in ("cg", "dense") else cut) for method in METHODS}


def test_cg_agrees_with_the_dense_solve_at_default_settings(every_method) -> None:
    dense, cg = every_method["dense"], every_method["cg"]
    # measured (README, "Eraser"): CG converges in 37 iterations to a true residual of 9.9e-4, 0.3% from the dense
    # solve; the old defaults (EK-FAC-preconditioned CG, its own damping) ended 5.3% from it here and 3-19% on the
    # other models, so 2% (7x what was measured) tells the two apart with room for another machine's rounding
    assert cg.report.residual < 1e-2 and cg.report.iterations <= CgConfig().max_iterations
    assert relative_error(flat(cg.delta), flat(dense.delta)) < 0.02


def test_default_damping_is_identical_for_every_method(every_method) -> None:
    dampings = {method: result.report.damping for method, result in every_method.items()}
    assert len(set(dampings.values())) == 1, dampings  # before: a Hutchinson estimate for some, EK-FAC's for others
    assert next(iter(dampings.values())) > 0


def solve_counting_products(setup, *, precondition: bool, max_iterations: int):
    """CG to the default tolerance on the eraser's own retained operator, damping and factors: (report, products),
    products counting iterations and true-residual checks."""
    config = replace(DEFAULTS, method="cg", cg=CgConfig(max_iterations=max_iterations, precondition=precondition))
    eraser = Eraser(setup.objective, train=setup.train, config=config, progress=False)
    request = ErasureRequest.of(removals=setup.train[REQUEST_ROWS])
    retained = eraser._retained_sample(request)  # noqa: SLF001 (the sample the eraser's own operator uses)
    factors = eraser._retained_factors(request)  # noqa: SLF001
    damping = eraser._damping(factors)  # noqa: SLF001
    operator = CurvatureOperator(setup.objective, eraser.theta, retained, graph_budget_bytes=1 << 30)
    b = request_vector(setup.objective, eraser.theta, request, size_after=len(setup.train) - 2, progress=False)
    preconditioner = factors.inverse(setup.objective.layout, damping=damping) if precondition else None
    _, report = conjugate_gradient(operator, b, damping=damping, config=config.cg, preconditioner=preconditioner,
                                   progress=False)
    return report, operator.products


@pytest.mark.parametrize("architecture", ["tiny", "gpt2", "qwen2", "gpt-neox"])
def test_default_preconditioning_takes_no_more_products_than_the_alternative(tiny, architectures, architecture) -> None:
    """Measured (README, "Eraser"): EK-FAC-preconditioned CG took 1.2-5x the products of plain CG on all four, so
    the default is plain CG; this fails if the other choice reaches the same true residual in fewer products.
    The other choice gets only the default's product count (its excess is not what is asked, and is slow)."""
    setup = tiny if architecture == "tiny" else architectures(architecture)
    default = CgConfig().precondition
    chosen, chosen_products = solve_counting_products(setup, precondition=default, max_iterations=500)
    other, other_products = solve_counting_products(setup, precondition=not default, max_iterations=chosen_products)
    assert chosen.converged  # the default reaches the true residual asked for
    assert not (other.converged and other_products < chosen_products)


@pytest.mark.parametrize("architecture", ["tiny", "gpt2"])
@pytest.mark.parametrize("tolerance", [1e-2, 1e-3, 1e-5])
def test_converged_means_the_true_residual_is_under_the_tolerance_on_lora(tiny, architectures, architecture, tolerance) -> None:
    setup = tiny if architecture == "tiny" else architectures(architecture)
    theta = setup.objective.theta()
    operator = CurvatureOperator(setup.objective, theta, setup.train[:6], graph_budget_bytes=1 << 30)
    b = request_vector(setup.objective, theta, ErasureRequest.of(removals=setup.train[8:10]), size_after=22, progress=False)
    damping = 0.1 * float((operator(b) @ b) / (b @ b))  # a Rayleigh quotient: the curvature's scale along b
    x, report = conjugate_gradient(operator, b, damping=damping, config=CgConfig(tolerance=tolerance), progress=False)
    true = relative_residual(operator, b, x, damping=damping)
    assert report.residual == pytest.approx(true, rel=1e-6)  # the report's residual is the true one
    assert report.converged == (true <= tolerance)
    assert report.converged or report.iterations == CgConfig().max_iterations  # only the budget stops it short


@st.composite
def spd_problems(draw):
    """A float32 SPD system with a spectrum spread over 1 to 10^k, a random right-hand side, an optional diagonal
    preconditioner, and a tolerance down to where float32 rounding decides (1e-6)."""
    size = draw(st.integers(2, 80))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    spectrum = torch.logspace(0, draw(st.floats(0, 7)), size, dtype=torch.float64)
    matrix = ((q * spectrum) @ q.T).float()
    b = torch.randn(size, generator=generator)
    diagonal = 1 / matrix.diagonal() if draw(st.booleans()) else None
    config = CgConfig(tolerance=draw(st.sampled_from([1e-2, 1e-3, 1e-4, 1e-5, 1e-6])),
                      max_iterations=draw(st.integers(1, 3 * size)))
    return matrix, b, diagonal, config


@settings(max_examples=60, deadline=None)
@given(spd_problems())
def test_converged_means_the_true_residual_is_under_the_tolerance(problem) -> None:
    matrix, b, diagonal, config = problem
    operator = lambda v: v @ matrix  # noqa: E731
    preconditioner = None if diagonal is None else (lambda v: v * diagonal)
    x, report = conjugate_gradient(operator, b, damping=0.0, config=config, preconditioner=preconditioner, progress=False)
    true = relative_residual(operator, b, x, damping=0.0)
    assert report.converged == (true <= config.tolerance)
    assert report.residual == pytest.approx(true, rel=1e-6)
    assert report.converged or report.iterations == config.max_iterations
