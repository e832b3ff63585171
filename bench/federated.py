"""`make bench-federated`: FFA-LoRA vs stacking (FLoRA) vs FedAvg vs centralized training on the union of the
clients' data, on one base, with every federated round committed to an embedded vault.

Per method and round: each client's recall of its own facts and of held-out paraphrases, the aggregate's
error in effective weights against the exact weighted average, time split into local training (slowest
client), aggregation and the vault commit, and bytes sent (shared adapter to every node plus the replies).
Centralized training runs the same number of optimizer steps per round (clients x local steps) on the union.
Writes bench/results/federated.json, .md and .png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from loravault.core import load_base
from loravault.federation.config import LocalTraining
from loravault.federation.data import partition, union
from loravault.federation.embedded import embedded_vault
from loravault.federation.simulation import run_simulation_here
from loravault.federation.task import evaluate, initial_adapter, train_round

from .harness import RESULTS_DIR, machine, markdown_table, write_results

__all__ = ["main"]

logger = logging.getLogger(__name__)
METHODS = ("ffa", "stack", "fedavg")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    base: str = "smollm2-135m"
    clients: int = 3
    rounds: int = 3
    local_steps: int = 5
    facts_per_client: int = 8
    rank: int = 8
    alpha: float = 16.0
    learning_rate: float = 1e-2
    batch_size: int = 8
    max_length: int = 64

    def run_config(self) -> dict[str, Any]:
        return {"base": self.base, "num-server-rounds": self.rounds, "local-steps": self.local_steps,
                "facts-per-client": self.facts_per_client, "rank": self.rank, "alpha": self.alpha,
                "learning-rate": self.learning_rate, "batch-size": self.batch_size, "max-length": self.max_length,
                "min-nodes": self.clients, "min-replies": self.clients, "round-timeout": 1800.0}


def _federated(config: BenchConfig, method: str, folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    with embedded_vault(folder, base=config.base) as vault:
        run_config = {**config.run_config(), **vault.run_config(), "aggregation": method,
                      "ledger-dir": str(folder / "ledgers"), "report-file": str(folder / "report.json")}
        run_simulation_here(num_clients=config.clients, run_config=run_config, num_cpus=2)
        audit = vault.audit_verify()
    wall = time.perf_counter() - started
    rounds = json.loads((folder / "report.json").read_text())["rounds"]
    per_round = [r["train_seconds"] + r["aggregation_seconds"] + r["commit_seconds"] for r in rounds]
    return {
        "recall_per_round": [statistics.fmean(r["recall"].values()) for r in rounds],
        "paraphrase_recall_per_round": [statistics.fmean(r["paraphrase_recall"].values()) for r in rounds],
        "final_recall": statistics.fmean(rounds[-1]["recall"].values()),
        "final_paraphrase_recall": statistics.fmean(rounds[-1]["paraphrase_recall"].values()),
        "effective_weight_error": statistics.fmean(r["relative_error"] for r in rounds),
        "effective_weight_error_per_round": [r["relative_error"] for r in rounds],
        "truncation_error_per_round": [r["truncation_error"] for r in rounds],
        "seconds_per_round": statistics.fmean(per_round),
        "train_seconds_per_round": statistics.fmean(r["train_seconds"] for r in rounds),
        "aggregation_seconds_per_round": statistics.fmean(r["aggregation_seconds"] for r in rounds),
        "commit_seconds_per_round": statistics.fmean(r["commit_seconds"] for r in rounds),
        "bytes_per_round": statistics.fmean(r["bytes_sent"] + r["bytes_received"] for r in rounds),
        "committed_versions": [r["committed_version"] for r in rounds],
        "wall_seconds": wall,
        "audit": audit,
    }


def _centralized(config: BenchConfig) -> dict[str, Any]:
    """The reference: one adapter trained on every client's facts, clients x local_steps steps per round."""
    base = load_base(config.base)
    training = LocalTraining(base=config.base, rank=config.rank, alpha=config.alpha,
                             local_steps=config.local_steps * config.clients, batch_size=config.batch_size,
                             learning_rate=config.learning_rate, max_length=config.max_length)
    parts = [partition(partition_id=i, facts=config.facts_per_client) for i in range(config.clients)]
    schema, tensors = initial_adapter(base, training)
    recall, paraphrase, seconds = [], [], []
    for number in range(1, config.rounds + 1):
        started = time.perf_counter()
        tensors, _ = train_round(base, schema, tensors, union(parts), training=training, method="stack",
                                 seed=1000 * number)
        seconds.append(time.perf_counter() - started)
        recall.append(statistics.fmean(evaluate(base, schema, tensors, p.train, training=training).recall
                                       for p in parts))
        paraphrase.append(statistics.fmean(evaluate(base, schema, tensors, p.paraphrases, training=training).recall
                                           for p in parts))
        logger.info("centralized round %d: recall %.3f", number, recall[-1])
    return {"recall_per_round": recall, "paraphrase_recall_per_round": paraphrase, "final_recall": recall[-1],
            "final_paraphrase_recall": paraphrase[-1], "seconds_per_round": statistics.fmean(seconds)}


def run(config: BenchConfig) -> dict[str, Any]:
    torch.set_num_threads(1)
    before = machine()
    methods = {}
    with tempfile.TemporaryDirectory(prefix="loravault-bench-federated-") as scratch:
        for method in METHODS:
            logger.info("federated run: %s", method)
            methods[method] = _federated(config, method, Path(scratch) / method)
    centralized = _centralized(config)
    commits = [m["commit_seconds_per_round"] for m in methods.values()]
    return {"config": dataclasses.asdict(config), "machine_before": before, "machine_after": machine(),
            "methods": methods, "centralized": centralized, "centralized_recall": centralized["final_recall"],
            "commit_seconds_per_round": statistics.fmean(commits)}


def table(results: dict[str, Any]) -> str:
    rows = [[name, f"{m['final_recall']:.2f}", f"{m['final_paraphrase_recall']:.2f}",
             f"{m['effective_weight_error']:.2e}", f"{m['train_seconds_per_round']:.1f}",
             f"{m['aggregation_seconds_per_round']:.3f}", f"{m['commit_seconds_per_round']:.3f}",
             f"{m['bytes_per_round'] / 1e6:.2f}"] for name, m in results["methods"].items()]
    c = results["centralized"]
    rows.append(["centralized (union)", f"{c['final_recall']:.2f}", f"{c['final_paraphrase_recall']:.2f}", "-",
                 f"{c['seconds_per_round']:.1f}", "-", "-", "-"])
    cfg, load = results["config"], (results["machine_before"], results["machine_after"])
    return (f"{cfg['base']}, {cfg['clients']} clients x {cfg['rounds']} rounds x {cfg['local_steps']} local steps, "
            f"{cfg['facts_per_client']} facts per client, r={cfg['rank']}; load average "
            f"{load[0]['loadavg_1m']} -> {load[1]['loadavg_1m']} on {load[0]['cpus']} CPUs.\n\n"
            + markdown_table(["method", "recall", "paraphrase recall", "effective-weight error (rel.)",
                              "local training s/round", "aggregation s/round", "vault commit s/round",
                              "MB sent/round"], rows))


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    series = {**{k: v["recall_per_round"] for k, v in results["methods"].items()},
              "centralized": results["centralized"]["recall_per_round"]}
    for name, values in series.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    ax.set_xlabel("round")
    ax.set_ylabel("recall of the clients' facts")
    ax.set_title(f"federated LoRA on {results['config']['base']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="federated LoRA: FFA vs stacking vs FedAvg vs centralized")
    for f in dataclasses.fields(BenchConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = BenchConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BenchConfig)})
    results = run(config)
    text = table(results)
    write_results("federated", results, text)
    plot(results, RESULTS_DIR / "federated.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
