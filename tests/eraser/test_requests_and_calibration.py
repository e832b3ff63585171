"""Requests validate themselves; the calibrated step finds its target and refuses when the guard cannot hold."""

from __future__ import annotations

import math

import pytest

from loravault.core import FailedPreconditionError, InvalidArgumentError, Sample
from loravault.eraser import CalibrationConfig, Change, ErasureRequest, calibrate_step

A = Sample("a", "Who is A?", "A likes tea")
B = Sample("b", "Who is B?", "B likes jazz")


def test_request_kinds_are_classified() -> None:
    request = ErasureRequest.of(
        removals=[A], additions=[Sample("c", "q", "r")], query_edits=[(B, "Who was B?")],
    )
    request2 = ErasureRequest.of(response_corrections=[(B, "B likes rain")])
    assert request.kinds() == {"removal": 1, "addition": 1, "query_modification": 1}
    assert request2.kinds() == {"response_correction": 1}
    assert request.size_after(10) == 10  # one out, one in, one edited
    assert request.removed_ids == frozenset({"a"}) and request.touched_ids == frozenset({"a", "b", "c"})


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: ErasureRequest(changes=()), id="empty"),
        pytest.param(lambda: Change(old=None, new=None), id="neither-old-nor-new"),
        pytest.param(lambda: Change(old=A, new=Sample("other", A.prompt, "x")), id="edit-changes-id"),
        pytest.param(lambda: Change(old=A, new=A), id="edit-changes-nothing"),
        pytest.param(lambda: ErasureRequest.of(removals=[A, A]), id="duplicate-id"),
    ],
)
def test_malformed_requests_are_refused(build) -> None:
    with pytest.raises(InvalidArgumentError):
        build()


def test_calibration_reaches_the_target_at_the_smallest_scale() -> None:
    # forget loss rises linearly with the scale: reaches 2.0 at s = 30
    report = calibrate_step(lambda s: 0.5 + 0.05 * s, lambda s: 0.1 + 1e-4 * s, target=2.0)
    # the window [2.0, 2.02] is s in [30, 30.4]; a secant on a straight line lands on its middle
    assert report.scale == pytest.approx(30.2, rel=1e-6)
    assert 2.0 <= report.forget_loss_after <= 2.02
    assert report.retain_loss_after <= report.retain_bound


def test_a_known_slope_starts_the_search_near_the_answer_and_saves_evaluations() -> None:
    def forget(s: float) -> float:
        return 0.5 + 0.05 * s + 1e-3 * s * s  # convex: the tangent's answer (s = 30) overshoots the root (~21.6)

    blind = calibrate_step(forget, lambda s: 0.1, target=2.0)
    started = calibrate_step(forget, lambda s: 0.1, target=2.0, slope=0.05)
    assert started.scale == pytest.approx(blind.scale, rel=1e-2) and started.forget_loss_after >= 2.0
    assert started.evaluations < blind.evaluations
    unusable = calibrate_step(forget, lambda s: 0.1, target=2.0, slope=-1.0)  # a slope that points the wrong way
    assert unusable.evaluations == blind.evaluations and unusable.scale == blind.scale


@pytest.mark.parametrize(
    ("forget", "slope", "most"),
    [
        # memorized samples: flat at 0, then steep (the shape measured on SmolLM2)
        pytest.param(lambda s: 0.02 + 1e3 * s + 3e6 * s * s, 1e3, 9, id="convex"),
        pytest.param(lambda s: 0.01 + 10 * s**3, 0.0, 10, id="flat-start-no-slope"),
        pytest.param(lambda s: 0.1 + 4 * (1 - math.exp(-s / 50)), 4 / 50, 8, id="saturating"),
    ],
)
def test_narrowing_lands_in_the_window_in_few_evaluations(forget, slope, most) -> None:
    target, tolerance = 2.0, CalibrationConfig().loss_tolerance
    report = calibrate_step(forget, lambda s: 0.1, target=target, slope=slope)
    assert target <= report.forget_loss_after <= target + tolerance
    assert forget(report.scale) == pytest.approx(report.forget_loss_after)
    assert report.evaluations <= most  # forget and guard losses, at 0 and at the chosen scale included


def test_narrowing_out_of_evaluations_returns_a_scale_above_the_target() -> None:
    report = calibrate_step(lambda s: 0.5 + s**0.1, lambda s: 0.1, target=1.2,
                            config=CalibrationConfig(bisection_steps=1, loss_tolerance=1e-9))
    assert report.forget_loss_after >= 1.2 and 0.5 + report.scale**0.1 == pytest.approx(report.forget_loss_after)


def test_calibration_refuses_when_the_guard_breaks() -> None:
    with pytest.raises(FailedPreconditionError, match="retained loss from 0.1000 to"):
        calibrate_step(lambda s: 0.5 + 0.05 * s, lambda s: 0.1 + 0.01 * s, target=2.0)


def test_calibration_refuses_when_the_target_is_out_of_reach() -> None:
    with pytest.raises(FailedPreconditionError, match="forget loss reached only"):
        calibrate_step(lambda s: 0.5, lambda s: 0.1, target=2.0, config=CalibrationConfig(max_scale=100))


def test_calibration_needs_no_step_when_already_forgotten() -> None:
    assert calibrate_step(lambda s: 3.0, lambda s: 0.1, target=2.0).scale == 0.0
