"""The calibrated step: how far to move along an erasure direction, set by losses instead of by the damping.

Memorized samples have near-zero gradients and curvature, so the length of (G + lambda I)^-1 b is decided by
lambda alone. Instead, the step grows until the forgotten samples' mean loss reaches `target` (the loss the
adapter gives never-trained samples of the same kind, as it would after retraining without them). A held-out
sample of retained data guards the other side: its loss may rise by at most `max_retain_loss_increase`. The
smallest step that reaches the target is the one that harms retained data least (both losses grow with the
step), so when it breaks the guard no step satisfies both, and the calibration refuses.

The search works on log(scale), because a direction's natural length spans many orders of magnitude (an EK-FAC
direction on SmolLM2 needed 5e-5, plain b needed 300): from scale 1 it multiplies or divides by 10 until the
target is bracketed, then narrows the bracket by regula falsi with the Illinois fix (Dowell & Jarratt 1971) on
forget_loss(s) - target over log s, stopping once the loss lies within `loss_tolerance` above the target.
Each evaluation is one forward pass over the forget set, the dominant cost of a request when the direction
is amortized.

Pure math: the losses come in as callables of the step scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from loravault.core import FailedPreconditionError

from .config import CalibrationConfig

__all__ = ["CalibrationReport", "calibrate_step"]


@dataclass(frozen=True)
class CalibrationReport:
    """The chosen scale and the losses (mean token NLL) that justified it."""

    scale: float
    target_loss: float  # never-trained reference loss
    forget_loss_before: float
    forget_loss_after: float
    retain_loss_before: float
    retain_loss_after: float
    retain_bound: float  # retain_loss_before + the allowed increase
    evaluations: int  # loss evaluations spent


def calibrate_step(
    forget_loss: Callable[[float], float],
    retain_loss: Callable[[float], float],
    *,
    target: float,
    config: CalibrationConfig = CalibrationConfig(),
    slope: float | None = None,
) -> CalibrationReport:
    """Smallest scale s (to `loss_tolerance`) with forget_loss(s) >= target, checked against the guard.

    `slope`, the forget loss's derivative in s at 0 when known, only chooses where the search starts.

    Raises FailedPreconditionError, with the numbers, when no scale up to max_scale reaches the target or when
    reaching it raises the retained loss past its bound. A forget set already at the target gives scale 0.
    """
    forget_before, retain_before = forget_loss(0.0), retain_loss(0.0)
    bound = retain_before + config.max_retain_loss_increase
    if forget_before >= target:
        return CalibrationReport(0.0, target, forget_before, forget_before, retain_before, retain_before, bound, 2)
    calls = [2]

    def gap(log_scale: float) -> float:
        calls[0] += 1
        return forget_loss(math.exp(log_scale)) - target

    start = _first_order_start(forget_before, target=target, slope=slope, config=config)
    low, high = _bracket(gap, start=start, target=target, config=config)
    log_scale, final_gap = _narrow(gap, low, high, config=config)
    scale, reached = math.exp(log_scale), final_gap + target
    retain_after = retain_loss(scale)
    calls[0] += 1
    if retain_after > bound:
        raise FailedPreconditionError(
            f"calibrated step refused: reaching forget loss {reached:.4f} (target {target:.4f}) at scale {scale:.4g} "
            f"raises held-out retained loss from {retain_before:.4f} to {retain_after:.4f}, above the bound "
            f"{bound:.4f}; no step satisfies both (raise max_retain_loss_increase, or add curvature samples)"
        )
    return CalibrationReport(scale, target, forget_before, reached, retain_before, retain_after, bound, calls[0])


_FACTOR = math.log(10.0)  # bracketing moves the scale by 10x per evaluation
_SHRINKS = 30  # below 1e-30 every scale is a zero step


def _first_order_start(forget_before: float, *, target: float, slope: float | None, config: CalibrationConfig) -> float:
    """log of the scale where the forget loss's tangent at 0 reaches the target; 0 (scale 1) without a slope.

    A direction's natural length spans orders of magnitude, so starting at the tangent's answer instead of at 1
    saves most of the bracketing evaluations (a convex loss lies above its tangent: the start then overshoots,
    and one step down by 10 usually brackets).
    """
    if slope is None or not math.isfinite(slope) or slope <= 0:
        return 0.0
    return min(max(math.log((target - forget_before) / slope), -_SHRINKS * _FACTOR), math.log(config.max_scale))


def _bracket(
    gap: Callable[[float], float], *, start: float, target: float, config: CalibrationConfig
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Points (log s, gap) with gap(low) < 0 <= gap(high) and high - low <= log 10 (low may be -inf: s = 0)."""
    point, value = start, gap(start)
    if value >= 0:
        for _ in range(_SHRINKS):
            lower, lower_value = point - _FACTOR, gap(point - _FACTOR)
            if lower_value < 0:
                return (lower, lower_value), (point, value)
            point, value = lower, lower_value
        return (-math.inf, -1.0), (point, value)
    ceiling = math.log(config.max_scale)
    while value < 0:
        if point >= ceiling - 1e-12:
            raise FailedPreconditionError(
                f"calibrated step: forget loss reached only {value + target:.4f} at scale {math.exp(point):.4g} "
                f"(target {target:.4f}, max_scale {config.max_scale:.4g}); raise max_scale or use step='influence'"
            )
        previous = (point, value)
        point = min(point + _FACTOR, ceiling)
        value = gap(point)
    return previous, (point, value)


def _narrow(
    gap: Callable[[float], float], low: tuple[float, float], high: tuple[float, float], *, config: CalibrationConfig
) -> tuple[float, float]:
    """Narrow the bracket until 0 <= gap(high) <= loss_tolerance; returns the final (log s, gap).

    Illinois regula falsi (the value at an end that stays twice in a row is halved for the secant), with a
    safeguard: a step that did not halve the bracket is followed by a bisection, so a saturating loss costs
    at most about twice a bisection's evaluations.
    """
    (a, fa), (b, fb) = low, high
    weight_a, weight_b = fa, fb  # the values the secant uses
    kept, bisect = 0, math.isinf(a)  # kept: +1 the high end moved last, -1 the low end did
    for _ in range(config.bisection_steps):
        if fb <= config.loss_tolerance:
            break
        width = b - a
        if math.isinf(a):
            middle = b - _FACTOR
        elif bisect:
            middle = (a + b) / 2
        else:
            middle = b - weight_b * width / (weight_b - weight_a)
            middle = min(max(middle, a + 0.01 * width), b - 0.01 * width)
        value = gap(middle)
        if value >= 0:
            b, fb, weight_b = middle, value, value
            weight_a = weight_a / 2 if kept == 1 else weight_a
            kept = 1
        else:
            a, fa, weight_a = middle, value, value
            weight_b = weight_b / 2 if kept == -1 else weight_b
            kept = -1
        bisect = not bisect and (b - a) > width / 2
    return b, fb
