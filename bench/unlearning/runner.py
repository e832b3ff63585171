"""The benchmark pipeline: train the original adapter, retrain the oracle, answer the request every way, measure.

For each family: train the original adapter once and build its curvature once (amortized over the family's
requests, as the eraser is meant to be used). For each task: retrain from the same initialization and seed on
the changed training set (the oracle) and on more seeds (the noise floor), then start every method from the
original adapter, measure it, and put it back.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from loravault.client.training import TrainingConfig, train_lora
from loravault.core import FailedPreconditionError, Sample, load_base
from loravault.eraser import apply_delta

from .adapters import load_lora_state, lora_state
from .baselines import first_order_update, gradient_ascent
from .config import BenchConfig
from .evaluate import Measurement, measure, summarize
from .methods import EraserPair, MethodOutcome
from .scoring import score_task
from .tasks import Family, Task, facts_family, labels_family
from .text import general_text_windows

__all__ = ["run_benchmark"]


def run_benchmark(config: BenchConfig, *, cache_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Every family and task of `config`; returns the results as plain JSON-able data."""
    torch.set_num_threads(config.threads)
    tokenizer = load_base(config.base).tokenizer
    text = general_text_windows(tokenizer, windows=config.text_windows, length=config.text_length)
    guard = config.methods.guard_size
    families = [facts_family(config.facts, text=text, guard_size=guard)]
    if config.labels.train:
        families.append(labels_family(config.labels, text=text, guard_size=guard))
    out: dict[str, Any] = {}
    for family in families:
        training = config.training if family.name == "facts" else config.labels.training
        solvers = config.methods.solvers if family.name == "facts" else config.labels.solvers
        out[family.name] = _run_family(config, family, training, solvers, cache_dir / family.name, progress)
    out["peak_memory_bytes_process"] = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    return out


def _train(config: BenchConfig, samples: list[Sample], training: TrainingConfig, *, progress: bool
           ) -> tuple[nn.Module, PreTrainedTokenizerBase, float]:
    base = load_base(config.base, attn_implementation="eager")
    started = time.perf_counter()
    model = train_lora(base.model, base.tokenizer, samples, config=training, progress=progress)
    return model, base.tokenizer, time.perf_counter() - started


def _run_family(
    config: BenchConfig, family: Family, training: TrainingConfig, solvers: tuple[str, ...], cache_dir: Path, progress: bool
) -> dict[str, Any]:
    model, tokenizer, trained_seconds = _train(config, family.train, training, progress=progress)
    original = lora_state(model)
    pair = EraserPair(model, tokenizer, train=family.train, reference=family.reference, config=config.eraser, cache_dir=cache_dir,
                      spectral="spectral" in solvers, cg_path=config.methods.cg_path if "cg" in solvers else None)
    tasks = {}
    for task in tqdm(family.tasks, desc=f"{family.name} tasks", disable=None if progress else True):
        rows = _task_rows(config, task, training, solvers, model, tokenizer, original, pair, progress)
        tasks[task.name] = score_task(rows, task, curvature_seconds=pair.curvature_build_seconds)
    return {"training_seconds": trained_seconds, "curvature_build_seconds": pair.curvature_build_seconds,
            "train_size": len(family.train), "tasks": tasks}


def _task_rows(
    config: BenchConfig, task: Task, training: TrainingConfig, solvers: tuple[str, ...], model: nn.Module,
    tokenizer: PreTrainedTokenizerBase, original: dict[str, torch.Tensor], pair: EraserPair, progress: bool,
) -> dict[str, dict[str, Any]]:
    """Rows keyed by method name: summary metrics plus seconds, curvature use, refusal and solver details."""
    def meas(m: nn.Module) -> Measurement:
        return measure(m, tokenizer, task.sets, max_length=training.max_length, batch_size=config.eval_batch)

    retrained_model, _, retrain_seconds = _train(config, task.new_train, training, progress=progress)
    retrained = meas(retrained_model)
    del retrained_model
    rows: dict[str, dict[str, Any]] = {"retrain (oracle)": _row(summarize(retrained, task.sets, retrained=retrained), retrain_seconds)}
    for seed in task.noise_seeds:
        other, _, seconds = _train(config, task.new_train, replace(training, seed=seed), progress=progress)
        rows[f"retrain seed {seed}"] = _row(summarize(meas(other), task.sets, retrained=retrained), seconds)
    load_lora_state(model, original)
    before = summarize(meas(model), task.sets, retrained=retrained)
    rows["original (no-op)"] = _row(before, 0.0)
    rows.update(_ascent_rows(config, task, training, model, tokenizer, original, lambda: meas(model), retrained, before))
    outcomes = [_first_order(config, task, training, model, tokenizer)]
    for solver in tqdm(solvers, desc="solvers", disable=None if progress else True, leave=False):
        load_lora_state(model, original)
        outcomes += pair.outcomes(task.request, solver)
    for outcome in outcomes:
        load_lora_state(model, original)
        if outcome.delta is not None:
            apply_delta(model, outcome.delta)
        summary = before if outcome.delta is None else summarize(meas(model), task.sets, retrained=retrained)
        rows[outcome.name] = _row(summary, outcome.seconds, uses_curvature=outcome.uses_curvature, refused=outcome.refused,
                                  details=outcome.details)
    load_lora_state(model, original)
    rows["retrain (oracle)"]["is_reference"] = True
    return rows


def _row(summary: dict[str, float], seconds: float, *, uses_curvature: bool = False, refused: str | None = None,
         details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metrics": summary, "seconds": seconds, "uses_curvature": uses_curvature, "refused": refused,
            "details": details or {}}


def _ascent_rows(
    config: BenchConfig, task: Task, training: TrainingConfig, model: nn.Module, tokenizer: PreTrainedTokenizerBase,
    original: dict[str, torch.Tensor], measure_now: Callable[[], Measurement], retrained: Measurement, before: dict[str, float],
) -> dict[str, dict[str, Any]]:
    """One row per step count, plus the count the oracle-free rule picks (largest within the guard's bound)."""
    load_lora_state(model, original)
    rows: dict[str, dict[str, Any]] = {}

    def record(steps: int, seconds: float) -> None:
        rows[f"ascent {steps} steps"] = _row(summarize(measure_now(), task.sets, retrained=retrained), seconds)

    gradient_ascent(model, tokenizer, task.request, checkpoints=config.methods.ascent_steps, learning_rate=training.learning_rate,
                    max_length=training.max_length, on_checkpoint=record)
    load_lora_state(model, original)
    bound = before["guard_loss"] + config.eraser.calibration.max_retain_loss_increase
    within = [name for name, row in rows.items() if row["metrics"]["guard_loss"] <= bound]
    if within:
        rows["ascent (rule)"] = {**rows[within[-1]], "details": {"chosen": within[-1], "guard_bound": bound}}
    else:
        rows["ascent (rule)"] = _row(before, 0.0, refused=f"every step count raises the guard loss above {bound:.4f}")
    return rows


def _first_order(config: BenchConfig, task: Task, training: TrainingConfig, model: nn.Module,
                 tokenizer: PreTrainedTokenizerBase) -> MethodOutcome:
    started = time.perf_counter()
    try:
        delta, report = first_order_update(
            model, tokenizer, task.request, size_after=len(task.new_train), guard=task.guard, reference=task.reference,
            max_length=training.max_length, calibration=config.eraser.calibration,
        )
    except FailedPreconditionError as refusal:
        return MethodOutcome("first-order/calibrated", time.perf_counter() - started, False, refused=str(refusal))
    return MethodOutcome("first-order/calibrated", time.perf_counter() - started, False, delta, details={"scale": report.scale})
