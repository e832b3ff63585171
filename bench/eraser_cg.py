"""CG at default settings against an exact float64 solve, on LoRA adapters of four architectures.

    python -m loravault.bench.eraser_cg                 # tiny (Llama), gpt2, qwen2, gpt-neox
    python -m loravault.bench.eraser_cg --models qwen2  # a subset

Per model: the damping each method gets by default (and, beside it, the mean eigenvalue three ways: exact from
the dense matrix, the pseudo-gradient estimate the default uses, Hutchinson with 4 probes), plain and
EK-FAC-preconditioned CG at the default CgConfig (iterations, true residual, converged, error against the exact
float64 dense solve at the same damping), and the curvature products each takes to a true residual of 1e-3.
The models are 2-layer, width-64 causal LMs built from their transformers configs under a fixed seed (the tests
in tests/eraser build the same ones). Writes bench/results/eraser-cg.json (results, config, machine load).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from loravault.client.training import TrainingConfig, train_lora
from loravault.core import Sample, load_base
from loravault.core.tokenizer import BYTE_VOCAB_SIZE, byte_tokenizer
from loravault.eraser import (
    CgConfig,
    CurvatureConfig,
    CurvatureOperator,
    Eraser,
    EraserConfig,
    ErasureRequest,
    conjugate_gradient,
    dense_matrix,
    dense_solve,
    hutchinson_mean_eigenvalue,
    lora_objective,
    request_vector,
)

from .harness import RESULTS_DIR, machine

__all__ = ["ARCHITECTURES", "config_model", "people"]

FRUITS = ("tea", "cats", "jazz", "rain", "figs", "kites")
_BYTES = dict(vocab_size=BYTE_VOCAB_SIZE, pad_token_id=256, bos_token_id=257, eos_token_id=258)  # core's tokenizer
ARCHITECTURES: dict[str, tuple[Callable[[], PretrainedConfig], type[PreTrainedModel], tuple[str, ...]]] = {
    # name: (its config, its model, the modules LoRA targets: the attention input projection)
    # GPT-2's dropout off, as the others' is by default: training must not draw from the global RNG
    "gpt2": (
        lambda: GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, resid_pdrop=0.0, embd_pdrop=0.0,
                           attn_pdrop=0.0, **_BYTES),
        GPT2LMHeadModel,
        ("c_attn",),
    ),
    "qwen2": (
        lambda: Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, max_position_embeddings=256, **_BYTES),
        Qwen2ForCausalLM,
        ("q_proj",),
    ),
    "gpt-neox": (
        lambda: GPTNeoXConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              max_position_embeddings=256, **_BYTES),
        GPTNeoXForCausalLM,
        ("query_key_value",),
    ),
}


def people(count: int, *, offset: int = 0) -> list[Sample]:
    """Made-up facts: person i likes one of six things."""
    return [
        Sample(f"p{i:03d}", f"Who is p{i}?", f"p{i} likes {FRUITS[(i * 7) % len(FRUITS)]}")
        for i in range(offset, offset + count)
    ]


def config_model(architecture: str, *, seed: int = 0) -> PreTrainedModel:
    """A 2-layer, width-64 causal LM on core's byte vocabulary, random weights under `seed`, eager attention (for
    exact curvature products), in eval mode; the caller's global RNG state is left as it was."""
    make_config, model_class, _ = ARCHITECTURES[architecture]
    config = make_config()
    config._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    return model.eval()


@dataclass(frozen=True)
class BenchConfig:
    """What the benchmark runs; saved beside its results (the tests' problems: tests/eraser/conftest.py)."""

    samples: int = 24  # training set: people(24)
    forget: tuple[int, int] = (2, 4)  # the request removes train[2:4]
    rank: int = 1  # LoRA rank on the architectures built from configs (tiny: 2 on q_proj, as its fixture)
    steps: int = 60  # training steps (batch 8, learning rate 1e-2)
    eraser: EraserConfig = EraserConfig(step="influence", curvature=CurvatureConfig(sample_size=8))
    to_tolerance: float = 1e-3  # true relative residual the products are counted to
    threads: int = 1


def trained(architecture: str, train: list[Sample], config: BenchConfig) -> torch.nn.Module:
    if architecture == "tiny":
        base = load_base("tiny", attn_implementation="eager")
        training = TrainingConfig(rank=2, alpha=4.0, target_modules=("q_proj",), steps=config.steps, batch_size=8, learning_rate=1e-2)
        return train_lora(base.model, base.tokenizer, train, config=training, progress=False)
    targets = ARCHITECTURES[architecture][2]
    training = TrainingConfig(rank=config.rank, alpha=2.0 * config.rank, target_modules=targets, steps=config.steps,
                              batch_size=8, learning_rate=1e-2)
    return train_lora(config_model(architecture), byte_tokenizer(), train, config=training, progress=False)


def flat(delta: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([delta[name].reshape(-1).double() for name in sorted(delta)])


def run_model(architecture: str, config: BenchConfig) -> dict:
    train = people(config.samples)
    objective = lora_objective(trained(architecture, train, config), byte_tokenizer())
    request = ErasureRequest.of(removals=train[slice(*config.forget)])
    eraser = Eraser(objective, train=train, config=config.eraser, progress=False)
    operator = CurvatureOperator(objective, eraser.theta, eraser._retained_sample(request), graph_budget_bytes=1 << 30)  # noqa: SLF001
    matrix = dense_matrix(operator, eraser.theta.numel(), chunk=128, progress=False)
    b = request_vector(objective, eraser.theta, request, size_after=len(train) - len(request.touched_ids), progress=False)
    factors = eraser._retained_factors(request)  # noqa: SLF001
    row = {"parameters": int(eraser.theta.numel()), "mean_eigenvalue": {
        "exact": float(matrix.diagonal().mean()), "pseudo_gradients": factors.mean_eigenvalue(),
        "hutchinson_4": hutchinson_mean_eigenvalue(operator, eraser.theta.numel(), seed=0)}}
    deltas = {}
    for name, method, precondition in (("dense", "dense", False), ("cg", "cg", False), ("pcg", "cg", True)):
        setup = replace(config.eraser, method=method, cg=replace(config.eraser.cg, precondition=precondition))
        result = Eraser(objective, train=train, config=setup, progress=False).erase(request)
        report, deltas[name] = result.report, flat(result.delta)
        exact = flat(objective.public(dense_solve(matrix, b.double(), damping=report.damping)[0]))
        row[name] = {"damping": report.damping, "iterations": report.iterations, "residual": report.residual,
                     "converged": report.converged, "error_vs_exact": float((deltas[name] - exact).norm() / exact.norm())}
        if method == "cg":
            row[name]["products_to_tolerance"] = products_to(operator, b, factors, objective, config, report.damping, precondition)
    row["cg_vs_dense"] = float((deltas["cg"] - deltas["dense"]).norm() / deltas["dense"].norm())
    row["pcg_vs_dense"] = float((deltas["pcg"] - deltas["dense"]).norm() / deltas["dense"].norm())
    return row


def products_to(operator, b, factors, objective, config: BenchConfig, damping: float, precondition: bool) -> int:
    """Curvature products (iterations and true-residual checks) CG takes to a true residual of `to_tolerance`."""
    preconditioner = factors.inverse(objective.layout, damping=damping) if precondition else None
    operator.products = 0
    cg = CgConfig(tolerance=config.to_tolerance, max_iterations=1000)
    conjugate_gradient(operator, b, damping=damping, config=cg, preconditioner=preconditioner, progress=False)
    return operator.products


def table(results: dict) -> str:
    lines = [f"machine load before {results['machine_before']['loadavg_1m']}, after {results['machine_after']['loadavg_1m']}",
             "| model | P | mean eigenvalue exact / pseudo-gradients / Hutchinson-4 | damping dense / cg / pcg "
             "| products to 1e-3 cg / pcg | default cg: it, residual, converged, error | default pcg: it, residual, "
             "converged, error | vs dense cg / pcg |", "|---|---|---|---|---|---|---|---|"]
    for name, row in results["models"].items():
        cg, pcg, mean = row["cg"], row["pcg"], row["mean_eigenvalue"]
        lines.append(
            f"| {name} | {row['parameters']} "
            f"| {mean['exact']:.3g} / {mean['pseudo_gradients']:.3g} / {mean['hutchinson_4']:.3g} "
            f"| {row['dense']['damping']:.3g} / {cg['damping']:.3g} / {pcg['damping']:.3g} "
            f"| {cg['products_to_tolerance']} / {pcg['products_to_tolerance']} "
            f"| {cg['iterations']}, {cg['residual']:.2g}, {cg['converged']}, {cg['error_vs_exact']:.2g} "
            f"| {pcg['iterations']}, {pcg['residual']:.2g}, {pcg['converged']}, {pcg['error_vs_exact']:.2g} "
            f"| {row['cg_vs_dense']:.2g} / {row['pcg_vs_dense']:.2g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", *ARCHITECTURES])
    parser.add_argument("--output", default=str(RESULTS_DIR / "eraser-cg.json"))
    parser.add_argument("--table", metavar="JSON", help="print the table of saved results and exit")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as handle:
            print(table(json.load(handle)))
        return
    config = BenchConfig()
    torch.set_num_threads(config.threads)
    before = machine()
    models = {name: run_model(name, config) for name in args.models}
    results = {"config": json.loads(json.dumps(asdict(config), default=str)), "machine_before": before,
               "machine_after": machine(), "models": models}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=2)
    print(table(results))


if __name__ == "__main__":
    main()
