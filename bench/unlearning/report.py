"""The benchmark's outputs: the per-base JSON summary, markdown tables and the gap-against-time plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)

from ..harness import markdown_table  # noqa: E402
from .scoring import RETAIN_POINTS  # noqa: E402

__all__ = ["headline", "plot", "tables"]

_COLUMNS = ("forget_loss", "forget_recall", "target_recall", "retain_recall", "para_forget_recall", "para_retain_recall",
            "held_out_recall", "perplexity", "kl_forget", "kl_retain", "kl_held_out", "mia_auc")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys of the JSON: the facts task that removes the smallest share of entities."""
    name = _smallest_removal(results["facts"]["tasks"])
    first = results["facts"]["tasks"][name]
    keys = ("best_method", "retain_recall_minus_retrain_points", "speedup_amortized", "speedup_with_curvature")
    out = {key: first.get(key) for key in keys}
    out["best_gap_closed_forget_loss"] = first.get("best_gap_closed_forget_loss")
    out["task"] = name
    recalls = [row["metrics"]["retain_recall"] for method, row in first["rows"].items() if method.startswith("retrain")]
    out["retrain_seeds_retain_recall_spread_points"] = max(recalls) - min(recalls)  # the oracle's own noise floor
    if out["best_method"] is None:
        out["best_method_note"] = (
            f"no method kept retain recall within {RETAIN_POINTS:g} point of the retrained model's; retraining with "
            f"other seeds itself spreads {out['retrain_seeds_retain_recall_spread_points']:.1f} points")
    out["methods"] = {name: {**row["metrics"], "gap_closed": row["gap_closed"], "seconds": row["seconds"],
                             "speedup_amortized": row.get("speedup_amortized"), "speedup_with_curvature": row.get("speedup_with_curvature"),
                             "refused": row["refused"], "peak_memory_bytes": row["details"].get("peak_memory_bytes")}
                      for name, row in first["rows"].items()}
    return out


def _smallest_removal(tasks: dict[str, Any]) -> str:
    """The removal-only task with the fewest samples removed, then the smallest share in its name ("removal 1% ...").

    Chosen by content, not position: the JSON is written with sorted keys.
    """
    removals = [name for name, task in tasks.items() if set(task["request"]) == {"removal"}]
    return min(removals, key=lambda name: (tasks[name]["request"]["removal"], float(name.split()[1].rstrip("%"))))


def tables(results: dict[str, Any]) -> str:
    """One markdown table per family and task, with the task's settings above it."""
    parts = []
    for family_name in ("facts", "labels"):
        family = results.get(family_name)
        if family is None:
            continue
        for task_name, task in family["tasks"].items():
            rows = task["rows"]
            present = [c for c in _COLUMNS if c in next(iter(rows.values()))["metrics"]]
            gaps = list(next(iter(rows.values()))["gap_closed"])
            header = ["method", *present, *[f"gap {g}" for g in gaps], "s/request", "x retrain (amortized)", "x retrain (+curvature)", "note"]
            body = []
            for name, row in rows.items():
                note = "refused" if row["refused"] else row["details"].get("chosen", "")
                body.append([name, *[_cell(row["metrics"][c]) for c in present], *[_cell(row["gap_closed"][g]) for g in gaps],
                             _cell(row["seconds"]), _cell(row.get("speedup_amortized")), _cell(row.get("speedup_with_curvature")), note])
            parts.append(
                f"### {family_name}: {task_name}\n\nretrain {task['retrain_seconds']:.1f} s, curvature build "
                f"{task['curvature_build_seconds']:.1f} s (once per adapter), training set {family['train_size']} -> "
                f"{task['train_size_after']}; best method (retain recall within 1 point of retraining, largest gap closed on "
                f"{task['headline_metric']}): **{task['best_method']}**\n\n" + markdown_table(header, body)
            )
    return "\n".join(parts)


def plot(results: dict[str, Any], path: Path) -> None:
    """Headline gap closed against seconds per request, one point per method, one panel per task."""
    tasks = [(f, n, t) for f in ("facts", "labels") if f in results for n, t in results[f]["tasks"].items()]
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for axis, (family, name, task) in zip(axes[0], tasks):
        headline_metric = task["headline_metric"]
        for method, row in task["rows"].items():
            gap = row["gap_closed"][headline_metric]
            if math.isnan(gap) or method == "original (no-op)":
                continue
            axis.scatter(max(row["seconds"], 1e-2), gap, marker="x" if method.startswith("retrain") else "o")
            axis.annotate(method, (max(row["seconds"], 1e-2), gap), fontsize=6)
        axis.set_xscale("log")
        axis.set_xlabel("seconds per request (log)")
        axis.set_ylabel(f"gap closed ({headline_metric})")
        axis.set_title(f"{family}: {name}", fontsize=8)
        axis.axhline(1.0, color="grey", linewidth=0.5)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
