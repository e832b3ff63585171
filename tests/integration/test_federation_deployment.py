"""Flower's deployment engine on loopback: `flower-superlink`, two `flower-supernode`s (each with its own
partition in --node-config) and a loravault server; `flwr run` of this repository's app, the rounds in the
vault, and every process stopped with SIGINT."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loravault.core import NotFoundError

from .erasure_kit import erasure_server  # noqa: F401  (fixture)
from .federation_kit import SHARED, make_federation
from .flower_processes import Engine, free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]


def _versions(client) -> int:
    """How many versions the shared adapter has (0 until the ServerApp has created it)."""
    try:
        return len(client.versions(SHARED))
    except NotFoundError:
        return 0


def _run_config(settings: dict) -> str:
    """`flwr run --run-config`'s TOML-ish form: strings quoted, numbers bare."""
    return " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in settings.items())


def test_flwr_run_on_superlink_and_two_supernodes_commits_the_rounds(erasure_server, tmp_path):
    fed = make_federation(erasure_server, tmp_path / "fed")
    engine = Engine.create(tmp_path)
    link, node_ports = free_port(), (free_port(), free_port())  # the SuperLink serves all its APIs on one port
    (engine.home / "config.toml").write_text(
        '[superlink]\ndefault = "test"\n\n[superlink.test]\n'
        f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    try:
        engine.start("superlink", "flower-superlink", "--insecure", "--host", "127.0.0.1", "--port", str(link),
                     "--isolation", "subprocess")
        wait_for_port(link)
        for partition, port in enumerate(node_ports):
            engine.start(f"supernode-{partition}", "flower-supernode", "--insecure", "--superlink",
                         f"127.0.0.1:{link}", "--host", "127.0.0.1", "--port", str(port),
                         "--node-config", f"partition-id={partition} num-partitions=2")
        settings = fed.run_config(erasure_server.target, min_nodes=2, min_replies=2, num_server_rounds=2, local_steps=1)
        # submit the run and return (no --stream: how long the log stream lingers is Flower's business), then
        # wait for the vault to hold the rounds; bounded, and generous for a loaded machine (~80 s when idle)
        started = engine.run("flwr", "run", str(ROOT), "test", "--run-config", _run_config(settings),
                             cwd=ROOT, timeout=120)
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:] + engine.logs()
        deadline = time.monotonic() + 420
        report = fed.folder / "report.json"  # the ServerApp writes it last: then it has finished and exits
        while not (_versions(fed.client) >= 3 and report.exists()) and time.monotonic() < deadline:
            time.sleep(2)
        engine.wait_until_exited("flwr-serverapp")  # the ServerApp exits before its SuperLink is stopped
        rounds = fed.client.rounds(SHARED)
        assert [r.manifest.round for r in rounds] == [1, 2], engine.logs()
        assert sorted(p.client for p in rounds[0].manifest.participants) == ["client-0", "client-1"]
    finally:
        engine.stop()
    assert all(process.poll() is not None for _, process in engine.processes)
