"""Unlearning benchmark parts: task data, metrics, baselines, the erasure methods, the runner and its report.

The entry point is `python -m loravault.bench.erasure`; this subpackage holds its pieces, one job per module:

    facts.py      fictitious entities rendered as questions, with paraphrases (the memorization task)
    labels.py     a labelling task with a learnable rule and corrupted labels (the generalization task)
    text.py       general text the adapter never sees (pydoc topics), for perplexity
    metrics.py    pure metric functions: gap closed, membership-inference AUC, KL, exact match
    evaluate.py   one model's measurements on every evaluation set
    adapters.py   snapshot, restore and time the adapter weights the methods move
    baselines.py  gradient ascent and the first-order update
    methods.py    every method as a delta or an in-place update, with its wall time
    config.py     frozen configs and the per-base presets
    runner.py     the pipeline: train, retrain, erase, measure
    report.py     JSON summary, markdown tables, plots
"""

from .config import BenchConfig, preset
from .runner import run_benchmark

__all__ = ["BenchConfig", "preset", "run_benchmark"]
