"""Unlearning benchmark: erasure against retraining without the forgotten samples, with the literature's baselines.

    python -m loravault.bench.erasure --base tiny           # pipeline check, a few minutes on two cores
    python -m loravault.bench.erasure --base smollm2-135m   # the table that counts
    python -m loravault.bench.erasure --base smollm2-135m --extra   # its 5% removal and edit tasks
    python -m loravault.bench.erasure --base tiny --quick --output-dir /tmp/x   # the test's small version
    python -m loravault.bench.erasure --base smollm2-135m --headline-only --solvers spectral,cg   # the 1% requests only

Writes bench/results/erasure-<base>.json (the config, the machine, every row and the headline numbers),
erasure-<base>.md (the tables) and erasure-<base>.png (gap closed against seconds per request), and prints
the tables. Every knob is set by a rule that never looks at the retrained model (see unlearning/config.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .harness import RESULTS_DIR, machine
from loravault.eraser import EraserConfig

from .unlearning import preset, run_benchmark
from .unlearning.config import BenchConfig, LabelsConfig
from .unlearning.report import headline, mean_table, plot, tables

__all__ = ["main"]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, allow_nan=True))


def default_method_name(config: EraserConfig) -> str:
    """The benchmark row of the eraser's default: its method and the step its auto rule takes for a removal."""
    return f"{config.method}/" + ("path" if config.method == "spectral" else "calibrated")


def _narrowed(config: BenchConfig, *, solvers: str | None, headline_only: bool) -> BenchConfig:
    if solvers:
        config = replace(config, methods=replace(config.methods, solvers=tuple(solvers.split(","))))
    if headline_only:
        config = replace(config, facts=replace(config.facts, fractions=config.facts.fractions[:1], noise_seeds=(),
                                               edit_fraction=0.0), labels=LabelsConfig(train=0, solvers=()))
    return config


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="tiny", help="tiny, smollm2-135m or a local model folder")
    parser.add_argument("--quick", action="store_true", help="the small version the test runs")
    parser.add_argument("--extra", action="store_true",
                        help="a real model's 5%% removal, query modification and response correction (-extra files)")
    parser.add_argument("--solvers", help="comma-separated eraser methods to run (default: every one)")
    parser.add_argument("--headline-only", action="store_true",
                        help="only the smallest removal's requests: no larger removals, labels or extra retraining seeds")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    config = _narrowed(preset(args.base, quick=args.quick, extra=args.extra), solvers=args.solvers, headline_only=args.headline_only)
    before, started = machine(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="erasure-bench-") as scratch:
        results = run_benchmark(config, cache_dir=Path(scratch), progress=True)
    results = {"headline": headline(results, default_method=default_method_name(EraserConfig())), "config": _jsonable(asdict(config)), "machine_before": before,
               "machine_after": machine(), "wall_seconds": time.perf_counter() - started, **results}
    stem = f"erasure-{Path(args.base).name}" + ("-quick" if args.quick else "") + ("-extra" if args.extra else "") \
        + ("-headline" if args.headline_only else "")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    table = f"# Erasure against retraining: {args.base}\n\nwall {results['wall_seconds']:.0f} s, load before " \
            f"{before['loadavg_1m']}, after {results['machine_after']['loadavg_1m']} ({before['cpus']} CPUs)\n\n" \
            + mean_table(results) + tables(results)
    (args.output_dir / f"{stem}.json").write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    (args.output_dir / f"{stem}.md").write_text(table)
    plot(results, args.output_dir / f"{stem}.png")
    print(table)
    print(f"\nwrote {args.output_dir / stem}.json, .md, .png")
    return results


if __name__ == "__main__":
    main()
