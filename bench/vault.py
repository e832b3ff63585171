"""`make bench-vault`: adapter upload and download throughput against a raw gRPC stream of the same bytes,
and head and list latency with 10,000 versions in the vault.

Both servers run in one child process on 127.0.0.1 with the same thread pool and message limits, and the
client in this one, as in a deployment; the ratio measures what the vault adds to the transport (hashing on
both sides, the durable blob write with its fsync, the streaming safetensors checks, the metadata commit).
Raw and vault transfers alternate round by round and the ratio is the median of the rounds' own ratios: on a
shared machine the raw stream alone swings by a third within a minute, so timing all raw transfers first and
all vault transfers after compared two different stretches of the machine.
Beside them, the same bytes written durably (chunked write + fsync + rename) into the vault's folder with no
network at all: an upload cannot be faster than its own disk write, so that rate bounds the upload ratio. And
the CPU: the raw upload's CPU seconds (both processes, from /proc) plus the work no verified, durable upload can
skip (SHA-256 on each side, the finiteness check, the durable write's own CPU), spread over every core, estimate
a ceiling for the upload ratio (an estimate: the raw stream's own CPU moves from run to run); its download twin
takes the raw download's CPU plus reading and hashing the blob on the server, hashing and checking it on the
client. The vault's target is 70% of each CPU bound (upload_share_of_cpu_bound, download_share_of_cpu_bound).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import torch
from tqdm import tqdm

from loravault.client import VaultClient
from loravault.core import AdapterSchema, TensorSpec, encode_tensors, load_base
from loravault.core.base_layout import BaseLayout
from loravault.core.tensor_stream import StreamingTensorCheck
from loravault.server import ServerConfig, ServerState, create_server
from loravault.server.config import MAX_CHUNK_BYTES
from loravault.server.vault import BlobReader, Vault
from loravault.server.vault.direct_io import DirectBlocks, direct_io_supported
from loravault.server.vault.durable import AtomicFile

from .harness import machine, markdown_table, time_calls, write_results

logger = logging.getLogger(__name__)
MIB = 1 << 20
_RAW_UP = "/bench.Raw/Up"
_RAW_DOWN = "/bench.Raw/Down"


@dataclass(frozen=True)
class VaultBenchConfig:
    """What the benchmark measures."""

    adapter_mib: int = 64  # size of the adapter streamed up and down
    repeats: int = 9  # rounds of raw and vault transfers, interleaved; medians are reported
    versions: int = 10_000  # versions of one adapter in the vault for the latency part
    latency_calls: int = 500  # head and list calls timed


def _schema(fingerprint: str, mib: float) -> AdapterSchema:
    width = int(mib * MIB) // (2 * 8 * 4)  # two float32 tensors of rank 8
    return AdapterSchema(rank=8, alpha=16.0, target_modules=("q_proj",),
                         tensors=(TensorSpec("base_model.model.m.q_proj.lora_A.weight", (8, width)),
                                  TensorSpec("base_model.model.m.q_proj.lora_B.weight", (width, 8))),
                         dtype="float32", base_fingerprint=fingerprint)


def _synthetic_base(schema: AdapterSchema) -> BaseLayout:
    """A base with exactly the projections the schema adapts: the bench measures transfers, not models."""
    linear = {pair.base_module: (schema.shape_of(pair.a_name)[1], schema.shape_of(pair.b_name)[0])
              for pair in schema.pairs()}
    return BaseLayout(name="synthetic", fingerprint=schema.base_fingerprint, linear=linear, other={})


def _payload(schema: AdapterSchema, seed: int) -> bytes:
    generator = torch.Generator().manual_seed(seed)
    return encode_tensors({t.name: torch.randn(t.shape, generator=generator) for t in schema.tensors})


def _serve_both(data: Path, fingerprint: str, mib: int, payload: bytes, versions: int, ready: multiprocessing.Queue,
                stop: multiprocessing.Event) -> None:
    """Child process: fill the vault's history, then serve the vault and the raw server until `stop` is set.

    The vault holds its data folder's lock, so the history is written here, through the vault API.
    """
    vault = Vault.open(data, base_fingerprint=fingerprint)
    vault.credentials.create_tenant("bench")
    token = vault.credentials.issue_token(role="tenant", tenant="bench", label="bench").secret
    fill_seconds = _fill_versions(vault, tenant="bench", count=versions, fingerprint=fingerprint)
    state = ServerState(vault=vault, base=_synthetic_base(_schema(fingerprint, mib)), max_chunk_bytes=MAX_CHUNK_BYTES)
    server, port = create_server(ServerConfig(data_dir=data, port=0), state=state)
    server.start()
    raw_server, raw_port = _raw_server(payload)
    ready.put((port, raw_port, token, fill_seconds))
    stop.wait()
    server.stop(None)
    raw_server.stop(None)
    vault.close()


def _raw_server(payload: bytes) -> tuple[grpc.Server, int]:
    """A bare gRPC server with one streaming upload and one streaming download of opaque bytes."""

    def up(chunks, context):
        return str(sum(len(c) for c in chunks)).encode()

    def down(request, context):
        yield from _chunks(payload)

    handlers = grpc.method_handlers_generic_handler("bench.Raw", {
        "Up": grpc.stream_unary_rpc_method_handler(up),
        "Down": grpc.unary_stream_rpc_method_handler(down),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 4 * MIB)])
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@dataclass(frozen=True)
class Transfers:
    """Seconds of each timed transfer, round by round; CPU seconds of both processes per transfer (/proc)."""

    uploads: list[float]
    downloads: list[float]
    upload_cpu: list[float]
    download_cpu: list[float]

    def upload_mib_s(self, size_mib: float) -> float:
        return size_mib / statistics.median(self.uploads)

    def download_mib_s(self, size_mib: float) -> float:
        return size_mib / statistics.median(self.downloads)

    def upload_cpu_seconds(self) -> float:
        return statistics.fmean(self.upload_cpu)  # a mean: /proc counts 10 ms ticks

    def download_cpu_seconds(self) -> float:
        return statistics.fmean(self.download_cpu)


def round_ratios(vault: list[float], raw: list[float]) -> list[float]:
    """Each round's raw seconds / vault seconds (the vault's rate as a share of the raw stream's)."""
    return [r / v for v, r in zip(vault, raw, strict=True)]


def paired_ratio(vault: list[float], raw: list[float]) -> float:
    """Median over rounds of raw seconds / vault seconds: each round's two transfers ran seconds apart, so a
    stretch in which the shared machine runs slow or fast moves both sides of a round together."""
    return statistics.median(round_ratios(vault, raw))


def _chunks(payload: bytes) -> Iterator[bytes]:
    """`payload` cut into upload-sized chunks one at a time, each a copy (gRPC takes bytes objects)."""
    return (payload[o : o + MAX_CHUNK_BYTES] for o in range(0, len(payload), MAX_CHUNK_BYTES))


class CpuMeter:
    """User + system CPU seconds of a set of processes, every thread included (Linux /proc)."""

    def __init__(self, *pids: int) -> None:
        self._pids = pids
        self._tick = os.sysconf("SC_CLK_TCK")

    def now(self) -> float:
        total = 0
        for pid in self._pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
        return total / self._tick


class RawStream:
    """The baseline: the same bytes through a bare gRPC stream with the vault's chunk size and message limit.

    Chunks are cut as the stream asks for them and received chunks are kept as they arrive: the cheapest way a
    client can send and hold the bytes. Cutting every chunk before the call, or joining the download into one
    bytes object, faults in 64 MiB of fresh memory on the way and halves the raw rates on these machines, which
    would flatter the vault's ratios.
    """

    def __init__(self, channel: grpc.Channel, payload: bytes) -> None:
        self._up, self._down = channel.stream_unary(_RAW_UP), channel.unary_stream(_RAW_DOWN)
        self._payload = payload

    def upload(self) -> None:
        self._up(_chunks(self._payload))

    def download(self) -> None:
        received = list(self._down(b""))
        assert sum(len(chunk) for chunk in received) == len(self._payload)


def _interleaved_transfers(raw: RawStream, client: VaultClient, schema: AdapterSchema, payloads: list[bytes],
                           cpu: CpuMeter) -> tuple[Transfers, Transfers]:
    """Each round: raw upload, vault upload, raw download, vault download (a fresh payload per vault round)."""
    client.create_adapter("throughput", schema)
    rounds: dict[str, dict[str, list[float]]] = {side: {"up": [], "down": [], "up_cpu": [], "down_cpu": []}
                                                 for side in ("raw", "vault")}

    def timed(side: str, direction: str, transfer: Callable[[], object]) -> None:
        start, used = time.perf_counter(), cpu.now()
        transfer()
        rounds[side][direction].append(time.perf_counter() - start)
        rounds[side][f"{direction}_cpu"].append(cpu.now() - used)

    for data in tqdm(payloads, desc="transfer rounds", unit="round", disable=None):
        timed("raw", "up", raw.upload)
        timed("vault", "up", lambda: client.upload_bytes("throughput", data))
        timed("raw", "down", raw.download)
        timed("vault", "down", lambda: client.download_tensors("throughput"))
    raw_rounds, vault_rounds = rounds["raw"], rounds["vault"]
    return (Transfers(raw_rounds["up"], raw_rounds["down"], raw_rounds["up_cpu"], raw_rounds["down_cpu"]),
            Transfers(vault_rounds["up"], vault_rounds["down"], vault_rounds["up_cpu"], vault_rounds["down_cpu"]))


def _blob_file(folder: Path, direct: DirectBlocks | None) -> AtomicFile:
    """A temporary file written as the vault writes blobs: with O_DIRECT where the folder takes it."""
    return AtomicFile(folder, direct=direct)


def _required_upload_cpu_seconds(folder: Path, schema: AdapterSchema, payload: bytes, repeats: int,
                                 direct: DirectBlocks | None) -> float:
    """CPU seconds of the work every verified, durable upload adds to the transport (median of `repeats`):
    SHA-256 of the bytes on each side, the streaming safetensors check, and writing the blob durably."""
    chunks = list(_chunks(payload))
    seconds = []
    for attempt in range(repeats):
        start = time.process_time()
        for _ in range(2):  # client and server each hash every byte
            digest = hashlib.sha256()
            for chunk in chunks:
                digest.update(chunk)
        check = StreamingTensorCheck(schema)
        atomic = _blob_file(folder, direct)
        for chunk in chunks:
            check.feed(chunk)
            atomic.write(chunk)
        check.finish()
        atomic.publish(folder / f"cpu-probe-{attempt}")
        seconds.append(time.process_time() - start)
        (folder / f"cpu-probe-{attempt}").unlink()
    return statistics.median(seconds)


def _required_download_cpu_seconds(folder: Path, schema: AdapterSchema, payload: bytes, repeats: int,
                                   direct: DirectBlocks | None) -> float:
    """CPU seconds of the work every verified download adds to the transport (median of `repeats`): reading the
    blob file and hashing it on the server, hashing it again on the client, and the streaming safetensors check."""
    atomic = _blob_file(folder, direct)
    atomic.write(payload)
    path = folder / "download-probe"
    atomic.publish(path)
    sha256 = hashlib.sha256(payload).hexdigest()
    seconds = []
    for _ in range(repeats):
        start = time.process_time()
        client_digest, check = hashlib.sha256(), StreamingTensorCheck(schema)
        with BlobReader(path, sha256=sha256) as reader:  # as the server reads a blob: verified at the end
            for chunk in reader.chunks(MAX_CHUNK_BYTES):
                client_digest.update(chunk)
                check.feed(chunk)
        check.finish()
        seconds.append(time.process_time() - start)
    path.unlink()
    return statistics.median(seconds)


def _durable_write_throughput(folder: Path, payload: bytes, repeats: int, direct: DirectBlocks | None) -> float:
    """MiB/s of writing `payload` in upload-sized chunks to a new file in `folder` and making it durable."""
    seconds = []
    for attempt in range(repeats):
        destination = folder / f"disk-probe-{attempt}"
        start = time.perf_counter()
        atomic = _blob_file(folder, direct)
        for chunk in _chunks(payload):
            atomic.write(chunk)
        atomic.publish(destination)
        seconds.append(time.perf_counter() - start)
        destination.unlink()
    return len(payload) / MIB / statistics.median(seconds)


def _fill_versions(vault: Vault, *, tenant: str, count: int, fingerprint: str) -> float:
    """Commit `count` versions of one small adapter through the vault API; returns seconds taken."""
    small = _schema(fingerprint, 2 * 8 * 16 * 4 / MIB)  # width 16
    vault.adapters.create_adapter(tenant=tenant, name="history", schema=small)
    start = time.perf_counter()
    for number in tqdm(range(count), desc="filling versions", unit="version", disable=None):
        tensors = {"base_model.model.m.q_proj.lora_A.weight": torch.full((8, 16), float(number)),
                   "base_model.model.m.q_proj.lora_B.weight": torch.zeros(16, 8)}
        data = encode_tensors(tensors)
        writer = vault.adapters.new_blob_writer(max_bytes=len(data))
        writer.write(data)
        vault.adapters.commit_version(tenant=tenant, adapter="history", parent_version=number, blob=writer.finish(),
                             kind="upload")
    return time.perf_counter() - start


def run(config: VaultBenchConfig) -> dict:
    fingerprint = load_base("tiny").fingerprint
    schema = _schema(fingerprint, config.adapter_mib)
    payloads = [_payload(schema, seed) for seed in range(config.repeats)]
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="loravault-bench-") as scratch:
        data = Path(scratch)
        ready, stop = context.Queue(), context.Event()
        child = context.Process(target=_serve_both,
                                args=(data, fingerprint, config.adapter_mib, payloads[0], config.versions, ready, stop))
        child.start()
        try:
            port, raw_port, token, fill_seconds = ready.get(timeout=1800)
            load_before = machine()
            cpu = CpuMeter(os.getpid(), child.pid)
            raw_options = [("grpc.max_receive_message_length", 4 * MIB)]
            with (VaultClient(f"127.0.0.1:{port}", token=token, timeout=600) as client,
                  grpc.insecure_channel(f"127.0.0.1:{raw_port}", options=raw_options) as raw_channel):
                direct = DirectBlocks() if direct_io_supported(data / ".direct-probe") else None
                disk = _durable_write_throughput(data, payloads[0], config.repeats, direct)
                required = _required_upload_cpu_seconds(data, schema, payloads[0], config.repeats, direct)
                required_down = _required_download_cpu_seconds(data, schema, payloads[0], config.repeats, direct)
                if direct is not None:
                    direct.close()
                raw, vault = _interleaved_transfers(RawStream(raw_channel, payloads[0]), client, schema, payloads, cpu)
                head = time_calls(lambda: client.get_adapter("history"), count=config.latency_calls)
                listing = time_calls(lambda: client.versions("history"), count=max(50, config.latency_calls // 5))
                adapters = time_calls(lambda: client.list_adapters(), count=config.latency_calls)
        finally:
            stop.set()
            child.join(timeout=60)
    size = len(payloads[0]) / MIB
    results = {
        "config": asdict(config),
        "machine_before": load_before,
        "machine_after": machine(),
        "adapter_mib": round(len(payloads[0]) / MIB, 2),
        "raw_upload_mib_s": round(raw.upload_mib_s(size), 1), "vault_upload_mib_s": round(vault.upload_mib_s(size), 1),
        "raw_download_mib_s": round(raw.download_mib_s(size), 1),
        "vault_download_mib_s": round(vault.download_mib_s(size), 1),
        "upload_ratio_to_raw": round(paired_ratio(vault.uploads, raw.uploads), 3),
        "download_ratio_to_raw": round(paired_ratio(vault.downloads, raw.downloads), 3),
        "upload_ratio_per_round": [round(r, 3) for r in round_ratios(vault.uploads, raw.uploads)],
        "download_ratio_per_round": [round(r, 3) for r in round_ratios(vault.downloads, raw.downloads)],
        "durable_write_mib_s": round(disk, 1),
        "upload_ratio_to_durable_write": round(vault.upload_mib_s(size) / disk, 3),
        "upload_ratio_bound_by_disk": round(min(1.0, disk / raw.upload_mib_s(size)), 3),
        **_cpu_bound(raw, vault, required, direction="upload"),
        **_cpu_bound(raw, vault, required_down, direction="download"),
        "versions": config.versions,
        "fill_versions_per_s": round(config.versions / fill_seconds, 1),
        "head_p50_ms": head["p50_ms"], "head_p99_ms": head["p99_ms"],
        "list_p50_ms": listing["p50_ms"], "list_p99_ms": listing["p99_ms"],
        "list_page_size": 1000,
        "list_adapters_p50_ms": adapters["p50_ms"], "list_adapters_p99_ms": adapters["p99_ms"],
    }
    return results | share_of_cpu_bound(results)


def _cpu_bound(raw: Transfers, vault: Transfers, required: float, *, direction: str) -> dict[str, float]:
    """An estimated ceiling for the vault/raw ratio of `direction` ("upload" or "download") on this machine's
    cores: the raw transfer's CPU plus the work a verified transfer cannot skip, perfectly spread over every
    core, against the raw transfer's wall time."""
    raw_seconds = statistics.median(raw.uploads if direction == "upload" else raw.downloads)
    raw_cpu = raw.upload_cpu_seconds() if direction == "upload" else raw.download_cpu_seconds()
    vault_cpu = vault.upload_cpu_seconds() if direction == "upload" else vault.download_cpu_seconds()
    floor = max(raw_seconds, (raw_cpu + required) / os.cpu_count())
    return {f"raw_{direction}_cpu_seconds": round(raw_cpu, 3),
            f"vault_{direction}_cpu_seconds": round(vault_cpu, 3),
            f"required_{direction}_cpu_seconds": round(required, 3),
            f"{direction}_ratio_bound_by_cpu": round(raw_seconds / floor, 3)}


def share_of_cpu_bound(results: dict) -> dict[str, float]:
    """The vault's ratio to the raw stream as a share of the CPU bound on that ratio (the target: >= 0.7)."""
    return {f"{side}_share_of_cpu_bound": round(results[f"{side}_ratio_to_raw"]
                                                / results[f"{side}_ratio_bound_by_cpu"], 3)
            for side in ("upload", "download")}


def table(results: dict) -> str:
    rows = [
        ["upload", f"{results['vault_upload_mib_s']} MiB/s", f"{results['raw_upload_mib_s']} MiB/s",
         f"{results['upload_ratio_to_raw']:.0%}"],
        ["download", f"{results['vault_download_mib_s']} MiB/s", f"{results['raw_download_mib_s']} MiB/s",
         f"{results['download_ratio_to_raw']:.0%}"],
    ]
    latency = [
        ["GetAdapter (head)", results["head_p50_ms"], results["head_p99_ms"]],
        [f"ListVersions (page of {results['list_page_size']})", results["list_p50_ms"], results["list_p99_ms"]],
        ["ListAdapters", results["list_adapters_p50_ms"], results["list_adapters_p99_ms"]],
    ]
    load = results["machine_before"]
    return (
        f"Adapter of {results['adapter_mib']} MiB, {load['cpus']} CPUs, load average {load['loadavg_1m']} "
        f"(1 min) before the run, {results['machine_after']['loadavg_1m']} after.\n\n"
        + markdown_table(["transfer", "vault", "raw gRPC", "vault / raw"], rows)
        + f"\nMedians of {len(results['upload_ratio_per_round'])} rounds; a round times a raw upload, a vault "
        f"upload, a raw download and a vault download back to back, and vault / raw is the median of the rounds' "
        f"own ratios (uploads per round: {', '.join(f'{r:.0%}' for r in results['upload_ratio_per_round'])}).\n"
        + f"\nThe same bytes written durably into the vault's folder with no network: "
        f"{results['durable_write_mib_s']} MiB/s, so no durable upload can exceed "
        f"{results['upload_ratio_bound_by_disk']:.0%} of the raw stream here; the vault's upload runs at "
        f"{results['upload_ratio_to_durable_write']:.0%} of that disk rate.\n"
        f"\nCPU per upload (both processes): raw stream {results['raw_upload_cpu_seconds']} s, vault "
        f"{results['vault_upload_cpu_seconds']} s; the work a verified, durable upload cannot skip (SHA-256 on "
        f"both sides, the safetensors check, the durable write) takes {results['required_upload_cpu_seconds']} s, "
        f"so, spread perfectly over {results['machine_before']['cpus']} cores, an upload could reach about "
        f"{results['upload_ratio_bound_by_cpu']:.0%} of the raw stream here (an estimate: the raw stream's CPU "
        f"varies between runs).\n"
        + f"\nCPU per download (both processes): raw stream {results['raw_download_cpu_seconds']} s, vault "
        f"{results['vault_download_cpu_seconds']} s; the work a verified download cannot skip (reading the blob "
        f"and SHA-256 on the server, SHA-256 and the safetensors check on the client) takes "
        f"{results['required_download_cpu_seconds']} s, so a download could reach about "
        f"{results['download_ratio_bound_by_cpu']:.0%} of the raw stream here.\n"
        + f"\nShare of the CPU bound reached (target 70%): uploads "
        f"{results['upload_share_of_cpu_bound']:.0%}, downloads {results['download_share_of_cpu_bound']:.0%}.\n"
        + f"\nWith {results['versions']} versions of one adapter in the vault:\n\n"
        + markdown_table(["RPC", "p50 ms", "p99 ms"], latency)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter-mib", type=int, default=VaultBenchConfig.adapter_mib)
    parser.add_argument("--versions", type=int, default=VaultBenchConfig.versions)
    parser.add_argument("--repeats", type=int, default=VaultBenchConfig.repeats)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results = run(VaultBenchConfig(adapter_mib=args.adapter_mib, versions=args.versions, repeats=args.repeats))
    text = table(results)
    write_results("vault", results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
