"""The spectral method (eraser/spectral.py, path.py): a Lanczos basis of the exact curvature and its damped path."""

from __future__ import annotations

import pytest
import torch
from eraser_problems import people, relative_error

from loravault.core import FailedPreconditionError, InvalidArgumentError
from loravault.eraser import (
    CurvatureConfig,
    Eraser,
    EraserConfig,
    ErasureRequest,
    SpectralConfig,
    choose_on_path,
    dense_solve,
    lanczos,
    path_dampings,
)


def _damping(dense: torch.Tensor) -> float:
    return 0.1 * float(dense.trace()) / dense.shape[0]  # the eraser's rule: 0.1 x the mean eigenvalue


def test_full_basis_solve_equals_the_dense_damped_solve(tiny) -> None:
    """At k = P (or once the Krylov space is invariant) the basis is an eigendecomposition, so x(delta) is the exact
    damped solve. float64 throughout; the damped system's condition number is about 700 here and P Lanczos steps
    compound rounding in the near-null directions (measured 9e-7), so 1e-5 still fails any wrong filter."""
    P = tiny.dense.shape[0]
    b = torch.randn(P, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    basis = lanczos(lambda v: tiny.dense @ v, b.clone(), steps=P, progress=False)
    for damping in (_damping(tiny.dense), 10 * _damping(tiny.dense)):
        expected, _ = dense_solve(tiny.dense, b, damping=damping)
        assert relative_error(basis.solve(b, damping=damping), expected) < 1e-5


def test_ritz_values_of_the_exact_operator_match_the_top_eigenvalues(tiny) -> None:
    """24 products of the real (float32, kept-graph) operator resolve the top eigenvalues of the dense matrix: the
    largest to 1e-4 (float32 products), the fifth to 1e-2 (interior pairs converge later)."""
    start = torch.randn(tiny.theta.numel(), generator=torch.Generator().manual_seed(1))
    basis = lanczos(tiny.operator, start, steps=24, progress=False)
    top = torch.linalg.eigvalsh(tiny.dense).flip(0)
    assert abs(float(basis.values[0]) / float(top[0]) - 1) < 1e-4
    assert abs(float(basis.values[4]) / float(top[4]) - 1) < 1e-2
    gram = basis.vectors.double() @ basis.vectors.double().T  # (k, k)
    assert torch.allclose(gram, torch.eye(basis.rank, dtype=torch.float64), atol=1e-5)


def test_the_path_is_one_projection_and_weakens_regularization_monotonically(tiny) -> None:
    """solve_many equals one solve per damping; along the path the step grows (a longer step for smaller delta)."""
    b = torch.randn(tiny.dense.shape[0], generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    basis = lanczos(lambda v: tiny.dense @ v, b.clone(), steps=40, progress=False)
    dampings = path_dampings(basis, points=8, above=4.0, floor=1e-3)
    assert dampings == sorted(dampings, reverse=True) and dampings[0] == pytest.approx(4 * float(basis.values[0]))
    assert dampings[-1] == pytest.approx(1e-3 * float(basis.values[0]))
    xs = basis.solve_many(b, dampings)
    for delta, x in zip(dampings, xs):
        assert relative_error(x, basis.solve(b, damping=delta)) < 1e-12
    norms = [float(x.norm()) for x in xs]
    assert norms == sorted(norms)


@pytest.mark.parametrize("bound, expected", [(3.5, 3), (0.5, 0), (100.0, 9), (4.0, 4)], ids=["middle", "first", "last", "on-bound"])
def test_path_rule_takes_the_last_point_within_the_guard(bound, expected) -> None:
    calls: list[int] = []

    def guard(i: int) -> float:
        calls.append(i)
        return float(i)  # rising along the path

    report = choose_on_path([2.0 ** -i for i in range(10)], guard, before=0.0, max_increase=bound)
    assert report.index == expected and report.retain_loss_after <= report.retain_bound
    assert len(set(calls)) == len(calls) <= 6  # bisection: no point measured twice, about log2(10) + 2


def test_path_rule_refuses_with_numbers_when_the_first_point_breaks_the_guard() -> None:
    with pytest.raises(FailedPreconditionError, match=r"most regularized point .* above the bound 0\.1000"):
        choose_on_path([1.0, 0.5], lambda i: 1.0 + i, before=0.0, max_increase=0.1)


def test_spectral_eraser_takes_the_strongest_point_within_the_guard(tiny) -> None:
    """The default-path erasure: chosen point within the guard, the next stronger point (when any) beyond it, the
    basis built once for two requests."""
    config = EraserConfig(method="spectral", curvature=CurvatureConfig(sample_size=8), spectral=SpectralConfig(rank=16, path_points=12, start="gradients"))
    eraser = Eraser(tiny.objective, train=tiny.train, config=config, progress=False)
    result = eraser.erase(ErasureRequest.of(removals=[tiny.train[5]]))
    path = result.report.path
    assert result.report.step == "path" and result.report.method == "spectral" and path is not None
    assert path.retain_loss_after <= path.retain_bound
    if path.index + 1 in path.evaluated:
        assert path.evaluated[path.index + 1] > path.retain_bound
    basis = eraser.build_spectral_basis()
    eraser.erase(ErasureRequest.of(removals=[tiny.train[6]]))
    assert eraser.build_spectral_basis() is basis and eraser.spectral_build_seconds is not None


def test_fixed_damping_spectral_step_at_full_rank_equals_the_dense_method(tiny) -> None:
    """step='influence' at a set damping: with a basis of rank P over the same 6 samples as the dense method (the
    removed sample outside them), the two deltas agree to float32 rounding of P products (1e-3)."""
    config = EraserConfig(method="spectral", step="influence", damping=_damping(tiny.dense),
                          curvature=CurvatureConfig(sample_size=6), spectral=SpectralConfig(rank=tiny.theta.numel()))
    train = tiny.train[:7]
    spectral = Eraser(tiny.objective, train=train, config=config, progress=False)
    dense = Eraser(tiny.objective, train=train, config=EraserConfig(method="dense", step="influence", damping=config.damping,
                   curvature=CurvatureConfig(sample_size=6)), progress=False)
    outside = [s for s in train if s not in spectral.curvature_samples]  # both see the same 6-sample G
    request = ErasureRequest.of(removals=outside)
    a, b = spectral.erase(request).delta, dense.erase(request).delta
    flat = lambda d: torch.cat([d[k].reshape(-1) for k in sorted(d)])  # noqa: E731
    assert relative_error(flat(a), flat(b)) < 1e-3


def test_a_fixed_damping_override_on_the_spectral_method_takes_the_automatic_damping(tiny) -> None:
    """step='influence' overriding a path config: the damping is the EK-FAC rule's (factors built for it), and the
    delta is the basis's solve at that damping."""
    config = EraserConfig(method="spectral", curvature=CurvatureConfig(sample_size=8), spectral=SpectralConfig(rank=8))
    eraser = Eraser(tiny.objective, train=tiny.train, config=config, progress=False)
    result = eraser.erase(ErasureRequest.of(removals=[tiny.train[5]]), step="influence")
    assert result.report.step == "influence" and result.report.path is None and eraser.curvature_builds == 1
    assert result.report.damping == pytest.approx(0.1 * eraser.build_curvature().mean_eigenvalue(), rel=0.2)


def test_preconditioned_basis_path_stays_within_the_guard_and_refuses_a_fixed_damping(tiny) -> None:
    """Lanczos on S G S (S the EK-FAC root): the path step answers within the guard; a fixed-damping step, which this
    basis cannot answer, is refused before any solve."""
    config = EraserConfig(method="spectral", curvature=CurvatureConfig(sample_size=8),
                          spectral=SpectralConfig(rank=16, path_points=24, precondition=True))
    eraser = Eraser(tiny.objective, train=tiny.train, config=config, progress=False)
    path = eraser.erase(ErasureRequest.of(removals=[tiny.train[5]])).report.path
    assert path is not None and path.retain_loss_after <= path.retain_bound and eraser.curvature_builds == 1
    with pytest.raises(InvalidArgumentError, match="path step only"):
        eraser.erase(ErasureRequest.of(removals=[tiny.train[5]]), step="influence")
