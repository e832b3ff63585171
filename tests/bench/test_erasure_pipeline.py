"""The unlearning benchmark's small version, end to end, so its pipeline cannot rot between real runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

from loravault.bench.erasure import main


def test_quick_benchmark_writes_json_table_and_plot_with_every_method(tmp_path: Path) -> None:
    main(["--base", "tiny", "--quick", "--output-dir", str(tmp_path)])
    results = json.loads((tmp_path / "erasure-tiny-quick.json").read_text())
    task = next(iter(results["facts"]["tasks"].values()))
    rows = task["rows"]
    for method in ("retrain (oracle)", "original (no-op)", "ascent (rule)", "first-order/calibrated", "ekfac/plain", "cg/plain", "spectral/path",
                   "cg/path"):
        assert method in rows, method
    assert rows["retrain (oracle)"]["gap_closed"]["forget_loss"] == 1.0
    assert rows["original (no-op)"]["gap_closed"]["forget_loss"] == 0.0
    assert rows["cg/plain"]["refused"] is None and rows["cg/plain"]["details"]["iterations"] >= 1
    assert all(math.isfinite(rows[name]["metrics"]["perplexity"]) for name in rows)
    assert results["facts"]["curvature_build_seconds"] > 0
    spectral = rows["spectral/path"]
    assert spectral["details"]["build_seconds"] > 0 and spectral["seconds"] > 0
    assert spectral["refused"] is not None or spectral["details"]["path_index"] >= 0
    cg_path = rows["cg/path"]  # its own eraser: the walk's guard losses, and the shared EK-FAC build as its one-off
    assert cg_path["refused"] is not None or len(cg_path["details"]["path"]["guard_evaluated"]) >= 1
    assert "build_seconds" not in cg_path["details"] and cg_path["uses_curvature"]
    head = results["headline"]
    assert head["default_method"] in head["methods"] and head["default_method_figures"]["build_seconds"] >= 0
    assert "mia_auc_minus_retrain" in head["methods"]["cg/plain"]
    assert {"best_method", "wall_seconds"} <= set(results["headline"]) | set(results)
    assert results["headline"]["task"].startswith("removal") and results["headline"]["retrain_seeds_retain_recall_spread_points"] >= 0
    assert results["headline"]["requests"] == 2 and len(results["headline"]["tasks"]) == 2  # removal_repeats=2
    table = (tmp_path / "erasure-tiny-quick.md").read_text()
    assert "mean over 2 requests" in table
    assert table.count("| cg/plain |") == 3  # the mean table, then each request's own
    assert (tmp_path / "erasure-tiny-quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
