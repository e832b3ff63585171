"""`make bench-scaleout`: uploads/s, erasures/s and head/list p99 with 1, 2 and 4 `loravault serve` replicas on
one PostgreSQL 15 and one S3 bucket, against the single-process SQLite + files vault in the same run.

Everything runs on this machine: a throwaway PostgreSQL cluster (durable: fsync on, as deployed), moto's S3
server in its own process, the replicas as child processes, and the clients as threads of this process
(tenants spread round-robin over the replicas, each tenant on its own adapter, so no request loses a race).
Erasures are signed before the clock starts; the server verifies, merges, runs the probe check on the tiny
base and commits each, as in production. Head/list latency: one client at a time, alternating GetAdapter and
ListVersions over the replicas.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
import torch
from tqdm import tqdm

from loravault.client import VaultClient
from loravault.core import encode_tensors, load_base
from loravault.proto.keys import generate_private_key_pem, public_key_dict, save_private_key, signer_from_pem

from .harness import machine, markdown_table, percentile, write_results
from .pgcluster import PgCluster
from .protocol import _plan

logger = logging.getLogger(__name__)
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class ScaleoutBenchConfig:
    """What the benchmark measures."""

    # deployments
    replicas: tuple[int, ...] = (1, 2, 4)  # replica counts on PostgreSQL + S3
    # load
    tenants: int = 8  # concurrent clients, each with its own adapter
    uploads_per_tenant: int = 12
    erasures_per_tenant: int = 3
    latency_calls: int = 300  # sequential GetAdapter/ListVersions calls for the p99

    def __post_init__(self) -> None:
        if min(self.replicas, default=0) < 1 or min(self.tenants, self.uploads_per_tenant,
                                                     self.erasures_per_tenant, self.latency_calls) < 1:
            raise ValueError("replica counts, tenants, uploads, erasures and latency calls must all be >= 1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("moto's S3 server did not start")


def _s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"], region_name=S3_ENV["AWS_DEFAULT_REGION"])


def _start_replica(data: Path, args: list[str]) -> tuple[subprocess.Popen, str]:
    ready = data / "serve.json"
    data.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "loravault.server", "serve", "--data", str(data), "--port", "0",
                                "--base", "tiny", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, **S3_ENV})
    deadline = time.monotonic() + 300
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"replica did not start: {process.stderr.read().decode()[-1500:]}")
        time.sleep(0.2)
    return process, f"127.0.0.1:{json.loads(ready.read_text())['port']}"


def _start_deployment(root: Path, count: int, args: list[str]) -> tuple[list[subprocess.Popen], list[str], str]:
    """`count` replicas; the first bootstraps the admin token, the others start together after it."""
    first, target = _start_replica(root / "r0", args)
    token = (root / "r0" / "admin.token").read_text().strip()
    started: dict[int, tuple[subprocess.Popen, str]] = {}
    threads = [threading.Thread(target=lambda n=n: started.__setitem__(n, _start_replica(root / f"r{n}", args)))
               for n in range(1, count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(started) != count - 1:
        raise RuntimeError("a replica did not start")
    processes = [first] + [started[n][0] for n in range(1, count)]
    return processes, [target] + [started[n][1] for n in range(1, count)], token


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _timed_threads(work: list[Callable[[], None]]) -> float:
    """Run each callable in its own thread at once; the wall seconds until all are done (errors re-raised)."""
    errors: list[BaseException] = []

    def wrap(call: Callable[[], None]) -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(call,)) for call in work]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return seconds


def measure(config: ScaleoutBenchConfig, targets: list[str], token: str, base: Any) -> dict[str, Any]:
    """Uploads/s, erasures/s and head/list latency against the replicas at `targets`."""
    from peft import LoraConfig

    from loravault.core.peft_format import adapter_from_peft_model, new_peft_model

    torch.manual_seed(0)
    peft = new_peft_model(load_base("tiny").model, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                                                              target_modules=["q_proj", "v_proj"]))
    schema, tensors = adapter_from_peft_model(peft, base_fingerprint=base.fingerprint)
    clients, signers = [], []
    with VaultClient(targets[0], token=token, timeout=120) as admin:
        for number in range(config.tenants):
            tenant = f"t{number}"
            admin.create_tenant(tenant)
            client = VaultClient(targets[number % len(targets)], token=admin.issue_token(tenant=tenant).token,
                                 timeout=300)
            signer = signer_from_pem(generate_private_key_pem())
            client.add_key(public_key_dict(signer))
            client.create_adapter(f"{tenant}-a", schema)
            clients.append(client)
            signers.append(signer)
    payloads = [[encode_tensors({k: v + 0.001 * (u + 1) for k, v in tensors.items()})
                 for u in range(config.uploads_per_tenant)] for _ in range(config.tenants)]
    upload_s = _timed_threads([
        lambda c=c, mine=mine, n=n: [c.upload_bytes(f"t{n}-a", data, parent_version=u) for u, data in enumerate(mine)]
        for n, (c, mine) in enumerate(zip(clients, payloads, strict=True))])
    plans = []
    for number, client in enumerate(clients):  # signed before the clock starts
        head = {k: v + 0.001 * config.uploads_per_tenant for k, v in tensors.items()}  # the last upload
        parent, parent_hash = config.uploads_per_tenant, hashlib.sha256(payloads[number][-1]).hexdigest()
        mine = []
        for seed in range(config.erasures_per_tenant):
            plan = _plan(head, parent=parent, parent_hash=parent_hash, adapter=f"t{number}-a",
                         fingerprint=base.fingerprint, signer=signers[number], seed=seed)
            mine.append(plan)
            head, parent, parent_hash = plan.merged, parent + 1, plan.manifest.result_hash
        plans.append(mine)
    erasure_s = _timed_threads([
        lambda c=c, mine=mine: [c.submit_erasure(p.manifest.adapter, envelope=p.envelope, delta=p.delta)
                                for p in mine] for c, mine in zip(clients, plans, strict=True)])
    samples = []
    readers = [VaultClient(t, token=token, timeout=60) for t in targets]
    for call in range(config.latency_calls):
        reader, tenant = readers[call % len(readers)], f"t{call % config.tenants}"
        start = time.perf_counter()
        if call % 2:
            reader.versions(f"{tenant}-a", tenant=tenant)
        else:
            reader.get_adapter(f"{tenant}-a", tenant=tenant)
        samples.append((time.perf_counter() - start) * 1000)
    for client in clients + readers:
        client.close()
    uploads, erasures = config.tenants * config.uploads_per_tenant, config.tenants * config.erasures_per_tenant
    return {"uploads": uploads, "upload_seconds": round(upload_s, 3), "uploads_per_s": round(uploads / upload_s, 2),
            "erasures": erasures, "erasure_seconds": round(erasure_s, 3),
            "erasures_per_s": round(erasures / erasure_s, 2),
            "head_p50_ms": round(percentile(samples, 50), 2), "head_p99_ms": round(percentile(samples, 99), 2)}


def measure_parts(*, endpoint: str, bucket: str, pg_url: str, sqlite_url: str, count: int = 100) -> dict[str, Any]:
    """Where an upload's time goes: one small object PUT, one empty write transaction on each database (the
    PostgreSQL one with the advisory lock that pins take), medians over `count` sequential calls; and what the
    purge watch costs a busy replica: its one query for the floors of 32 adapters in flight."""
    from sqlalchemy import text

    from loravault.server.vault.adapters import floors_of
    from loravault.server.vault.database import open_engine, read_transaction, upgrade, write_transaction
    from loravault.server.vault.db_locks import transaction_lock

    client = _s3(endpoint)
    body = os.urandom(30_000)  # about a tiny adapter's size

    def timed(call: Callable[[int], object]) -> float:
        samples = []
        for number in range(count):
            start = time.perf_counter()
            call(number)
            samples.append((time.perf_counter() - start) * 1000)
        return round(percentile(samples, 50), 2)

    parts = {"s3_put_30kb_p50_ms": timed(lambda n: client.put_object(Bucket=bucket, Key=f"probe/{n}", Body=body))}
    for name, url in (("postgresql", pg_url), ("sqlite", sqlite_url)):
        engine = open_engine(url)

        def transaction(number: int, engine: Any = engine) -> None:
            with write_transaction(engine) as conn:
                transaction_lock(conn, namespace="bench", name=str(number))
                conn.execute(text("SELECT 1"))

        def watch_poll(number: int, engine: Any = engine) -> None:
            with read_transaction(engine) as conn:
                floors_of(conn, [(f"t{n}", f"t{n}-a") for n in range(32)])

        upgrade(engine)
        parts[f"{name}_write_transaction_p50_ms"] = timed(transaction)
        parts[f"{name}_purge_watch_poll_32_p50_ms"] = timed(watch_poll)
        engine.dispose()
    return parts


def run(config: ScaleoutBenchConfig) -> dict[str, Any]:
    before = machine()
    base = load_base("tiny")
    results: dict[str, Any] = {"config": asdict(config), "machine_before": before, "replicas": {}}
    with tempfile.TemporaryDirectory(prefix="loravault-bench-scaleout-") as scratch:
        root = Path(scratch)
        steps = tqdm(total=1 + len(config.replicas), desc="deployments", unit="deployment", disable=None)
        processes, targets, token = _start_deployment(root / "sqlite", 1, [])
        try:
            results["sqlite_files"] = measure(config, targets, token, base)
        finally:
            _stop(processes)
        steps.update()
        cluster = PgCluster(durable=True)
        cluster.start()
        moto, endpoint = _start_moto()
        try:
            for count in config.replicas:
                bucket = f"bench-{secrets.token_hex(4)}"
                _s3(endpoint).create_bucket(Bucket=bucket)
                key = root / f"key-{count}.pem"
                save_private_key(key, generate_private_key_pem())
                args = ["--database-url", cluster.url(cluster.create_database(template="template1")),
                        "--blobs", f"s3://{bucket}/vault", "--s3-endpoint", endpoint, "--server-key", str(key)]
                processes, targets, token = _start_deployment(root / f"pg-{count}", count, args)
                try:
                    results["replicas"][str(count)] = measure(config, targets, token, base)
                finally:
                    _stop(processes)
                steps.update()
            results["parts"] = measure_parts(endpoint=endpoint, bucket=bucket, pg_url=args[1],
                                             sqlite_url=f"sqlite:///{root / 'parts.db'}")
        finally:
            moto.terminate()
            cluster.stop()
        steps.close()
    results["machine_after"] = machine()
    sqlite = results["sqlite_files"]
    for row in results["replicas"].values():
        row["sqlite_uploads_per_s"] = sqlite["uploads_per_s"]
        row["upload_ratio_to_sqlite"] = round(row["uploads_per_s"] / sqlite["uploads_per_s"], 2)
        row["erasure_ratio_to_sqlite"] = round(row["erasures_per_s"] / sqlite["erasures_per_s"], 2)
    return results


def table(results: dict[str, Any]) -> str:
    load, after = results["machine_before"], results["machine_after"]
    sqlite = results["sqlite_files"]
    rows = [["1 (SQLite + files)", sqlite["uploads_per_s"], sqlite["erasures_per_s"], sqlite["head_p50_ms"],
             sqlite["head_p99_ms"], "1.0x", "1.0x"]]
    rows += [[f"{count} (PostgreSQL + S3)", r["uploads_per_s"], r["erasures_per_s"], r["head_p50_ms"],
              r["head_p99_ms"], f"{r['upload_ratio_to_sqlite']}x", f"{r['erasure_ratio_to_sqlite']}x"]
             for count, r in results["replicas"].items()]
    config = results["config"]
    return (
        f"{load['cpus']} CPUs, load average {load['loadavg_1m']} (1 min) before the run, {after['loadavg_1m']} "
        f"after. {config['tenants']} tenants at once, {config['uploads_per_tenant']} uploads and "
        f"{config['erasures_per_tenant']} signed erasures (probe check on) each, then {config['latency_calls']} "
        "sequential GetAdapter/ListVersions calls.\n\n"
        + markdown_table(["replicas", "uploads/s", "erasures/s", "head/list p50 ms", "head/list p99 ms",
                          "uploads vs SQLite", "erasures vs SQLite"], rows)
        + "\nParts (medians of 100 sequential calls): " + ", ".join(
            f"{name} {value}" for name, value in results.get("parts", {}).items()) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = ScaleoutBenchConfig()
    parser.add_argument("--replicas", type=int, nargs="+", default=list(defaults.replicas))
    parser.add_argument("--tenants", type=int, default=defaults.tenants)
    parser.add_argument("--uploads-per-tenant", type=int, default=defaults.uploads_per_tenant)
    parser.add_argument("--erasures-per-tenant", type=int, default=defaults.erasures_per_tenant)
    parser.add_argument("--latency-calls", type=int, default=defaults.latency_calls)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    config = ScaleoutBenchConfig(replicas=tuple(args.replicas), tenants=args.tenants,
                                 uploads_per_tenant=args.uploads_per_tenant,
                                 erasures_per_tenant=args.erasures_per_tenant, latency_calls=args.latency_calls)
    results = run(config)
    text = table(results)
    write_results("scaleout", results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
