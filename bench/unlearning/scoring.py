"""Scoring one task's rows against retraining: gap closed, speedups, and the best method under the retain rule.

The best method is the one that closes the largest share of the headline gap (the task's first gap metric)
among methods whose retain recall is within `RETAIN_POINTS` percentage points of the retrained model's.
Retraining rows (the oracle and its other seeds) and the unchanged original are never candidates.
"""

from __future__ import annotations

import math
from typing import Any

from .metrics import gap_closed
from .tasks import Task

__all__ = ["RETAIN_POINTS", "build_seconds", "is_candidate", "is_method", "score_task", "speedups"]

RETAIN_POINTS = 1.0


def is_method(name: str) -> bool:
    """An erasure method's row: not a retraining and not the unchanged original."""
    return not name.startswith(("retrain", "original"))


def speedups(retrain_seconds: float, seconds: float, *, curvature_seconds: float) -> dict[str, float]:
    """How many times faster than retraining: per request, and with the one-off curvature build added
    (`curvature_seconds` 0 for methods that do not use it)."""
    seconds = max(seconds, 1e-9)
    return {"speedup_amortized": retrain_seconds / seconds,
            "speedup_with_curvature": retrain_seconds / (seconds + curvature_seconds)}


def build_seconds(row: dict[str, Any], shared: float) -> float:
    """The one-off seconds a row's method pays: its own build when it reports one (the spectral basis), else the
    shared EK-FAC build when it uses curvature, else none."""
    if not row["uses_curvature"]:
        return 0.0
    own = row["details"].get("build_seconds")
    return float(own) if own is not None else shared


def is_candidate(name: str, row: dict[str, Any], metric: str) -> bool:
    """The retain rule: an answered method whose retain recall is within RETAIN_POINTS of retraining's."""
    return (is_method(name) and row["refused"] is None and abs(row["retain_recall_minus_retrain_points"]) <= RETAIN_POINTS
            and not math.isnan(row["gap_closed"][metric]))


def score_task(rows: dict[str, dict[str, Any]], task: Task, *, curvature_seconds: float) -> dict[str, Any]:
    """Adds gap_closed, speedups and retain-recall difference to every row; picks the best method."""
    oracle, original = rows["retrain (oracle)"], rows["original (no-op)"]
    retrain_seconds = oracle["seconds"]
    for name, row in rows.items():
        metrics = row["metrics"]
        row["gap_closed"] = {key: gap_closed(erased=metrics[key], original=original["metrics"][key], retrained=oracle["metrics"][key])
                             for key in task.gap_metrics}
        row["retain_recall_minus_retrain_points"] = metrics["retain_recall"] - oracle["metrics"]["retain_recall"]
        if is_method(name) and row["refused"] is None:  # a refused method left the adapter as it was: no speedup
            row.update(speedups(retrain_seconds, row["seconds"], curvature_seconds=build_seconds(row, curvature_seconds)))
    headline = task.gap_metrics[0]
    eligible = [name for name, row in rows.items() if is_candidate(name, row, headline)]
    best = max(eligible, key=lambda name: rows[name]["gap_closed"][headline], default=None)
    summary: dict[str, Any] = {
        "request": dict(task.request.kinds()), "train_size_after": len(task.new_train), "headline_metric": headline,
        "retrain_seconds": retrain_seconds, "curvature_build_seconds": curvature_seconds, "best_method": best,
        "eligible_methods": eligible, "rows": rows,
    }
    if best is not None:
        summary[f"best_gap_closed_{headline}"] = rows[best]["gap_closed"][headline]
        for key in ("retain_recall_minus_retrain_points", "speedup_amortized", "speedup_with_curvature"):
            summary[key] = rows[best][key]
    return summary
