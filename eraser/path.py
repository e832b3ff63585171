"""The path rule: the strongest erasure on a regularization path whose held-out retained loss stays within bound.

Memorized samples have near-zero gradients and curvature, so no damping is right in advance: the damping
decides the step (too much: nothing is forgotten; too little: retained facts go too), and the damping that suits
one request does not suit another. With a spectral basis (spectral.py) every point of the path
x(delta_0) ... x(delta_n) (regularization weakening along it) costs one vector operation, so the request can
afford to choose on it: the rule takes the last point whose guard loss (the mean loss of held-out retained
samples) is at most its value under the unchanged adapter plus `max_retain_loss_increase`. It uses no retrained
model and no target for the forget loss. The guard loss is assumed to rise along the path (each step is longer
than the one before), so the point is found by bisection: about log2(n) + 2 guard evaluations.

A path whose points cost a curvature product each (PCG's iterates x_1, x_2, ...: early stopping is the
regularization, each iterate longer than the last) is walked instead (`walk_path`): the same rule, taking points
only until the first one past the bound.

Pure math: losses come in as callables (of the path index, or of the walked point).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from loravault.core import FailedPreconditionError

__all__ = ["PathReport", "choose_on_path", "walk_path"]

Point = TypeVar("Point")


@dataclass(frozen=True)
class PathReport:
    """The chosen point and the losses that justified it."""

    index: int  # into the path, 0 the most regularized
    damping: float  # the chosen point's delta
    retain_loss_before: float
    retain_loss_after: float
    retain_bound: float
    evaluations: int  # guard evaluations spent
    evaluated: dict[int, float] = field(default_factory=dict)  # path index -> guard loss, every point measured
    forget_loss_after: float = float("nan")  # the forgotten samples' mean loss at the chosen point (the eraser's)


def choose_on_path(
    dampings: Sequence[float], guard_loss: Callable[[int], float], *, before: float, max_increase: float
) -> PathReport:
    """The largest index i with guard_loss(i) <= before + max_increase, by bisection on a rising guard.

    Raises FailedPreconditionError, with the numbers, when even the most regularized point breaks the bound.
    """
    bound = before + max_increase
    seen: dict[int, float] = {}

    def guard(i: int) -> float:
        if i not in seen:
            seen[i] = guard_loss(i)
        return seen[i]

    last = len(dampings) - 1
    if guard(0) > bound:
        raise _refusal(dampings[0], before, seen[0], bound)
    low, high = 0, last  # guard(low) within bound; the answer is in [low, high]
    if guard(last) <= bound:
        low = last
    else:
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if guard(middle) <= bound else (low, middle)
    return PathReport(low, float(dampings[low]), before, seen[low], bound, len(seen), dict(sorted(seen.items())))


def walk_path(
    points: Iterable[Point], guard_loss: Callable[[Point], float], *, before: float, max_increase: float, damping: float
) -> tuple[Point, PathReport]:
    """The last point before the first whose guard_loss breaks before + max_increase, taking no point after that one.

    `damping` is the path's fixed damping (for the report). Raises FailedPreconditionError, with the numbers, when
    the first point already breaks the bound; ValueError for an empty path (a caller's bug).
    """
    bound = before + max_increase
    seen: dict[int, float] = {}
    chosen: tuple[int, Point] | None = None
    for index, point in enumerate(points):
        seen[index] = guard_loss(point)
        if seen[index] > bound:
            break
        chosen = index, point
    if not seen:
        raise ValueError("walk_path needs at least one point")
    if chosen is None:
        raise _refusal(damping, before, seen[0], bound)
    index, point = chosen
    return point, PathReport(index, damping, before, seen[index], bound, len(seen), seen)


def _refusal(damping: float, before: float, after: float, bound: float) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"path step refused: even the most regularized point (damping {damping:.4g}) raises held-out retained "
        f"loss from {before:.4f} to {after:.4f}, above the bound {bound:.4f} (raise max_retain_loss_increase)"
    )
