"""`make demo-federated`: three clients, each with its own made-up people, train one shared LoRA adapter on
SmolLM2 for a few rounds in Flower's simulation engine; every round is a signed version in an embedded vault.

It prints each round's provenance as the vault holds it (parent, participants, their update hashes and sample
counts, the aggregation and its error), each client's recall of its own facts after each round, each client's
local ledger, and the offline verification of the audit log.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from .embedded import embedded_vault
from .ledger import Ledger
from .simulation import run_simulation_here

__all__ = ["main"]

DEMO_SETTINGS = {"num-server-rounds": 3, "aggregation": "ffa", "min-nodes": 3, "min-replies": 2,
                 "local-steps": 6, "facts-per-client": 8, "batch-size": 8, "rank": 8, "alpha": 16.0,
                 "learning-rate": 1e-2, "max-length": 64, "round-timeout": 900.0}


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=DEMO_SETTINGS["num-server-rounds"])
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="loravault-federated-") as scratch, \
            embedded_vault(Path(scratch), base=args.base) as vault:
        folder = Path(scratch)
        _say(f"== embedded vault on {vault.target} (base {args.base}); federation tenant, coordinator key registered")
        config = {**DEMO_SETTINGS, **vault.run_config(), "base": args.base, "num-server-rounds": args.rounds,
                  "min-nodes": args.clients, "ledger-dir": str(folder / "ledgers"),
                  "report-file": str(folder / "report.json")}
        _say(f"== {args.clients} clients x {args.rounds} rounds, FFA-LoRA (A frozen, B averaged: exact)")
        run_simulation_here(num_clients=args.clients, run_config=config, num_cpus=2)
        report = json.loads((folder / "report.json").read_text())
        with vault.client() as client:
            rounds = client.rounds("shared")
        if not rounds:
            _say("== no round committed: see the engine's log above")
            return 1
        _print_rounds(rounds, report)
        for name in sorted({p for r in report["rounds"] for p in r["participants"]}):
            entries = Ledger(folder / "ledgers", client=name).entries()
            _say(f"== {name}'s own ledger: " + ", ".join(f"round {e.round}: {len(e.sample_ids)} ids "
                                                       f"({e.sample_ids[0]}…)" for e in entries))
        _say(f"== loravault audit verify: {vault.audit_verify()}")
    _say(f"== done in {time.monotonic() - started:.0f} s")
    return 0


def _print_rounds(rounds: list, report: dict) -> None:
    by_round = {r["round"]: r for r in report["rounds"]}
    for found in rounds:
        m = found.manifest
        _say(f"-- v{found.version} = round {m.round}: parent v{m.parent_version} ({m.parent_hash[:12]}…), "
             f"aggregate {m.aggregate_hash[:12]}…, {m.aggregation}, effective-weight error "
             f"{m.effective_weight_error:.2e}, signed by {len(m.key_ids)} key(s)")
        for p in m.participants:
            _say(f"     {p.client:<9} node {p.node_id:>20}  {p.num_samples} samples  update {p.update_hash[:12]}…")
        for f in m.failures:
            _say(f"     failed: node {f.node_id}: {f.reason}")
        record = by_round.get(m.round, {})
        recall = ", ".join(f"{k} {v:.2f}" for k, v in sorted(record.get("recall", {}).items()))
        para = ", ".join(f"{k} {v:.2f}" for k, v in sorted(record.get("paraphrase_recall", {}).items()))
        _say(f"     recall after the round: {recall}; held-out paraphrases: {para}")


if __name__ == "__main__":
    raise SystemExit(main())
