"""deploy/compose.federation.yaml stays in step with Flower and the apps: the SuperLink and SuperNodes start
with arguments Flower's own parsers accept, on the ports they point each other at, each SuperNode with its
own partition, offline, stopped with SIGINT, and next to the vault service they commit to."""

from __future__ import annotations

from pathlib import Path

import yaml
from flwr.common.config import parse_config_args
from flwr.superlink.cli.flower_superlink import _parse_args_run_superlink
from flwr.supernode.cli.flower_supernode import _parse_args_run_supernode

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.federation.yaml").read_text())


def _services(prefix: str) -> dict[str, dict]:
    return {name: s for name, s in COMPOSE["services"].items() if name.startswith(prefix)}


def test_the_federation_includes_the_vault_it_commits_to():
    assert COMPOSE["include"] == ["compose.yaml"]
    included = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    (superlink,) = _services("superlink").values()
    assert "vault-1" in included and superlink["depends_on"]["vault-1"]["condition"] == "service_healthy"
    assert {"fed-token", "coordinator-key"} == set(superlink["secrets"])  # the coordinator signs rounds there


def test_the_superlink_arguments_parse_and_it_listens_where_the_supernodes_connect():
    (superlink,) = _services("superlink").values()
    command = superlink["entrypoint"]
    assert command[0] == "flower-superlink"
    args = _parse_args_run_superlink().parse_args(command[1:])
    assert args.insecure and args.isolation == "subprocess"
    assert superlink["ports"] == [f"127.0.0.1:{args.port}:{args.port}"]  # loopback only
    for node in _services("supernode-").values():
        node_args = _parse_args_run_supernode().parse_args(node["entrypoint"][1:])
        assert node_args.superlink == f"superlink:{args.port}"


def test_each_supernode_has_its_own_partition_and_identity():
    nodes = _services("supernode-")
    assert len(nodes) >= 2
    configs = []
    for node in nodes.values():
        assert node["entrypoint"][0] == "flower-supernode"
        args = _parse_args_run_supernode().parse_args(node["entrypoint"][1:])
        configs.append(parse_config_args([args.node_config]))
    assert sorted(c["partition-id"] for c in configs) == list(range(len(nodes)))
    assert {c["num-partitions"] for c in configs} == {len(nodes)}
    assert len({c["client-name"] for c in configs}) == len(nodes)


def test_flower_services_run_offline_and_stop_with_sigint():
    for name, service in {**_services("superlink"), **_services("supernode-")}.items():
        env = service["environment"]
        assert env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1", name
        assert env["FLWR_TELEMETRY_ENABLED"] == "0" and env["FLWR_DISABLE_UPDATE_CHECK"] == "1", name
        assert service["stop_signal"] == "SIGINT" and service["read_only"] is True, name
