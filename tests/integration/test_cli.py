"""The `loravault` command line against a real server: tenant and admin subcommands end to end."""

import json
import socket
import subprocess
import sys
from dataclasses import dataclass

import pytest

from loravault.client.cli import main

from .conftest import peft_tiny


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def database_url() -> None:
    """SQLite only: the CLI's parsing and printing is what these test; the RPCs behind them run on PostgreSQL
    in the other integration tests, so they stay on SQLite (trimmed for the make-test budget)."""
    return None


@pytest.fixture
def cli(capsys):
    """Run `loravault ...` in this process (the entry point itself is tested once as a subprocess below)."""

    def run(server, *args, token=None, check=True):
        capsys.readouterr()
        code = main(["--server", server.target, "--token", token or server.admin_token, "--json", *args])
        out, err = capsys.readouterr()
        if check:
            assert code == 0, err
        return Result(code, out, err)

    return run


def test_installed_entry_point_runs_as_a_program(server):
    command = [sys.executable, "-m", "loravault.client", "--server", server.target, "--token", server.admin_token,
               "--json", "whoami"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout)["role"] == "admin"


@pytest.mark.timeout(240)
def test_cli_tenant_workflow(server, tmp_path, cli):
    assert json.loads(cli(server, "tenants", "create", "acme").stdout) == "acme"
    token = json.loads(cli(server, "--tenant", "acme", "tokens", "issue", "--label", "ci").stdout)["token"]
    model = peft_tiny(seed=3)
    model.save_pretrained(tmp_path / "peft")
    (tmp_path / "peft" / "loravault.json").write_text(json.dumps({"base_fingerprint": server.fingerprint}))

    uploaded = json.loads(cli(server, "adapters", "upload", "support", str(tmp_path / "peft"), token=token).stdout)
    assert uploaded["number"] == 1
    cli(server, "adapters", "upload", "support", str(tmp_path / "peft"), token=token)
    versions = json.loads(cli(server, "adapters", "versions", "support", token=token).stdout)
    assert [v["number"] for v in versions] == [1, 2]
    rolled = json.loads(cli(server, "adapters", "rollback", "support", "1", token=token).stdout)
    assert rolled["kind"] == "rollback"

    cli(server, "adapters", "export", "support", str(tmp_path / "out"), "--version", "1", token=token)
    assert (tmp_path / "out" / "adapter_model.safetensors").read_bytes() == \
        (tmp_path / "peft" / "adapter_model.safetensors").read_bytes()
    cli(server, "adapters", "download", "support", str(tmp_path / "raw.safetensors"), token=token)
    assert (tmp_path / "raw.safetensors").stat().st_size == uploaded["size"]

    tenants = json.loads(cli(server, "tenants", "list").stdout)
    assert tenants == ["acme"]
    fsck = json.loads(cli(server, "admin", "fsck").stdout)
    assert fsck["clean"] is True and fsck["checked_versions"] == 3


def test_cli_reports_errors_with_their_class_and_exit_code(server, cli):
    cli(server, "tenants", "create", "acme")
    token = json.loads(cli(server, "--tenant", "acme", "tokens", "issue").stdout)["token"]
    result = cli(server, "adapters", "versions", "missing", token=token, check=False)
    assert result.returncode == 1
    assert "NotFoundError" in result.stderr and "missing" in result.stderr
    result = cli(server, "tenants", "list", token=token, check=False)
    assert result.returncode == 1 and "PermissionDeniedError" in result.stderr


def test_cli_generates_a_key_and_registers_it(server, tmp_path, cli):
    cli(server, "tenants", "create", "acme")
    token = json.loads(cli(server, "--tenant", "acme", "tokens", "issue").stdout)["token"]
    made = json.loads(cli(server, "keys", "generate", str(tmp_path / "signing"), token=token).stdout)
    assert (tmp_path / "signing").stat().st_mode & 0o777 == 0o600
    added = json.loads(cli(server, "keys", "add", made["public_key"], token=token).stdout)
    assert added["keyid"] == made["keyid"] and added["status"] == "active"
    keys, threshold = json.loads(cli(server, "keys", "list", token=token).stdout)
    assert [k["keyid"] for k in keys] == [made["keyid"]] and threshold == 1


def test_health_answers_serving_without_a_token(server, capsys):
    assert main(["--server", server.target, "health"]) == 0
    assert capsys.readouterr().out.strip() == "SERVING"
    assert main(["--server", server.target, "--json", "health", "--service", "loravault.v1.Adapters"]) == 0
    assert json.loads(capsys.readouterr().out) == {"status": "SERVING"}


def test_health_fails_for_an_unknown_service_and_an_unreachable_server(server, capsys):
    assert main(["--server", server.target, "health", "--service", "no.such.Service"]) == 1
    assert "NotFoundError" in capsys.readouterr().err
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["--server", f"127.0.0.1:{port}", "health", "--timeout", "2"]) == 1
    assert "UnavailableError" in capsys.readouterr().err


def test_health_answers_not_serving_once_shutdown_begins(server, capsys):
    assert server.state is not None
    server.state.health.enter_graceful_shutdown()  # what serve() does first on SIGTERM
    assert main(["--server", server.target, "health"]) == 1
    assert capsys.readouterr().out.strip() == "NOT_SERVING"


def test_cli_key_changes_after_the_first_key_are_signed_rotations(server, tmp_path, cli):
    cli(server, "tenants", "create", "acme")
    token = json.loads(cli(server, "--tenant", "acme", "tokens", "issue").stdout)["token"]
    for name in ("first", "second"):
        cli(server, "keys", "generate", str(tmp_path / f"{name}.key"), token=token)
    cli(server, "keys", "add", str(tmp_path / "first.key.pub.json"), token=token)
    refused = cli(server, "keys", "add", str(tmp_path / "second.key.pub.json"), token=token, check=False)
    assert refused.returncode == 1 and "PermissionDeniedError" in refused.stderr
    cli(server, "keys", "add", str(tmp_path / "second.key.pub.json"), "--key", str(tmp_path / "first.key"),
        token=token)
    cli(server, "keys", "threshold", "2", "--key", str(tmp_path / "first.key"), token=token)
    listed = json.loads(cli(server, "keys", "list", token=token).stdout)
    assert listed[1] == 2 and [k["status"] for k in listed[0]] == ["active", "active"]
