"""The Eraser end to end on the tiny adapter: delta names, cache by adapter hash, calibrated step, refusals."""

from __future__ import annotations

import importlib
from dataclasses import replace

import pytest
import torch
from eraser_problems import people

import loravault.eraser as eraser_api
from loravault.core import InvalidArgumentError, Sample, adapter_from_peft_model, add_delta, canonical_float32, sha256_hex
from loravault.eraser import (
    CalibrationConfig,
    CgConfig,
    CurvatureConfig,
    Eraser,
    EraserConfig,
    ErasureRequest,
    adapter_distance,
    apply_delta,
)

CONFIG = EraserConfig(method="cg", curvature=CurvatureConfig(sample_size=8), cg=CgConfig(tolerance=1e-3, max_iterations=30))


def test_public_api_is_exactly_all() -> None:
    exported = {name for name in dir(eraser_api) if not name.startswith("_")}
    modules = {"calibrate", "config", "curvature", "damping", "datainf", "delta", "ekfac", "gradients",
               "layout", "linearization", "objective", "requests", "solvers", "solve", "cache", "pseudo_gradients",
               "path", "spectral"}
    assert set(eraser_api.__all__) == exported - modules
    assert all(hasattr(eraser_api, name) for name in eraser_api.__all__)


def test_delta_has_the_adapters_names_in_float32(tiny) -> None:
    eraser = Eraser(tiny.objective, train=tiny.train, config=CONFIG, progress=False)
    result = eraser.erase(ErasureRequest.of(removals=[tiny.train[5]]))
    schema, tensors = adapter_from_peft_model(tiny.model, base_fingerprint="0" * 64)
    assert set(result.delta) == set(tensors)
    assert all(t.dtype == torch.float32 and t.shape == tensors[n].shape for n, t in result.delta.items())
    assert result.report.step == "influence" and result.report.method == "cg"
    assert result.report.damping > 0 and result.report.wall_seconds > 0 and result.report.peak_memory_bytes > 0
    merged = add_delta(schema, tensors, result.delta)
    assert adapter_distance(schema, tensors, merged) > 0


def test_default_erasure_is_amortized_ekfac_with_a_measured_residual(tiny) -> None:
    eraser = Eraser(tiny.objective, train=tiny.train, config=EraserConfig(curvature=CurvatureConfig(sample_size=8)), progress=False)
    result = eraser.erase(ErasureRequest.of(removals=[tiny.train[5]]))
    report = result.report
    assert (report.method, report.curvature, report.iterations) == ("ekfac", "gauss_newton+ekfac", 0)
    assert 0 < report.residual < float("inf")  # one exact product on the retained sample measures the solve


def test_ekfac_factors_are_cached_by_adapter_hash(tiny, tmp_path) -> None:
    first = Eraser(tiny.objective, train=tiny.train, config=CONFIG, cache_dir=tmp_path, progress=False)
    factors = first.build_curvature()
    files = list(tmp_path.glob("ekfac-*.safetensors"))
    assert len(files) == 1 and first.adapter_hash()[:32] in files[0].name
    second = Eraser(tiny.objective, train=tiny.train, config=CONFIG, cache_dir=tmp_path, progress=False)
    loaded = second.build_curvature()
    assert second.curvature_build_seconds is None  # loaded, not rebuilt
    for name, block in factors.blocks.items():
        assert torch.equal(block.eigenvalues, loaded.blocks[name].eigenvalues)
    other = Eraser(tiny.objective, train=tiny.train, config=replace(CONFIG, curvature=CurvatureConfig(sample_size=7)),
                   cache_dir=tmp_path, progress=False)
    other.build_curvature()
    assert other.curvature_build_seconds is not None  # another curvature setup never reuses the file


def test_calibrated_step_raises_forget_loss_to_the_reference_loss(tiny) -> None:
    reference = people(8, offset=100)  # never trained, same kind
    config = replace(CONFIG, calibration=CalibrationConfig(max_retain_loss_increase=5.0))
    eraser = Eraser(tiny.objective, train=tiny.train, reference=reference, config=config, progress=False)
    result = eraser.erase(ErasureRequest.of(removals=tiny.train[:2]))
    report = result.report.calibration
    assert result.report.step == "calibrated" and report is not None
    assert report.forget_loss_before < report.target_loss <= report.forget_loss_after
    assert report.forget_loss_after < report.target_loss + 0.05  # bisection stops at the target, not past it


def test_calibrated_step_refuses_with_numbers_when_the_guard_cannot_hold(tiny) -> None:
    from loravault.core import FailedPreconditionError

    config = replace(CONFIG, calibration=CalibrationConfig(max_retain_loss_increase=1e-6))
    eraser = Eraser(tiny.objective, train=tiny.train, reference=people(8, offset=100), config=config, progress=False)
    with pytest.raises(FailedPreconditionError, match=r"retained loss from \d"):
        eraser.erase(ErasureRequest.of(removals=tiny.train[:2]))


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(ErasureRequest.of(removals=[Sample("nobody", "q", "r")]), id="unknown-sample"),
        pytest.param(ErasureRequest.of(removals=[Sample("p000", "Who is p0?", "p0 likes something else")]), id="stale-old-version"),
        pytest.param(ErasureRequest.of(additions=[Sample("p001", "q", "r")]), id="addition-under-existing-id"),
    ],
)
def test_requests_that_do_not_match_the_training_set_are_refused(tiny, request_) -> None:
    eraser = Eraser(tiny.objective, train=tiny.train, config=CONFIG, progress=False)
    with pytest.raises(InvalidArgumentError):
        eraser.erase(request_)


def test_apply_delta_moves_the_model_and_refuses_unknown_names(tiny) -> None:
    schema, before = adapter_from_peft_model(tiny.model, base_fingerprint="0" * 64)
    delta = {name: torch.full_like(t, 0.01) for name, t in before.items()}
    with pytest.raises(InvalidArgumentError):
        apply_delta(tiny.model, {**delta, "not.a.lora_A.weight": torch.zeros(1)})
    _, unchanged = adapter_from_peft_model(tiny.model, base_fingerprint="0" * 64)
    assert all(torch.equal(unchanged[n], before[n]) for n in before)  # refused: nothing moved
    apply_delta(tiny.model, delta)
    _, after = adapter_from_peft_model(tiny.model, base_fingerprint="0" * 64)
    apply_delta(tiny.model, delta, scale=-1.0)  # restore for the other tests
    assert all(torch.allclose(after[n], before[n] + 0.01) for n in before)


def test_downdating_with_collected_rows_equals_recollecting_the_removed_samples(tiny) -> None:
    from loravault.eraser.ekfac import EkfacFactors
    from loravault.eraser.pseudo_gradients import collect_pseudo_gradients

    samples = tiny.train[:8]
    theta = tiny.objective.theta()
    collected = collect_pseudo_gradients(tiny.objective, theta, samples, seed=0, progress=False)
    factors = EkfacFactors.from_pseudo_gradients(collected)
    removed = [samples[2], samples[5]]
    from_rows = factors.without(collected.rows([s.id for s in removed]))
    recollected = factors.without(collect_pseudo_gradients(tiny.objective, theta, removed, seed=0, with_covariances=False, progress=False))
    assert from_rows.ids == recollected.ids and len(from_rows.ids) == 6
    for name, block in from_rows.blocks.items():
        torch.testing.assert_close(block.eigenvalues, recollected.blocks[name].eigenvalues, rtol=1e-4, atol=1e-10)
    with pytest.raises(InvalidArgumentError, match="no collected pseudo-gradient"):
        collected.rows(["not-a-sample"])


def test_losses_under_the_unchanged_adapter_are_computed_once_per_eraser(tiny, monkeypatch) -> None:
    config = replace(CONFIG, method="ekfac", calibration=CalibrationConfig(max_retain_loss_increase=5.0))
    eraser = Eraser(tiny.objective, train=tiny.train, reference=people(8, offset=100), config=config, progress=False)
    request = ErasureRequest.of(removals=tiny.train[:2])
    objective_type, calls = type(tiny.objective), []
    original = objective_type.per_sample_loss
    monkeypatch.setattr(objective_type, "per_sample_loss", lambda self, theta, batch: calls.append(1) or original(self, theta, batch))
    first = eraser.erase(request)
    first_calls, calls[:] = len(calls), []
    second = eraser.erase(request)
    assert second.report.calibration == first.report.calibration
    # at scale 0 the reference (one pass of 8), forget (one pass) and guard (two passes) losses came from the cache
    assert first_calls - len(calls) == 1 + 1 + 2


def test_summed_gradient_is_the_sum_of_per_sample_gradients(tiny) -> None:
    samples = [tiny.train[1], tiny.train[7], tiny.train[12]]  # different lengths: padding is masked in both
    summed = eraser_api.gradients.summed_gradient(tiny.objective, tiny.theta, samples, chunk=2, progress=False)
    rows = eraser_api.per_sample_gradients(tiny.objective, tiny.theta, samples, progress=False)
    torch.testing.assert_close(summed, rows.sum(0), rtol=1e-4, atol=1e-6)


def test_prepare_does_the_one_off_work_so_a_request_finds_it_done(tiny) -> None:
    train, reference = tiny.train[:20], tiny.train[20:]
    eraser = Eraser(tiny.objective, train=train, reference=reference, progress=False,
                    config=replace(CONFIG, method="ekfac", curvature=CurvatureConfig(sample_size=8)))
    eraser.prepare()
    prepared = dict(eraser._unchanged_losses)  # noqa: SLF001 (what prepare computed)
    assert set(reference) <= set(prepared) and len(prepared) > len(reference)
    request = ErasureRequest.of(removals=[train[3]])
    guard = eraser._guard_samples(touched=request.touched_ids)  # noqa: SLF001
    # the request's guard is the prepared one less the request's own samples, refilled from the same order
    assert len(set(guard) - set(prepared)) <= len(request.touched_ids)
    eraser.erase(request, step="calibrated")
    assert set(eraser._unchanged_losses) - set(prepared) <= {train[3]} | set(guard)  # noqa: SLF001


def test_forget_slope_is_the_mean_forget_gradient_along_the_direction(tiny) -> None:
    forgotten = [tiny.train[2], tiny.train[9]]
    gradients = eraser_api.request_gradients(tiny.objective, tiny.theta, ErasureRequest.of(removals=forgotten),
                                             progress=False)
    direction = torch.randn(tiny.theta.shape, generator=torch.Generator().manual_seed(0))
    mean = eraser_api.per_sample_gradients(tiny.objective, tiny.theta, forgotten, progress=False).mean(0)
    assert gradients.forget_slope(direction) == pytest.approx(float(mean.double() @ direction.double()), rel=1e-4)
    additions = eraser_api.request_gradients(tiny.objective, tiny.theta,
                                             ErasureRequest.of(additions=[Sample("new", "Who?", "nobody")]),
                                             progress=False)
    assert additions.forget_slope(direction) is None  # nothing forgotten: the search starts at scale 1


def test_an_eraser_advanced_across_two_erasures_builds_its_curvature_once(tiny) -> None:
    eraser = Eraser(tiny.objective, train=tiny.train, progress=False,
                    config=replace(CONFIG, method="ekfac", curvature=CurvatureConfig(sample_size=8)))
    schema, tensors = adapter_from_peft_model(tiny.model, base_fingerprint="0" * 64)
    first_request = ErasureRequest.of(removals=[eraser.curvature_samples[0]])
    first = eraser.erase(first_request)
    merged = add_delta(schema, tensors, first.delta)
    eraser.advance(first_request, merged)
    assert eraser.adapter_hash() == sha256_hex(canonical_float32(merged))
    assert first_request.changes[0].id not in eraser.train
    assert first_request.changes[0].id not in {s.id for s in eraser.curvature_samples}
    second = eraser.erase(ErasureRequest.of(removals=[eraser.curvature_samples[0]]))
    assert eraser.curvature_builds == 1  # carried over with the first sample taken out, not rebuilt
    assert second.report.size_before == len(tiny.train) - 1
    assert second.report.method == "ekfac" and 0 < second.report.residual < float("inf")
    with pytest.raises(InvalidArgumentError, match="not in the training set"):
        eraser.erase(first_request)  # the first erasure's sample is gone from the advanced eraser


def test_advance_refuses_an_adapter_with_other_tensors_and_leaves_the_eraser_unchanged(tiny) -> None:
    eraser = Eraser(tiny.objective, train=tiny.train, config=CONFIG, progress=False)
    _, tensors = adapter_from_peft_model(tiny.model, base_fingerprint="0" * 64)
    held = eraser.adapter_hash()
    first = sorted(tensors)[0]
    with pytest.raises(InvalidArgumentError, match=f"first difference: {first}"):
        eraser.advance(ErasureRequest.of(removals=[tiny.train[0]]), {n: t for n, t in tensors.items() if n != first})
    assert eraser.adapter_hash() == held and len(eraser.train) == len(tiny.train)


@pytest.mark.parametrize("override, message", [
    ({"method": "ekfca"}, "eraser method 'ekfca' is not one of"),
    ({"step": "calibrate"}, "eraser step 'calibrate' is not one of"),
], ids=["method-typo", "step-typo"])
def test_an_invalid_override_is_refused_before_any_work(tiny, monkeypatch, override, message) -> None:
    eraser = Eraser(tiny.objective, train=tiny.train, config=CONFIG, progress=False)

    def no_work(*args, **kwargs):
        raise AssertionError("the request's gradients were computed before the override was checked")

    monkeypatch.setattr(importlib.import_module("loravault.eraser.erase"), "request_gradients", no_work)
    with pytest.raises(InvalidArgumentError, match=message):
        eraser.erase(ErasureRequest.of(removals=[tiny.train[0]]), **override)
    assert eraser.curvature_builds == 0
