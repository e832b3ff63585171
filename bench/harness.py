"""Shared benchmark plumbing: machine load, timing statistics, and writing JSON plus a markdown table."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_DIR", "machine", "percentile", "time_calls", "write_results", "markdown_table"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on, with the load average at the moment of the call."""
    load1, load5, load15 = os.getloadavg()
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "loadavg_1m": round(load1, 2), "loadavg_5m": round(load5, 2), "loadavg_15m": round(load15, 2)}


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def time_calls(call: Callable[[], object], *, count: int) -> dict[str, float]:
    """Latency of `count` sequential calls in milliseconds: p50, p99, mean."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(percentile(samples, 50), 3), "p99_ms": round(percentile(samples, 99), 3),
            "mean_ms": round(statistics.fmean(samples), 3), "count": count}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(name: str, results: dict[str, Any], table: str) -> Path:
    """Write bench/results/<name>.json and <name>.md (the table) and return the JSON path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (RESULTS_DIR / f"{name}.md").write_text(table)
    return path
