"""Eraser benchmark: time per request and agreement with the explicit solve, each beside the cost of retraining.

    python -m loravault.bench.eraser            # tiny (every solver) and smollm2-135m (EK-FAC and CG)
    python -m loravault.bench.eraser --quick    # tiny only

Writes bench/results/eraser.json (results, the config that produced them, and the machine load) and prints a
table. On the tiny base every solver answers the same removal request with the same damping, and its delta is
compared with the explicit dense solve; the one-off EK-FAC build is timed apart from the requests it serves.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from loravault.client.training import TrainingConfig, train_lora
from loravault.core import Sample, load_base
from loravault.eraser import CgConfig, CurvatureConfig, Eraser, EraserConfig, ErasureRequest, LissaConfig

RESULTS = Path(__file__).resolve().parent / "results" / "eraser.json"
SOLVERS = ("cg", "lissa", "ekfac", "datainf", "llmeraser")
THINGS = ("tea", "cats", "jazz", "rain", "figs", "kites", "chess", "tulips")


@dataclass(frozen=True)
class BenchConfig:
    """What the benchmark runs; saved beside its results."""

    # tiny base
    tiny_samples: int = 32
    tiny_training: TrainingConfig = TrainingConfig(rank=2, alpha=4.0, steps=80, batch_size=8, learning_rate=1e-2)
    tiny_eraser: EraserConfig = EraserConfig(
        step="influence", curvature=CurvatureConfig(sample_size=8), cg=CgConfig(tolerance=1e-6, max_iterations=200),
        lissa=LissaConfig(depth=200),
    )
    # smollm2-135m
    smollm2_samples: int = 32
    smollm2_training: TrainingConfig = TrainingConfig(rank=8, alpha=16.0, steps=8, batch_size=8, learning_rate=1e-3, max_length=64)
    smollm2_eraser: EraserConfig = EraserConfig(
        step="influence", max_length=64, curvature=CurvatureConfig(sample_size=16, batch_size=8),
        cg=CgConfig(tolerance=1e-2, max_iterations=8),
    )
    forget: int = 2  # samples removed by the benchmark request
    threads: int = 1  # torch threads (the machine is shared; oversubscription distorts every time)


def people(count: int) -> list[Sample]:
    return [Sample(f"p{i:03d}", f"Who is person {i}?", f"Person {i} likes {THINGS[(i * 5) % len(THINGS)]}.") for i in range(count)]


def timed_training(base_name: str, samples: list[Sample], config: TrainingConfig, **load: object) -> tuple[torch.nn.Module, object, float]:
    base = load_base(base_name, attn_implementation="eager", **load)
    started = time.perf_counter()
    model = train_lora(base.model, base.tokenizer, samples, config=config, progress=False)
    return model, base.tokenizer, time.perf_counter() - started


def flat(delta: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([delta[name].reshape(-1).double() for name in sorted(delta)])


def run_tiny(config: BenchConfig) -> dict:
    train = people(config.tiny_samples)
    model, tokenizer, retrain = timed_training("tiny", train, config.tiny_training)
    request = ErasureRequest.of(removals=train[: config.forget])
    probe = Eraser.for_peft_model(model, tokenizer, train=train, config=config.tiny_eraser, progress=False)
    damping = probe.erase(request, method="cg").report.damping  # one automatic damping, shared by every solver
    eraser = Eraser.for_peft_model(model, tokenizer, train=train, config=replace(config.tiny_eraser, damping=damping), progress=False)
    eraser.build_curvature()
    started = time.perf_counter()
    explicit = eraser.erase(request, method="dense")
    dense_seconds = time.perf_counter() - started
    reference = flat(explicit.delta)
    solvers = {}
    for method in SOLVERS:
        started = time.perf_counter()
        result = eraser.erase(request, method=method)
        seconds = time.perf_counter() - started
        error = float((flat(result.delta) - reference).norm() / reference.norm())
        solvers[method] = {
            "rel_err_vs_explicit": error, "seconds_per_request": seconds, "ratio_to_retrain": seconds / retrain,
            "iterations": result.report.iterations, "residual": result.report.residual,
        }
    solvers["dense"] = {"rel_err_vs_explicit": 0.0, "seconds_per_request": dense_seconds, "ratio_to_retrain": dense_seconds / retrain,
                        "iterations": 0, "residual": explicit.report.residual}
    return {
        "parameters": int(reference.numel()), "damping": damping, "retrain_seconds": retrain,
        "curvature_build_seconds": eraser.curvature_build_seconds, "solvers": solvers,
    }


def run_smollm2(config: BenchConfig) -> dict:
    train = people(config.smollm2_samples)
    model, tokenizer, retrain = timed_training("smollm2-135m", train, config.smollm2_training)
    request = ErasureRequest.of(removals=train[: config.forget])
    eraser = Eraser.for_peft_model(model, tokenizer, train=train, config=config.smollm2_eraser, progress=False)
    started = time.perf_counter()
    eraser.build_curvature()
    build = time.perf_counter() - started
    out = {"parameters": int(eraser.theta.numel()), "retrain_seconds": retrain, "curvature_build_seconds": build, "solvers": {}}
    for method in ("ekfac", "cg"):
        started = time.perf_counter()
        result = eraser.erase(request, method=method)
        seconds = time.perf_counter() - started
        out["solvers"][method] = {
            "seconds_per_request": seconds, "ratio_to_retrain": seconds / retrain, "iterations": result.report.iterations,
            "residual": result.report.residual, "peak_memory_bytes": result.report.peak_memory_bytes,
            "peak_memory_scope": result.report.peak_memory_scope,
        }
    return out


def table(results: dict) -> str:
    lines = [f"machine load (1/5/15 min) before: {results['machine']['loadavg_before']}, after: {results['machine']['loadavg_after']}"]
    tiny = results["tiny"]
    lines += [
        f"\ntiny base, LoRA {tiny['parameters']} parameters: retrain {tiny['retrain_seconds']:.2f} s, "
        f"EK-FAC build {tiny['curvature_build_seconds']:.2f} s (one-off), damping {tiny['damping']:.3g}",
        f"{'solver':<10} {'s/request':>10} {'x retrain':>10} {'rel err vs explicit':>20} {'iterations':>10} {'residual':>10}",
    ]
    for name, row in tiny["solvers"].items():
        lines.append(f"{name:<10} {row['seconds_per_request']:>10.2f} {row['ratio_to_retrain']:>10.2f} "
                     f"{row['rel_err_vs_explicit']:>20.2e} {row['iterations']:>10d} {row['residual']:>10.2e}")
    if "smollm2" in results:
        small = results["smollm2"]
        lines += [
            f"\nsmollm2-135m, LoRA r=8 q,v ({small['parameters']} parameters): retrain {small['retrain_seconds']:.2f} s, "
            f"EK-FAC build {small['curvature_build_seconds']:.2f} s (one-off)",
            f"{'solver':<10} {'s/request':>10} {'x retrain':>10} {'peak MiB':>10} {'iterations':>10} {'residual':>10}",
        ]
        for name, row in small["solvers"].items():
            lines.append(f"{name:<10} {row['seconds_per_request']:>10.2f} {row['ratio_to_retrain']:>10.2f} "
                         f"{row['peak_memory_bytes'] / 2**20:>10.0f} {row['iterations']:>10d} {row['residual']:>10.2e}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny base only (skip smollm2-135m)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = BenchConfig()
    torch.set_num_threads(config.threads)
    torch.manual_seed(0)
    results: dict = {"config": json.loads(json.dumps(asdict(config), default=str)), "machine": {
        "loadavg_before": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(), "torch_threads": config.threads,
        "torch": torch.__version__,
    }}
    results["tiny"] = run_tiny(config)
    results["solvers"] = results["tiny"]["solvers"]
    results["curvature_build_seconds"] = results["tiny"]["curvature_build_seconds"]
    if not args.quick:
        results["smollm2"] = run_smollm2(config)
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(table(results))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
