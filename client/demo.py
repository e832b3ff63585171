"""`make demo`: a server on the embedded default base, two tenants, their adapters, versions and isolation.

It starts `python -m loravault.server serve` on a free loopback port in a scratch folder, talks to it only
through the SDK, and stops it with SIGTERM at the end.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from loravault.core import NotFoundError, load_base

from .sdk import VaultClient

__all__ = ["main"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(data: Path, base: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "loravault.server", "serve", "--data", str(data),
                                "--port", str(port), "--base", base], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (data / "serve.json").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start; run `python -m loravault.server serve` to see why")
        time.sleep(0.2)
    return process, f"127.0.0.1:{json.loads((data / 'serve.json').read_text())['port']}"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _tenant_adapter(base_name: str, seed: int):
    """A LoRA (r=8 on q and v) on a fresh copy of the base, with seeded non-zero weights."""
    torch.manual_seed(seed)
    model = load_base(base_name).model
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                        init_lora_weights=False)
    return get_peft_model(model, config).eval()


def run(base: str, data: Path) -> None:
    _say(f"== starting loravault serve --base {base} in {data}")
    process, target = _start_server(data, base)
    try:
        admin_token = (data / "admin.token").read_text().strip()
        with VaultClient(target, token=admin_token) as admin:
            identity = admin.whoami()
            _say(f"   base {identity.base_name}, fingerprint {identity.base_fingerprint[:16]}…")
            tokens = {}
            for tenant in ("acme", "globex"):
                admin.create_tenant(tenant)
                tokens[tenant] = admin.issue_token(tenant=tenant, label="demo").token
                _say(f"== tenant {tenant} created, token issued")
        for seed, tenant in enumerate(("acme", "globex")):
            with VaultClient(target, token=tokens[tenant]) as client:
                for version_seed in (seed * 10, seed * 10 + 1):
                    version = client.upload("assistant", _tenant_adapter(base, version_seed))
                    _say(f"   {tenant}/assistant v{version.number}: {version.size / 1e6:.2f} MB, "
                         f"sha256 {version.blob_sha256[:12]}…")
                for v in client.versions("assistant"):
                    _say(f"   {tenant}/assistant v{v.number} kind={v.kind} parent={v.parent}")
        with VaultClient(target, token=tokens["acme"]) as acme:
            original = _tenant_adapter(base, 1)
            loaded = acme.load_peft("assistant", load_base(base).model)
            ids = torch.tensor([[1, 2, 3, 4, 5]])
            with torch.no_grad():
                same = torch.equal(original(ids).logits, loaded(ids).logits)
            _say(f"== acme downloads its head into a PeftModel: logits identical to the upload: {same}")
            try:
                acme.get_adapter("assistant", tenant="globex")
            except NotFoundError as error:
                _say(f"== acme asks for globex's adapter: NotFoundError ({error})")
            rolled = acme.rollback("assistant", 1)
            _say(f"== acme rolls back: v{rolled.number} points at v1's bytes {rolled.blob_sha256[:12]}…")
        with VaultClient(target, token=admin_token) as admin:
            report = admin.fsck()
            _say(f"== admin fsck: {report.checked_versions} versions checked, clean={report.clean}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    _say("== server stopped (SIGTERM)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="loravault demo")
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--data", type=Path, default=None, help="data folder (default: a scratch folder)")
    args = parser.parse_args(argv)
    if args.data is not None:
        run(args.base, args.data)
        return 0
    with tempfile.TemporaryDirectory(prefix="loravault-demo-") as scratch:
        run(args.base, Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
