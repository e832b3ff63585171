"""Kept graphs (eraser/linearization.py): the same products as recomputing the forward, within a memory budget."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from eraser_problems import people, relative_error

from loravault.core import FailedPreconditionError, InvalidArgumentError
from loravault.eraser import CalibrationConfig, CgConfig, CurvatureConfig, Eraser, EraserConfig, ErasureRequest, conjugate_gradient
from loravault.eraser import linearization
from loravault.eraser.curvature import CurvatureOperator


def _watch_saved_tensors(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref]:
    """Weak references to every tensor a kept graph saves from now on, the module's own weights left out."""
    saved: list[weakref.ref] = []
    pack = linearization._SavedBytes.pack

    def watched(self: linearization._SavedBytes, tensor: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, torch.nn.Parameter):  # the module's weights outlive any graph
            saved.append(weakref.ref(tensor))
        return pack(self, tensor)

    monkeypatch.setattr(linearization._SavedBytes, "pack", watched)
    return saved


@pytest.mark.parametrize("kind", ["gauss_newton", "hessian"])
def test_kept_graph_products_match_recomputed_ones(tiny, kind) -> None:
    plain = CurvatureOperator(tiny.objective, tiny.theta, tiny.train[:10], kind=kind, batch_size=4)
    kept = CurvatureOperator(tiny.objective, tiny.theta, tiny.train[:10], kind=kind, batch_size=4, graph_budget_bytes=1 << 30)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # the first product builds the graphs, the later ones reuse them
        v = torch.randn(tiny.theta.numel(), generator=g)
        assert relative_error(kept(v), plain(v)) < 1e-5
    assert 0 < kept.kept_bytes <= 1 << 30 and plain.kept_bytes == 0
    for index in range(4):  # batch products cycle through the kept batches, scaled by their own size
        v = torch.randn(tiny.theta.numel(), generator=g)
        assert relative_error(kept.batch_product(v, index), plain.batch_product(v, index)) < 1e-5


def test_kept_graphs_agree_with_the_dense_matrix(tiny) -> None:
    kept = CurvatureOperator(tiny.objective, tiny.theta, tiny.curvature, graph_budget_bytes=1 << 30)
    v = torch.randn(tiny.theta.numel(), generator=torch.Generator().manual_seed(1))
    kept(v)
    assert relative_error(kept(v), (tiny.dense @ v.double()).float()) < 1e-4


def test_batches_beyond_the_budget_are_recomputed(tiny) -> None:
    """A budget below one batch's graph keeps nothing; exactly the first batch's keeps one; products stay right."""
    first = CurvatureOperator(tiny.objective, tiny.theta, tiny.train[:4], batch_size=4, graph_budget_bytes=1 << 30)
    v = torch.randn(tiny.theta.numel(), generator=torch.Generator().manual_seed(2))
    first(v)
    reference = CurvatureOperator(tiny.objective, tiny.theta, tiny.train[:8], batch_size=4)(v)
    for budget, kept_batches in ((1, 0), (first.kept_bytes, 1)):
        operator = CurvatureOperator(tiny.objective, tiny.theta, tiny.train[:8], batch_size=4, graph_budget_bytes=budget)
        for _ in range(2):
            assert relative_error(operator(v), reference) < 1e-5
        assert operator.kept_batches == kept_batches and operator.kept_bytes <= budget


def test_cg_on_kept_graphs_reaches_the_same_solution(tiny) -> None:
    b = torch.randn(tiny.theta.numel(), generator=torch.Generator().manual_seed(3))
    damping, config = 1e-3, CgConfig(tolerance=1e-6, max_iterations=100)
    plain = CurvatureOperator(tiny.objective, tiny.theta, tiny.curvature)
    kept = CurvatureOperator(tiny.objective, tiny.theta, tiny.curvature, graph_budget_bytes=1 << 30)
    x_plain, _ = conjugate_gradient(plain, b, damping=damping, config=config, progress=False)
    x_kept, report = conjugate_gradient(kept, b, damping=damping, config=config, progress=False)
    assert report.converged and relative_error(x_kept, x_plain) < 1e-3


@pytest.mark.parametrize("budget", [-1, 1.5, True])
def test_graph_budget_must_be_a_whole_number_of_mib(budget) -> None:
    with pytest.raises(InvalidArgumentError, match="graph_budget_mib"):
        CurvatureConfig(graph_budget_mib=budget)


@pytest.mark.parametrize("kind", ["gauss_newton", "hessian"])
def test_kept_graphs_are_freed_with_their_operator(tiny, kind, monkeypatch) -> None:
    """Everything a kept graph saved dies with the operator: a reference cycle through autograd's C++ nodes would
    keep every request's graphs (gigabytes on SmolLM2) until the process runs out of memory."""
    saved = _watch_saved_tensors(monkeypatch)
    operator = CurvatureOperator(tiny.objective, tiny.theta, tiny.train[:8], kind=kind, batch_size=4, graph_budget_bytes=1 << 30)
    v = torch.randn(tiny.theta.numel(), generator=torch.Generator().manual_seed(4))
    operator(v)
    operator(v)
    assert operator.kept_batches == 2 and sum(ref() is not None for ref in saved) > 10
    del operator
    gc.collect()
    assert [ref() for ref in saved if ref() is not None] == []


def test_a_refused_calibrated_step_holds_no_kept_graph(tiny, monkeypatch) -> None:
    """The graphs go when the solve is done: a refusal's traceback (held while a caller tries the plain step)
    would otherwise keep them, doubling the memory of a refused-then-plain pair."""
    saved = _watch_saved_tensors(monkeypatch)
    config = EraserConfig(method="cg", curvature=CurvatureConfig(sample_size=8), cg=CgConfig(max_iterations=3),
                          calibration=CalibrationConfig(max_retain_loss_increase=1e-6))
    eraser = Eraser(tiny.objective, train=tiny.train, reference=people(8, offset=100), config=config, progress=False)
    with pytest.raises(FailedPreconditionError) as refusal:
        eraser.erase(ErasureRequest.of(removals=tiny.train[:2]), step="calibrated")
    gc.collect()
    assert refusal.value is not None and saved and [ref() for ref in saved if ref() is not None] == []
