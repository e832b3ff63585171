"""The calibrated step: how far to move along an erasure direction, set by losses instead of by the damping.

Memorized samples have near-zero gradients and curvature, so the length of (G + lambda I)^-1 b is decided by
lambda alone. Instead, the step grows until the forgotten samples' mean loss reaches `target` (the loss the
adapter gives never-trained samples of the same kind, as it would after retraining without them): doubling
from 1 to bracket it, then bisection. A held-out sample of retained data guards the other side: its loss may
rise by at most `max_retain_loss_increase`. The smallest step that reaches the target is the one that harms
retained data least (both losses grow with the step), so when it breaks the guard no step satisfies both, and
the calibration refuses.

Pure math: the losses come in as callables of the step scale.
"""

from __future__ import annotations

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
) -> CalibrationReport:
    """Smallest scale s (to bisection precision) with forget_loss(s) >= target, checked against the guard.

    Raises FailedPreconditionError, with the numbers, when no scale up to max_scale reaches the target or when
    reaching it raises the retained loss past its bound. A forget set already at the target gives scale 0.
    """
    forget_before, retain_before = forget_loss(0.0), retain_loss(0.0)
    bound = retain_before + config.max_retain_loss_increase
    evaluations = 2
    if forget_before >= target:
        return CalibrationReport(0.0, target, forget_before, forget_before, retain_before, retain_before, bound, evaluations)
    low, high = 0.0, 1.0
    reached = forget_loss(high)
    evaluations += 1
    while reached < target:
        low, high = high, 2 * high
        if high > config.max_scale:
            raise FailedPreconditionError(
                f"calibrated step: forget loss reached only {reached:.4f} at scale {low:.4g} (target {target:.4f}, "
                f"max_scale {config.max_scale:.4g}); raise max_scale or use step='influence'"
            )
        reached = forget_loss(high)
        evaluations += 1
    for _ in range(config.bisection_steps):
        middle = (low + high) / 2
        value = forget_loss(middle)
        evaluations += 1
        if value >= target:
            high, reached = middle, value
        else:
            low = middle
    retain_after = retain_loss(high)
    evaluations += 1
    if retain_after > bound:
        raise FailedPreconditionError(
            f"calibrated step refused: reaching forget loss {reached:.4f} (target {target:.4f}) at scale {high:.4g} "
            f"raises held-out retained loss from {retain_before:.4f} to {retain_after:.4f}, above the bound "
            f"{bound:.4f}; no step satisfies both (raise max_retain_loss_increase, or add curvature samples)"
        )
    return CalibrationReport(high, target, forget_before, reached, retain_before, retain_after, bound, evaluations)
