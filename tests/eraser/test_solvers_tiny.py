"""Every solver against the explicit dense solve on a tiny LoRA adapter (512 parameters), same operator and b."""

from __future__ import annotations

import pytest
import torch

from eraser_problems import relative_error

from loravault.core import Sample
from loravault.eraser import (
    CgConfig,
    EkfacFactors,
    ErasureRequest,
    LissaConfig,
    conjugate_gradient,
    datainf_inverse,
    dense_solve,
    lissa,
    llmeraser_solve,
    request_vector,
)
from loravault.eraser.curvature import CurvatureOperator
from loravault.eraser.pseudo_gradients import collect_pseudo_gradients


@pytest.fixture(scope="module")
def problem(tiny):
    """b of removing two people, and a damping of one mean eigenvalue (condition number ~ 60 on this G)."""
    request = ErasureRequest.of(removals=tiny.train[2:4])
    b = request_vector(tiny.objective, tiny.theta, request, size_after=len(tiny.train) - 2, progress=False)
    damping = float(tiny.dense.diagonal().mean())
    reference, _ = dense_solve(tiny.dense, b, damping=damping)
    return b, damping, reference


def test_cg_on_gauss_newton_matches_dense_solve(tiny, problem) -> None:
    b, damping, reference = problem
    # float32 products leave a true relative residual of a few 1e-6 (the recursion's own goes lower): 1e-5 is
    # reachable; times the condition number (~60) that is ~1e-4 at worst
    x, report = conjugate_gradient(tiny.operator, b, damping=damping, config=CgConfig(tolerance=1e-5, max_iterations=200), progress=False)
    assert relative_error(x, reference) < 1e-4
    assert report.converged and report.residual < 1e-5


def test_cg_stops_on_its_tolerance(tiny, problem) -> None:
    b, damping, reference = problem
    loose, report = conjugate_gradient(tiny.operator, b, damping=damping, config=CgConfig(tolerance=1e-2), progress=False)
    tight, tight_report = conjugate_gradient(tiny.operator, b, damping=damping, config=CgConfig(tolerance=1e-7, max_iterations=200), progress=False)
    assert report.residual <= 1e-2 < 10 * tight_report.residual + 1e-2
    assert report.iterations < tight_report.iterations


def test_lissa_agrees_within_its_contraction_bound(tiny, problem) -> None:
    """LiSSA with the full operator is Richardson iteration: relative error <= (1 - mu / s)^(depth + 1)."""
    b, damping, reference = problem
    eigenvalues = torch.linalg.eigvalsh(tiny.dense) + damping
    scale = 1.1 * float(eigenvalues.max())
    depth = 150
    bound = (1 - float(eigenvalues.min()) / scale) ** (depth + 1)
    x, _ = lissa(tiny.operator, b, damping=damping, config=LissaConfig(depth=depth, scale=scale), progress=False)
    assert bound < 0.2  # the test asks for real agreement, not a vacuous bound
    assert relative_error(x, reference) < bound + 1e-4  # + float32 rounding over 150 steps


def cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(x.double(), y.double(), dim=0))


def test_ekfac_agrees_within_its_approximation(tiny, problem) -> None:
    """EK-FAC drops cross-layer curvature and estimates the rest from 6 sampled-label gradients, so it is no
    exact solver (measured here: cosine 0.84 with the exact solution, norm within 30%). Asserted: its direction
    beats b's own (what any curvature-blind method gives, cosine 0.75 here), and its length is within 2x."""
    b, damping, reference = problem
    collected = collect_pseudo_gradients(tiny.objective, tiny.theta, tiny.curvature, seed=0, progress=False)
    x = EkfacFactors.from_pseudo_gradients(collected).inverse(tiny.objective.layout, damping=damping)(b)
    assert cosine(x, reference) > cosine(b, reference)
    assert 0.5 < float(x.norm() / reference.norm()) < 2.0


def test_datainf_is_a_coarser_approximation(tiny, problem) -> None:
    """DataInf swaps inverse and mean (exact only for rank-one curvature): it is only asked to point the right
    way (cosine > 0.5 with the exact solution)."""
    b, damping, reference = problem
    collected = collect_pseudo_gradients(tiny.objective, tiny.theta, tiny.curvature, seed=0, progress=False)
    spans = list(tiny.objective.layout.spans().values())
    x = datainf_inverse(collected.flat(tiny.objective), spans, damping=damping)(b)
    assert cosine(x, reference) > 0.5


def test_llmeraser_procedure_lands_far_from_the_exact_solution(tiny, problem) -> None:
    """20 single-sample Adam steps at lr 1e-5 move each coordinate by at most ~2e-4: the released procedure
    does not solve the system. Measured relative error ~1.0 (the solution is ~0 next to the reference)."""
    b, damping, reference = problem
    single = CurvatureOperator(tiny.objective, tiny.theta, tiny.curvature, batch_size=1)
    x, report = llmeraser_solve(single.batch_product, b, damping=damping, operator=tiny.operator, progress=False)
    cg, _ = conjugate_gradient(tiny.operator, b, damping=damping, config=CgConfig(tolerance=1e-7, max_iterations=200), progress=False)
    assert relative_error(x, reference) > 0.9
    assert relative_error(x, reference) > 1000 * relative_error(cg, reference)
    assert report.iterations == 20 and not report.converged


def test_dense_solve_reports_a_tiny_residual(tiny, problem) -> None:
    b, damping, reference = problem
    _, report = dense_solve(tiny.dense, b, damping=damping)
    assert report.residual < 1e-10


def test_curvature_refused_without_eager_attention() -> None:
    from loravault.client.training import TrainingConfig, train_lora
    from loravault.core import FailedPreconditionError, load_base
    from loravault.eraser import lora_objective

    base = load_base("tiny")  # sdpa
    samples = [Sample("a", "q", "r")]
    model = train_lora(base.model, base.tokenizer, samples, config=TrainingConfig(rank=1, steps=1), progress=False)
    objective = lora_objective(model, base.tokenizer)
    with pytest.raises(FailedPreconditionError, match="eager"):
        CurvatureOperator(objective, objective.theta(), samples)
