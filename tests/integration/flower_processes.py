"""Flower's deployment engine on loopback for tests: a SuperLink and SuperNodes as child processes, each
run with this test's interpreter, an isolated FLWR_HOME and free ports, stopped with SIGINT.

Flower starts helper processes by their console-script names (flwr-serverapp, flwr-clientapp,
flower-superexec); a folder of small scripts that run the entry points with `sys.executable` goes first on
PATH, so the whole engine runs in the interpreter that runs the test, in a CI venv and in a bare checkout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ENTRY_POINTS = {
    "flwr": "flwr.cli.app:app",
    "flower-superlink": "flwr.superlink.cli:flower_superlink",
    "flower-supernode": "flwr.supernode.cli:flower_supernode",
    "flower-superexec": "flwr.supercore.cli:flower_superexec",
    "flwr-serverapp": "flwr.superlink.cli:flwr_serverapp",
    "flwr-clientapp": "flwr.supernode.cli:flwr_clientapp",
    "flwr-simulation": "flwr.simulation.app:flwr_simulation",
}
OFFLINE = {"FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 60.0) -> None:
    """Until something accepts connections on 127.0.0.1:port (AssertionError after `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def write_entry_points(folder: Path) -> Path:
    """Scripts named like Flower's console scripts, each running its entry point in this interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in ENTRY_POINTS.items():
        module, function = target.split(":")
        script = folder / name
        script.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\nsys.exit({function}())\n")
        script.chmod(0o755)
    return folder


@dataclass
class Engine:
    """The processes one test started, and the environment they share."""

    home: Path
    env: dict[str, str]
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    @classmethod
    def create(cls, folder: Path) -> Engine:
        home = folder / "flwr-home"
        home.mkdir(parents=True)
        bin_dir = write_entry_points(folder / "bin")
        env = {**os.environ, **OFFLINE, "FLWR_HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        return cls(home=home, env=env)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115  (closed with the process)
        process = subprocess.Popen([str(Path(self.env["PATH"].split(os.pathsep)[0]) / args[0]), *args[1:]],
                                   env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append((name, process))
        return process

    def run(self, *args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        command = [str(Path(self.env["PATH"].split(os.pathsep)[0]) / args[0]), *args[1:]]
        return subprocess.run(command, env=self.env, cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def running(self, script: str) -> list[int]:
        """Pids of the live processes (zombies count as gone) that run this engine's console script `script`."""
        path = str(Path(self.env["PATH"].split(os.pathsep)[0]) / script)  # unique to this test's folder
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]  # after "pid (comm)"
                argv = [os.fsdecode(a) for a in (proc / "cmdline").read_bytes().split(b"\0")]
            except (OSError, IndexError):  # exited while we looked
                continue
            if state != "Z" and path in argv:
                found.append(int(proc.name))
        return found

    def wait_until_exited(self, script: str, *, timeout: float = 60.0) -> None:
        """Until no process runs this engine's console script `script` (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while self.running(script):
            assert time.monotonic() < deadline, f"{script} still runs after {timeout} s:\n{self.logs()}"
            time.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.home.glob("*.log"))

    def stop(self, *, grace: float = 20.0) -> None:
        """SIGINT to every process group this engine started, then SIGKILL to whatever is left after `grace`."""
        for _, process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + grace
        for _, process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
