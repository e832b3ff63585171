"""Which blob-write mechanisms pay for themselves: today's write paths against plain write + fsync + rename.

Issue 19 item 3. Candidates, each writing the bytes in upload-sized chunks, hashing them as the blob store does,
into a temporary file in the store's root that is renamed into `ab/<digest>`, with both folders fsynced:

- direct: today's blob path where the folder takes O_DIRECT (direct_io.DirectWrites: aligned reused blocks,
  the disk write on a worker thread)
- direct-sync: the same O_DIRECT blocks written in the caller's thread (no writer pool)
- hints: today's page-cache path (sync_file_range every 4 MiB, fadvise DONTNEED after the fsync)
- writeback: sync_file_range only (today's path for every other durable file)
- dontneed: fadvise DONTNEED after the fsync only
- plain: write, fsync, close, rename, folder fsync (python-tuf's persist_temp_file shape)

Part 1 times the blob-store write itself (hashing included); part 2 a whole upload and download through the
gRPC server, one server process per path, on the same machine in the same run: today (direct, and blob reads
dropping their pages when they close), kept (direct-sync, reads dropping their pages), then direct,
direct-sync, writeback and plain with reads left alone. Rounds
interleave the candidates (round r runs every candidate once, in a rotated order), and each candidate's
median is reported with the load average before and after. Files are kept until the end, as a vault keeps its
versions, so page-cache growth is part of what is measured.

    python -m loravault.bench.blob_paths --repeats 9
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import multiprocessing
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from loravault.client import VaultClient
from loravault.core import load_base
from loravault.server import ServerConfig, ServerState, create_server
from loravault.server.config import MAX_CHUNK_BYTES
from loravault.server.vault import Vault, blobs, direct_io, durable
from loravault.server.vault.direct_io import DirectWrites, direct_io_supported
from loravault.server.vault.durable import TEMP_PREFIX, AtomicFile, fsync_dir

from .harness import machine, markdown_table, write_results
from .vault import MIB, _payload, _schema, _synthetic_base

logger = logging.getLogger(__name__)
SERVER_PATHS = ("today", "kept", "direct", "direct-sync", "writeback", "plain")


@dataclass(frozen=True)
class BlobPathsConfig:
    """What the comparison measures."""

    sizes_mib: tuple[int, ...] = (64, 2)  # the bench's adapter, and a realistic one (rank 8 on q, v of a 135M)
    repeats: int = 9  # rounds per size (2 MiB: 4x as many); medians are reported
    store: bool = True  # part 1: blob-store writes
    server: bool = True  # part 2: whole uploads and downloads through the server


def _chunks(payload: bytes) -> list[bytes]:
    return [payload[o : o + MAX_CHUNK_BYTES] for o in range(0, len(payload), MAX_CHUNK_BYTES)]


def _plain_write(root: Path, chunks: list[bytes], *, dontneed: bool) -> Path:
    """write + fsync + close + rename + folder fsyncs, hashing each chunk (python-tuf's persist_temp_file)."""
    temp = root / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    digest = hashlib.sha256()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        for chunk in chunks:
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        os.fsync(fd)
        if dontneed:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    name = digest.hexdigest()
    destination = root / name[:2] / name
    os.replace(temp, destination)
    fsync_dir(destination.parent)
    fsync_dir(root)
    return destination


def _atomic_write(root: Path, chunks: list[bytes], *, drop_cache: bool, direct: DirectWrites | None,
                  writeback: bool) -> Path:
    """The same through today's AtomicFile (writeback hints off by patching them away for this call)."""
    with _hints_off(writeback=writeback):
        atomic = AtomicFile(root, drop_cache=drop_cache, direct=direct)
        digest = hashlib.sha256()
        for chunk in chunks:
            atomic.write(chunk)
            digest.update(chunk)
        name = digest.hexdigest()
        destination = root / name[:2] / name
        atomic.publish(destination)
    return destination


@contextlib.contextmanager
def _hints_off(*, writeback: bool = True, drop: bool = True) -> Iterator[None]:
    real_writeback, real_drop = durable.start_writeback, durable.drop_cached_pages
    if not writeback:
        durable.start_writeback = lambda fd, *, offset, length: False
    if not drop:
        durable.drop_cached_pages = lambda fd: False
    try:
        yield
    finally:
        durable.start_writeback, durable.drop_cached_pages = real_writeback, real_drop


class _InlineDirectWrites(DirectWrites):
    """DirectWrites whose disk writes run in the caller's thread: O_DIRECT without the writer pool."""

    def __init__(self) -> None:
        super().__init__(threads=1)

    def submit_write(self, fd: int, block: Any, *, length: int, offset: int) -> Future[None]:
        done: Future[None] = Future()
        direct_io._write_block(fd, block, length, offset)
        done.set_result(None)
        return done


def _store_writers(direct: DirectWrites | None, inline: DirectWrites | None
                   ) -> dict[str, Callable[[Path, list[bytes]], Path]]:
    writers = {
        "hints": lambda root, c: _atomic_write(root, c, drop_cache=True, direct=None, writeback=True),
        "writeback": lambda root, c: _atomic_write(root, c, drop_cache=False, direct=None, writeback=True),
        "dontneed": lambda root, c: _plain_write(root, c, dontneed=True),
        "plain": lambda root, c: _plain_write(root, c, dontneed=False),
    }
    if direct is not None:
        writers["direct"] = lambda root, c: _atomic_write(root, c, drop_cache=False, direct=direct, writeback=False)
        writers["direct-sync"] = lambda root, c: _atomic_write(root, c, drop_cache=False, direct=inline,
                                                               writeback=False)
    return writers


def _store_root(parent: Path, name: str) -> Path:
    root = parent / name
    blobs.BlobStore(root).close()  # the 256 folders, as the store makes them
    return root


def measure_store(config: BlobPathsConfig, scratch: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Part 1: per size and path, median wall and CPU ms of one blob-store write (hash included)."""
    supported = direct_io_supported(scratch / ".direct-probe")
    direct, inline = (DirectWrites(), _InlineDirectWrites()) if supported else (None, None)
    writers = _store_writers(direct, inline)
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for mib in config.sizes_mib:
            repeats = config.repeats * (4 if mib <= 8 else 1)
            chunks = _chunks(os.urandom(mib * MIB))
            hash_ms = []
            roots = {name: _store_root(scratch, f"store-{mib}-{name}") for name in writers}
            wall: dict[str, list[float]] = {name: [] for name in writers}
            cpu: dict[str, list[float]] = {name: [] for name in writers}
            names = list(writers)
            for round_index in tqdm(range(repeats), desc=f"store writes, {mib} MiB", unit="round", disable=None):
                order = names[round_index % len(names):] + names[: round_index % len(names)]
                for name in order:
                    fresh = [bytes([round_index % 256]) + chunk[1:] for chunk in chunks[:1]] + chunks[1:]
                    start, used = time.perf_counter(), time.process_time()
                    writers[name](roots[name], fresh)
                    wall[name].append((time.perf_counter() - start) * 1000)
                    cpu[name].append((time.process_time() - used) * 1000)
                start = time.perf_counter()
                digest = hashlib.sha256()
                for chunk in chunks:
                    digest.update(chunk)
                hash_ms.append((time.perf_counter() - start) * 1000)
            results[f"{mib}"] = {name: {"wall_ms": round(statistics.median(wall[name]), 2),
                                        "cpu_ms": round(statistics.median(cpu[name]), 2),
                                        "wall_ms_per_round": [round(x, 1) for x in wall[name]]}
                                 for name in names}
            results[f"{mib}"]["sha256_only"] = {"wall_ms": round(statistics.median(hash_ms), 2)}
    finally:
        for writes in (direct, inline):
            if writes is not None:
                writes.close()
    return results


def _serve(path: str, data: Path, fingerprint: str, mib: int, ready: multiprocessing.Queue,
           stop: multiprocessing.Event) -> None:
    """Child process: one vault server whose blob store writes by `path` (patched in before the vault opens)."""
    if path not in ("today", "kept"):
        blobs.drop_cached_pages = lambda fd: False
    if path in ("kept", "direct-sync"):
        blobs.DirectWrites = _InlineDirectWrites
    if path in ("writeback", "plain"):
        blobs.direct_io_supported = lambda probe: False
        durable.drop_cached_pages = lambda fd: False
    if path == "plain":
        durable.start_writeback = lambda fd, *, offset, length: False
    vault = Vault.open(data, base_fingerprint=fingerprint)
    vault.create_tenant("bench")
    token = vault.issue_token(role="tenant", tenant="bench", label="bench").secret
    state = ServerState(vault=vault, base=_synthetic_base(_schema(fingerprint, mib)), max_chunk_bytes=MAX_CHUNK_BYTES)
    server, port = create_server(ServerConfig(data_dir=data, port=0), state=state)
    server.start()
    ready.put((port, token))
    stop.wait()
    server.stop(None)
    vault.close()


def measure_server(config: BlobPathsConfig, scratch: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Part 2: per size and path, median ms of a whole upload, then a download of it, through the server."""
    fingerprint = load_base("tiny").fingerprint
    context = multiprocessing.get_context("spawn")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for mib in config.sizes_mib:
        repeats = config.repeats * (4 if mib <= 8 else 1)
        schema = _schema(fingerprint, mib)
        payloads = [_payload(schema, seed) for seed in range(repeats)]
        stop = context.Event()
        children, clients = [], {}
        try:
            for path in SERVER_PATHS:
                ready = context.Queue()
                child = context.Process(target=_serve, args=(path, scratch / f"server-{mib}-{path}", fingerprint,
                                                             mib, ready, stop))
                child.start()
                children.append(child)
                port, token = ready.get(timeout=300)
                clients[path] = VaultClient(f"127.0.0.1:{port}", token=token, timeout=600)
                clients[path].create_adapter("a", schema)
            up: dict[str, list[float]] = {p: [] for p in SERVER_PATHS}
            down: dict[str, list[float]] = {p: [] for p in SERVER_PATHS}
            for round_index in tqdm(range(repeats), desc=f"server rounds, {mib} MiB", unit="round", disable=None):
                shift = round_index % len(SERVER_PATHS)
                order = SERVER_PATHS[shift:] + SERVER_PATHS[:shift]
                for path in order:
                    start = time.perf_counter()
                    clients[path].upload_bytes("a", payloads[round_index])
                    up[path].append((time.perf_counter() - start) * 1000)
                    start = time.perf_counter()
                    clients[path].download_tensors("a")
                    down[path].append((time.perf_counter() - start) * 1000)
            results[f"{mib}"] = {p: {"upload_ms": round(statistics.median(up[p]), 2),
                                     "download_ms": round(statistics.median(down[p]), 2),
                                     "upload_ms_per_round": [round(x, 1) for x in up[p]],
                                     "download_ms_per_round": [round(x, 1) for x in down[p]]} for p in SERVER_PATHS}
        finally:
            for client in clients.values():
                client.close()
            stop.set()
            for child in children:
                child.join(timeout=60)
    return results


def run(config: BlobPathsConfig) -> dict:
    with tempfile.TemporaryDirectory(prefix="loravault-blob-paths-", dir=os.environ.get("BENCH_DIR")) as scratch:
        before = machine()
        store = measure_store(config, Path(scratch)) if config.store else {}
        after_store = machine()
        server = measure_server(config, Path(scratch)) if config.server else {}
    return {"config": asdict(config), "machine_before": before, "machine_after_store": after_store,
            "machine_after": machine(), "store_write": store, "server": server}


def table(results: dict) -> str:
    lines = [f"{results['machine_before']['cpus']} CPUs, load average {results['machine_before']['loadavg_1m']} "
             f"before, {results['machine_after_store']['loadavg_1m']} after part 1, "
             f"{results['machine_after']['loadavg_1m']} after part 2.\n"]
    for size, by_path in results["store_write"].items():
        plain = by_path["plain"]["wall_ms"]
        rows = [[name, m["wall_ms"], m.get("cpu_ms", ""), f"{plain / m['wall_ms']:.2f}x"]
                for name, m in by_path.items()]
        lines.append(f"\nBlob-store write of {size} MiB, hash included (median ms):\n")
        lines.append(markdown_table(["path", "wall ms", "cpu ms", "speed vs plain"], rows))
    for size, by_path in results["server"].items():
        plain_up, plain_down = by_path["plain"]["upload_ms"], by_path["plain"]["download_ms"]
        rows = [[name, m["upload_ms"], f"{plain_up / m['upload_ms']:.2f}x", m["download_ms"],
                 f"{plain_down / m['download_ms']:.2f}x"] for name, m in by_path.items()]
        lines.append(f"\nWhole transfer of {size} MiB through the server (median ms):\n")
        lines.append(markdown_table(["path", "upload ms", "vs plain", "download ms", "vs plain"], rows))
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=BlobPathsConfig.repeats)
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=list(BlobPathsConfig.sizes_mib))
    parser.add_argument("--no-store", action="store_true", help="part 2 only")
    parser.add_argument("--no-server", action="store_true", help="part 1 only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results = run(BlobPathsConfig(sizes_mib=tuple(args.sizes_mib), repeats=args.repeats, store=not args.no_store,
                                  server=not args.no_server))
    text = table(results)
    write_results("blob-paths", results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
