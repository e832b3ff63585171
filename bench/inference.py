"""`make bench-inference`: the engine's multi-adapter throughput and latency against PEFT and transformers.

32 requests (a fixed prompt set, 64 new tokens each, greedy, end-of-sequence ignored so every system does the
same work) over N distinct adapters (N in 1, 8, 32; LoRA r=8 on q and v), in one run against:

- engine-lora: the inference engine, each row with its own adapter (continuous batching, BGMV)
- engine-base: the same engine and requests on the base model alone
- hf-batched: transformers' batched generate of the base model (left padding)
- peft-mixed: PEFT's mixed batch, `generate(adapter_names=[...])`
- peft-grouped: PEFT with set_adapter per adapter group, one batched generate per group

The systems the targets compare run in interleaved rounds (--rounds, default 3); the ratios are medians of the
per-round ratios. Time to first token and inter-token latency come from a clock per decode step (the engine's
streamed deltas, a logits processor for generate). Writes bench/results/inference.json, .md and .png.

    python -m loravault.bench.inference --base tiny --base smollm2-135m --threads 2
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig
from transformers import LogitsProcessor, LogitsProcessorList

from loravault.core import AdapterSchema, encode_tensors, load_base, sha256_hex
from loravault.core.peft_format import new_peft_model
from loravault.server.inference import Delta, InferenceConfig, InferenceEngine, SamplingParams
from loravault.server.vault import Vault

from .harness import RESULTS_DIR, machine, markdown_table, percentile, write_results

logger = logging.getLogger(__name__)

PROMPTS = [f"Question {i}: what does the vault keep about tenant number {i}? Answer:" for i in range(32)]


@dataclass(frozen=True)
class BenchConfig:
    requests: int = 32
    new_tokens: int = 64
    adapter_counts: tuple[int, ...] = (1, 8, 32)
    rank: int = 8
    threads: int = 2
    rounds: int = 3

    def __post_init__(self) -> None:
        if self.requests < max(self.adapter_counts) or self.new_tokens < 2 or self.rounds < 1:
            raise ValueError("need at least as many requests as adapters, 2 new tokens and 1 round")


class _StepClock(LogitsProcessor):
    """Records the time of every decode step of a generate() call."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.times.append(time.perf_counter())
        return scores


def _stats(name: str, *, wall: float, tokens: int, ttft: list[float], itl: list[float]) -> dict[str, Any]:
    return {"system": name, "tokens_per_s": round(tokens / wall, 1), "wall_s": round(wall, 2),
            "ttft_p50_ms": round(percentile(ttft, 50) * 1000, 1), "ttft_p99_ms": round(percentile(ttft, 99) * 1000, 1),
            "itl_p50_ms": round(percentile(itl, 50) * 1000, 1), "itl_p99_ms": round(percentile(itl, 99) * 1000, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _peft_with_adapters(base_name: str, count: int, rank: int) -> Any:
    """One PeftModel holding `count` seeded LoRAs (r on q and v) named a0..a{count-1}, on one copy of the base."""
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                        init_lora_weights=False)
    torch.manual_seed(1000)
    model = new_peft_model(load_base(base_name).model, config, adapter_name="a0").eval()
    for index in range(1, count):
        torch.manual_seed(1000 + index)
        model.add_adapter(f"a{index}", config)
    model.eval()
    return model


def _adapter_tensors(model: Any, name: str) -> dict[str, torch.Tensor]:
    """One adapter's tensors under PEFT's saved names (what an upload of it would hold)."""
    from peft import get_peft_model_state_dict
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model, adapter_name=name).items()}


def _engine_run(engine: InferenceEngine, names: list[str | None], config: BenchConfig, label: str) -> dict:
    """All requests submitted at once; one reader thread per request stamps each delta as it arrives."""
    params = SamplingParams(max_new_tokens=config.new_tokens, ignore_eos=True)
    stamps: list[list[tuple[float, int]]] = [[] for _ in range(config.requests)]  # (arrival, tokens)

    def read(handle: Any, times: list[tuple[float, int]]) -> None:
        for event in handle.events(timeout=600):
            if isinstance(event, Delta):
                times.append((time.perf_counter(), len(event.token_ids)))

    start = time.perf_counter()
    handles = [engine.generate(tenant="bench", adapter=names[i % len(names)], version=0, prompt=PROMPTS[i],
                               params=params) for i in range(config.requests)]
    readers = [threading.Thread(target=read, args=(h, t)) for h, t in zip(handles, stamps)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    wall = time.perf_counter() - start
    ttft = [times[0][0] - start for times in stamps]
    # a delta carries every token made since the previous one (the engine's stream interval): each of its
    # tokens is counted with an equal share of the gap, as a per-step clock would see them
    itl = [(b - a) / n for times in stamps for (a, _), (b, n) in zip(times, times[1:]) for _ in range(n)]
    return _stats(label, wall=wall, tokens=sum(n for times in stamps for _, n in times), ttft=ttft, itl=itl)


def _generate_run(model: Any, tokenizer: Any, rows: list[int], config: BenchConfig, **kwargs: Any
                  ) -> tuple[float, int, list[float], float]:
    """One batched generate over PROMPTS[rows]: (start, tokens made, the time of each step, end)."""
    tokenizer.padding_side = "left"
    batch = tokenizer([PROMPTS[i] for i in rows], return_tensors="pt", padding=True)
    clock = _StepClock()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=config.new_tokens, min_new_tokens=config.new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             logits_processor=LogitsProcessorList([clock]), **kwargs)
    end = time.perf_counter()
    tokens = (out.shape[1] - batch["input_ids"].shape[1]) * len(rows)
    return start, tokens, clock.times, end


def _batched(label: str, model: Any, tokenizer: Any, groups: list[tuple[list[int], dict]], config: BenchConfig,
             before_group: Any = None) -> dict:
    start, tokens, ttft, itl = time.perf_counter(), 0, [], []
    for rows, kwargs in groups:
        if before_group is not None:
            before_group(rows)
        _, made, times, _ = _generate_run(model, tokenizer, rows, config, **kwargs)
        tokens += made
        ttft.extend([times[0] - start] * len(rows))
        itl.extend(b - a for a, b in zip(times, times[1:]))
    return _stats(label, wall=time.perf_counter() - start, tokens=tokens, ttft=ttft, itl=itl)


def _vault_with_adapters(vault: Vault, peft: Any, config: BenchConfig, fingerprint: str) -> None:
    vault.credentials.create_tenant("bench")
    for i in range(max(config.adapter_counts)):
        tensors = _adapter_tensors(peft, f"a{i}")
        schema = AdapterSchema.from_tensors(tensors, rank=config.rank, alpha=2.0 * config.rank,
                                            target_modules=("q_proj", "v_proj"), base_fingerprint=fingerprint)
        vault.adapters.create_adapter(tenant="bench", name=f"a{i}", schema=schema)
        data = encode_tensors(tensors)
        vault.adapters.commit_version(tenant="bench", adapter=f"a{i}", parent_version=0,
                             blob=vault.adapters.stage_blob(data, expected_sha256=sha256_hex(data)))


def bench_base(base_name: str, config: BenchConfig, *, report: Any = None) -> dict[str, Any]:
    """Every system on one base. The four systems the targets compare (engine-base, engine-lora and peft-mixed
    with the most adapters, hf-batched) run `config.rounds` times, interleaved, and each target ratio is the
    median of its per-round ratios: this machine's speed drifts by 10-20% between minutes, which one run of
    each system cannot tell from a difference between systems. `report(results)` after each round and system,
    so a run cut short on a loaded machine still leaves what it measured."""
    base = load_base(base_name)
    rows_all, top = list(range(config.requests)), max(config.adapter_counts)
    results: dict[str, Any] = {"systems": [], "rounds": []}

    def record(entry: dict[str, Any], adapters: int) -> None:
        results["systems"].append({**entry, "adapters": adapters})
        logger.info("%s %s", base_name, results["systems"][-1])
        if report is not None:
            report(_summarize(results, config))

    def mixed(n: int) -> dict[str, Any]:
        return {"adapter_names": [f"a{i % n}" for i in rows_all]}

    with tempfile.TemporaryDirectory() as folder, Vault.open(Path(folder), base_fingerprint=base.fingerprint) as vault:
        peft = _peft_with_adapters(base_name, top, config.rank)
        _vault_with_adapters(vault, peft, config, base.fingerprint)
        engine = InferenceEngine(base, vault=vault, config=InferenceConfig(max_batch=config.requests, max_seq_len=192,
                                                                           max_prompt_tokens=96))
        engine.start()
        tokenizer = base.tokenizer
        try:
            # warm: every adapter loaded into the cache once (a cold load reads, verifies and decodes its blob)
            _engine_run(engine, [f"a{i}" for i in range(top)], BenchConfig(requests=top, new_tokens=2), "warmup")
            _generate_run(base.model, tokenizer, [0, 1], BenchConfig(requests=2, new_tokens=2, adapter_counts=(1,)))
            for _ in range(config.rounds):
                round_ = {"engine-base@0": _engine_run(engine, [None], config, "engine-base"),
                          f"engine-lora@{top}": _engine_run(engine, [f"a{i}" for i in range(top)], config,
                                                            "engine-lora"),
                          "hf-batched@0": _batched("hf-batched", base.model, tokenizer, [(rows_all, {})], config),
                          f"peft-mixed@{top}": _batched("peft-mixed", peft, tokenizer, [(rows_all, mixed(top))],
                                                        config)}
                results["rounds"].append(round_)
                logger.info("%s round %d: %s", base_name, len(results["rounds"]),
                            {k: v["tokens_per_s"] for k, v in round_.items()})
                if report is not None:
                    report(_summarize(results, config))
            for n in sorted(config.adapter_counts, reverse=True)[1:]:
                record(_engine_run(engine, [f"a{i}" for i in range(n)], config, "engine-lora"), n)
        finally:
            engine.close()
        for n in sorted(config.adapter_counts, reverse=True)[1:]:
            record(_batched("peft-mixed", peft, tokenizer, [(rows_all, mixed(n))], config), n)
        for n in sorted(config.adapter_counts, reverse=True):
            groups = [([r for r in rows_all if r % n == g], {}) for g in range(n)]
            record(_batched("peft-grouped", peft, tokenizer, groups, config,
                            before_group=lambda rows, n=n: peft.set_adapter(f"a{rows[0] % n}")), n)
    return _summarize(results, config)


def _summarize(results: dict[str, Any], config: BenchConfig) -> dict[str, Any]:
    """The median round of each repeated system joins the systems table; the target ratios are medians of the
    per-round ratios (None until a round has run)."""
    top = max(config.adapter_counts)
    lora, base, hf, peft = f"engine-lora@{top}", "engine-base@0", "hf-batched@0", f"peft-mixed@{top}"
    rounds = results["rounds"]

    def per_round(a: str, b: str) -> list[float]:
        return [round(r[a]["tokens_per_s"] / r[b]["tokens_per_s"], 3) for r in rounds]

    def median_round(key: str) -> dict[str, Any]:
        entries = sorted((r[key] for r in rounds), key=lambda e: e["tokens_per_s"])
        return {**entries[(len(entries) - 1) // 2], "adapters": int(key.split("@")[1]), "rounds": len(entries)}

    repeated = [median_round(k) for k in (base, lora, hf, peft)] if rounds else []
    systems = [*repeated, *results["systems"]]
    ratios = {"ratio_to_base_32": per_round(lora, base), "ratio_to_peft_mixed_32": per_round(lora, peft),
              "base_engine_ratio_to_hf": per_round(base, hf)}
    summary = {name: (round(statistics.median(values), 3) if values else None) for name, values in ratios.items()}
    lora_entry = next((s for s in repeated if s["system"] == "engine-lora"), {})
    return {"systems": systems, "rounds": rounds, **summary, "per_round": ratios,
            "ttft_p99_ms": lora_entry.get("ttft_p99_ms"), "itl_p99_ms": lora_entry.get("itl_p99_ms"),
            "tokens_per_s": {f"{s['system']}@{s['adapters']}": s["tokens_per_s"] for s in systems},
            "complete": len(rounds) == config.rounds and len(results["systems"]) == 3 * len(config.adapter_counts) - 2}


def _plot(per_base: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(per_base), figsize=(6 * len(per_base), 4), squeeze=False)
    for ax, (base, result) in zip(axes[0], per_base.items()):
        for system in ("engine-lora", "peft-mixed", "peft-grouped"):
            points = sorted((s["adapters"], s["tokens_per_s"]) for s in result["systems"] if s["system"] == system)
            if points:
                ax.plot(*zip(*points), marker="o", label=system)
        for system, style in (("engine-base", "--"), ("hf-batched", ":")):
            value = next((s["tokens_per_s"] for s in result["systems"] if s["system"] == system), None)
            if value is not None:
                ax.axhline(value, linestyle=style, color="gray", label=f"{system} (base only)")
        ax.set(xscale="log", xlabel="distinct adapters in the 32 requests", ylabel="tokens/s", title=base)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", action="append", help="tiny, smollm2-135m (repeatable; default both, tiny first)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the machine is shared)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of the systems the targets compare (medians reported)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = BenchConfig(threads=args.threads, rounds=args.rounds)
    torch.set_num_threads(config.threads)
    bases = args.base or ["tiny", "smollm2-135m"]  # tiny first: minutes; smollm2 with PEFT takes far longer
    load_before = machine()
    per_base: dict[str, Any] = {}

    def report(base: str, partial: dict[str, Any]) -> None:
        per_base[base] = partial
        _write(per_base, primary="smollm2-135m" if "smollm2-135m" in bases else bases[0], config=config, load_before=load_before)

    for base in bases:
        per_base[base] = bench_base(base, config, report=lambda partial, base=base: report(base, partial))
    results = _write(per_base, primary="smollm2-135m" if "smollm2-135m" in bases else bases[0], config=config, load_before=load_before)
    print(results["table"])
    print("machine:", results["machine"])
    return 0


def _write(per_base: dict[str, Any], *, primary: str, config: BenchConfig, load_before: dict) -> dict[str, Any]:
    """inference.json/.md/.png from what has been measured so far."""
    if primary not in per_base:  # not started yet: the top-level keys show the base measured so far
        primary = next(iter(per_base))
    first = per_base[primary]
    results = {**{k: first.get(k) for k in ("ratio_to_base_32", "ratio_to_peft_mixed_32", "base_engine_ratio_to_hf",
                                            "ttft_p99_ms", "itl_p99_ms", "tokens_per_s", "complete")},
               "primary_base": primary, "bases": per_base, "config": asdict(config),
               "machine_before": load_before, "machine": machine()}
    header = ["base", "system", "adapters", "tokens/s (median of rounds)", "TTFT p50/p99 ms", "ITL p50/p99 ms", "peak RSS MB"]
    rows = [[base, s["system"], s["adapters"], f"{s['tokens_per_s']}" + (f" ({s['rounds']})" if "rounds" in s else ""), f"{s['ttft_p50_ms']}/{s['ttft_p99_ms']}",
             f"{s['itl_p50_ms']}/{s['itl_p99_ms']}", s["peak_rss_mb"]]
            for base, result in per_base.items() for s in result["systems"]]
    table = markdown_table(header, rows) + "\n" + "\n".join(
        f"{base}: ratio_to_base_32={r['ratio_to_base_32']} ratio_to_peft_mixed_32={r['ratio_to_peft_mixed_32']} "
        f"base_engine_ratio_to_hf={r['base_engine_ratio_to_hf']} (medians; per round: {r['per_round']})"
        for base, r in per_base.items()) + "\n"
    write_results("inference", results, table)
    _plot(per_base, RESULTS_DIR / "inference.png")
    return {**results, "table": table}


if __name__ == "__main__":
    raise SystemExit(main())
