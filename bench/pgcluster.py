"""A throwaway PostgreSQL 15 cluster for the tests and the scale-out benchmark: initdb in a temporary folder,
127.0.0.1 on a free port.

initdb refuses to run as root, so as root the cluster is made and run by an unprivileged system user: the
Debian package's `postgres` when it exists, else `loravault-pg`, created here with useradd. For the tests
durability is off (fsync, synchronous_commit, full_page_writes): they kill servers, never the machine, and a
cluster that lives one session needs no crash safety; the benchmark keeps it on (`durable=True`), as a
deployment would. Each test gets its own database, copied from a template that
the migrations already ran on (CREATE DATABASE ... TEMPLATE takes milliseconds); a test of the migrations
themselves uses an empty one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)
SUPERUSER = "loravault"
TEMPLATE = "loravault_template"


def find_pg_bin() -> Path:
    """The folder holding initdb and pg_ctl; RuntimeError naming the package to install when there is none."""
    for folder in PG_BIN_DIRS:
        if (Path(folder) / "initdb").is_file():
            return Path(folder)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL 15 is not installed (no initdb): apt-get install postgresql-15")


def _run_as() -> list[str]:
    """The command prefix that runs a PostgreSQL program as an unprivileged user (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "loravault-pg"):
        try:
            pwd.getpwnam(user)
            return ["runuser", "-u", user, "--"]
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "loravault-pg"],
                   check=True, capture_output=True)
    return ["runuser", "-u", "loravault-pg", "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """One running cluster; `create_database` hands out fresh databases, `stop` removes everything."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.bin = find_pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="loravault-pg-"))
        self.data = self.root / "data"
        self._as = _run_as()
        if self._as:
            user = pwd.getpwnam(self._as[2])
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.port = 0
        self._counter = 0

    def start(self) -> None:
        self._pg("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                 "--no-instructions", *([] if self.durable else ["--no-sync"]))
        for attempt in range(3):  # the free port may be taken between the probe and the bind
            self.port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                       "-c max_connections=300")
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            result = self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
                              "-w", "-t", "60", "start", check=False)
            if result.returncode == 0:
                return
            if attempt == 2:
                log = (self.root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"pg_ctl start failed: {result.stderr.decode(errors='replace')}\n{log}")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                               autocommit=True)

    def create_database(self, *, template: str | None = TEMPLATE) -> str:
        """A new database (a copy of the migrated template, or empty with template=None); its name."""
        self._counter += 1
        name = f"t{os.getpid()}_{self._counter}"
        source = "template0" if template is None else template
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.data.exists():
            self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [*self._as, str(self.bin / program), *args]
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, timeout=120, cwd=self.root)
        if check and result.returncode != 0:
            raise RuntimeError(f"{program} failed after {time.monotonic() - started:.1f} s: "
                               f"{result.stderr.decode(errors='replace')}")
        return result
