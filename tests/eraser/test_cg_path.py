"""CG's path step (eraser/path.py walk_path, Eraser method="cg", step="path"): PCG's iterates as the path."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from eraser_problems import relative_error

from loravault.core import FailedPreconditionError, InvalidArgumentError
from loravault.eraser import CgConfig, CurvatureConfig, Eraser, EraserConfig, ErasureRequest, pcg_steps, walk_path

PATH = EraserConfig(method="cg", step="path", curvature=CurvatureConfig(sample_size=8),
                    cg=CgConfig(max_iterations=8, precondition=True, sample_size=4, path_max_retain_loss_increase=1e3))


@pytest.mark.parametrize("bound, expected", [(3.5, 3), (0.5, 0), (100.0, 9), (4.0, 4)], ids=["middle", "first", "last", "on-bound"])
def test_walk_takes_the_last_point_within_the_guard_and_no_point_after_the_first_beyond(bound, expected) -> None:
    taken: list[int] = []

    def points():
        for i in range(10):
            taken.append(i)
            yield i

    point, report = walk_path(points(), float, before=0.0, max_increase=bound, damping=0.5)
    assert point == report.index == expected and report.retain_loss_after <= report.retain_bound
    assert taken == list(range(min(expected + 2, 10))) and report.evaluations == len(taken)


def test_walk_refuses_with_numbers_when_the_first_point_breaks_the_guard() -> None:
    with pytest.raises(FailedPreconditionError, match=r"damping 0\.5\) raises .* above the bound 0\.1000"):
        walk_path(iter([1.0, 2.0]), float, before=0.0, max_increase=0.1, damping=0.5)


def test_pcg_steps_reach_the_damped_solve(tiny) -> None:
    """The stream is CG itself: after P iterates of the small dense system it is the exact damped solve."""
    P = tiny.dense.shape[0]
    damping = 0.1 * float(tiny.dense.trace()) / P
    b = torch.randn(P, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    iterates = pcg_steps(lambda v: tiny.dense @ v, b, damping=damping)
    x = [next(iterates) for _ in range(P)][-1]
    expected = torch.linalg.solve(tiny.dense + damping * torch.eye(P, dtype=torch.float64), b)
    assert relative_error(x, expected) < 1e-6


def _walked(tiny, config: EraserConfig):
    eraser = Eraser(tiny.objective, train=tiny.train, config=config, progress=False)
    return eraser, eraser.erase(ErasureRequest.of(removals=[tiny.train[5]]))


def test_cg_path_stops_at_the_first_iterate_past_its_bound(tiny) -> None:
    """Walked once with no effective bound (every iterate's guard loss seen), then with a bound between them: the
    chosen iterate is the last before the first one past it, and no iterate after that one is taken."""
    _, free = _walked(tiny, PATH)
    evaluated = free.report.path.evaluated
    assert free.report.step == "path" and free.report.method == "cg" and len(evaluated) == 8
    before = free.report.path.retain_loss_before
    bound = max(evaluated[0], sorted(evaluated.values())[4])
    first_beyond = next((i for i, loss in sorted(evaluated.items()) if loss > bound), None)
    config = replace(PATH, cg=replace(PATH.cg, path_max_retain_loss_increase=bound - before))
    eraser, walked = _walked(tiny, config)
    path = walked.report.path
    assert path.index == (7 if first_beyond is None else first_beyond - 1)
    assert path.evaluations == (8 if first_beyond is None else first_beyond + 1)
    assert path.retain_loss_after <= path.retain_bound and walked.report.iterations == path.evaluations
    assert path.forget_loss_after > eraser.mean_loss([tiny.train[5]])  # measured at the chosen point: it rose


def test_cg_path_delta_is_the_pcg_iterate_it_chose(tiny) -> None:
    """The same PCG as the influence step (same subset, damping and EK-FAC preconditioner): the path's chosen
    iterate equals CG stopped after as many iterations."""
    _, walked = _walked(tiny, replace(PATH, cg=replace(PATH.cg, max_iterations=3)))
    k = walked.report.path.index + 1
    fixed = replace(PATH, step="influence", cg=replace(PATH.cg, max_iterations=k, tolerance=1e-12))
    _, plain = _walked(tiny, fixed)
    assert plain.report.iterations == k
    flat = lambda d: torch.cat([d[key].reshape(-1) for key in sorted(d)])  # noqa: E731
    assert relative_error(flat(walked.delta), flat(plain.delta)) < 1e-5


def test_cg_path_refuses_when_the_first_iterate_breaks_the_guard(tiny) -> None:
    config = replace(PATH, cg=replace(PATH.cg, path_max_retain_loss_increase=1e-12))
    eraser = Eraser(tiny.objective, train=tiny.train, config=config, progress=False)
    theta = eraser.theta.clone()
    with pytest.raises(FailedPreconditionError, match="most regularized point"):
        eraser.erase(ErasureRequest.of(removals=[tiny.train[5]]))
    assert torch.equal(eraser.theta, theta)


def test_the_subset_changes_the_curvature_and_all_of_it_is_the_default(tiny) -> None:
    """sample_size picks fewer exact-product samples (another solve); a size at or above the sample is all of it."""
    deltas = {}
    for size in (2, 8, None):
        config = replace(PATH, step="influence", cg=replace(PATH.cg, sample_size=size, max_iterations=4, tolerance=1e-12))
        _, result = _walked(tiny, config)
        deltas[size] = torch.cat([result.delta[k].reshape(-1) for k in sorted(result.delta)])
    assert relative_error(deltas[8], deltas[None]) < 1e-6
    assert relative_error(deltas[2], deltas[None]) > 1e-3


@pytest.mark.parametrize("bad", [dict(sample_size=0), dict(sample_size=True), dict(path_max_retain_loss_increase=0.0),
                                 dict(path_max_retain_loss_increase=float("nan"))])
def test_bad_cg_path_settings_are_refused(bad) -> None:
    with pytest.raises(InvalidArgumentError, match="cg"):
        CgConfig(**bad)


def test_the_path_step_needs_a_method_with_a_path(tiny) -> None:
    eraser = Eraser(tiny.objective, train=tiny.train, config=EraserConfig(curvature=CurvatureConfig(sample_size=8)), progress=False)
    with pytest.raises(InvalidArgumentError, match="regularization path"):
        eraser.erase(ErasureRequest.of(removals=[tiny.train[5]]), method="ekfac", step="path")
