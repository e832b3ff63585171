"""The `loravault` command line: tenant and admin subcommands over the SDK; `serve` runs the server module.

    loravault --server 127.0.0.1:50051 --token-file data/admin.token tenants create acme
    loravault --token $TOKEN adapters upload support ./my-peft-folder
    loravault serve --data ./data --port 50051 --base smollm2-135m

The server commands run `python -m loravault.server` in place of this process, so the client part never
imports the server part.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

from loravault.core.errors import InvalidArgumentError, LoravaultError
from loravault.core.samples import Sample
from loravault.core.tensors import encode_tensors

from loravault.proto.keys import (
    generate_private_key_pem,
    key_id,
    load_private_key,
    public_key_dict,
    save_private_key,
    signer_from_pem,
)

from .health import check_health
from .sdk import VaultClient

__all__ = ["main", "build_parser"]

SERVER_COMMANDS = ("serve", "audit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loravault", description="loravault: LoRA adapter vault client")
    parser.add_argument("--server", default=os.environ.get("LORAVAULT_SERVER", "127.0.0.1:50051"),
                        help="host:port of the server (env LORAVAULT_SERVER)")
    parser.add_argument("--token", default=os.environ.get("LORAVAULT_TOKEN"), help="bearer token (env LORAVAULT_TOKEN)")
    parser.add_argument("--token-file", type=Path, help="read the bearer token from this file")
    parser.add_argument("--tenant", default="", help="tenant to act on (admins only; tenants act on themselves)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    groups = parser.add_subparsers(dest="group", required=True)
    groups.add_parser("serve", help="run the server (see `loravault serve --help`)", add_help=False)
    groups.add_parser("audit", help="verify the audit log offline", add_help=False)
    groups.add_parser("whoami", help="show the caller's role, tenant and the server's base model")
    health = groups.add_parser("health", help="gRPC health check (no token): exit 0 when SERVING")
    health.add_argument("--service", default="", help="a service's full name (default: the whole server)")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")

    tenants = groups.add_parser("tenants", help="create, list and delete tenants (admin)").add_subparsers(
        dest="action", required=True)
    tenants.add_parser("create").add_argument("name")
    tenants.add_parser("list")
    tenants.add_parser("delete").add_argument("name")

    tokens = groups.add_parser("tokens", help="issue, list and revoke tokens").add_subparsers(dest="action", required=True)
    tokens.add_parser("issue").add_argument("--label", default="")
    tokens.add_parser("list")
    tokens.add_parser("revoke").add_argument("token_id")

    keys = groups.add_parser("keys", help="register Ed25519 signing keys").add_subparsers(dest="action", required=True)
    generate = keys.add_parser("generate", help="make a key pair locally: PATH (private, 0600) and PATH.pub.json")
    generate.add_argument("path", type=Path)
    signed = argparse.ArgumentParser(add_help=False)
    signed.add_argument("--key", dest="signing_keys", type=Path, action="append", default=[],
                        help="a current private key signing the rotation (repeat up to the threshold); "
                             "needed once the tenant has keys, unless the caller is an admin")
    keys.add_parser("add", parents=[signed]).add_argument("public_key_file", type=Path,
                                                           help="securesystemslib public key JSON")
    keys.add_parser("list")
    revoke = keys.add_parser("revoke", parents=[signed])
    revoke.add_argument("keyid")
    revoke.add_argument("--threshold", type=int, default=None, help="the threshold after the revocation")
    keys.add_parser("threshold", parents=[signed]).add_argument("threshold", type=int)

    adapters = groups.add_parser("adapters", help="adapters and their versions").add_subparsers(
        dest="action", required=True)
    adapters.add_parser("create", help="create from a PEFT folder's schema").add_argument("name")
    adapters.choices["create"].add_argument("peft_folder", type=Path)
    adapters.add_parser("list")
    adapters.add_parser("versions").add_argument("name")
    upload = adapters.add_parser("upload", help="upload a PEFT folder as a new version (creates the adapter)")
    upload.add_argument("name")
    upload.add_argument("peft_folder", type=Path)
    download = adapters.add_parser("download", help="write a version's safetensors bytes to a file")
    download.add_argument("name")
    download.add_argument("output", type=Path)
    download.add_argument("--version", type=int, default=0, help="0 = head")
    export = adapters.add_parser("export", help="write a version as a PEFT folder")
    export.add_argument("name")
    export.add_argument("folder", type=Path)
    export.add_argument("--version", type=int, default=0, help="0 = head")
    rollback = adapters.add_parser("rollback", help="make an older version the head again")
    rollback.add_argument("name")
    rollback.add_argument("to_version", type=int)
    adapters.add_parser("delete").add_argument("name")

    erase = groups.add_parser("erase", help="forget training samples from an adapter (computed here, signed, verified)")
    erase.add_argument("name", help="the adapter")
    erase.add_argument("--train", type=Path, required=True, help="JSON lines {id, prompt, response}: the training set")
    erase.add_argument("--forget", action="append", required=True, help="a sample id to forget (repeatable)")
    erase.add_argument("--key", type=Path, action="append", required=True, help="private signing key (repeatable)")
    erase.add_argument("--reference", type=Path, help="JSON lines of never-trained samples, for the calibrated step")
    erase.add_argument("--base", help="base model to load here (default: the server's base name)")
    erase.add_argument("--receipts", type=Path, default=Path.home() / ".loravault" / "receipts")
    erase.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "loravault" / "curvature")

    _add_inference_commands(groups)

    admin = groups.add_parser("admin", help="operator commands").add_subparsers(dest="action", required=True)
    admin.add_parser("fsck", help="check every version's blob").add_argument("--repair", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SERVER_COMMANDS:
        os.execv(sys.executable, [sys.executable, "-m", "loravault.server", *argv])
    args = build_parser().parse_args(argv)
    if args.group == "keys" and args.action == "generate":
        _print(_generate_key(args.path), as_json=args.json)
        return 0
    if args.group == "health":
        return _health(args)
    token = args.token or (args.token_file.read_text().strip() if args.token_file else None)
    if not token:
        sys.stderr.write("loravault: no token: pass --token, --token-file or set LORAVAULT_TOKEN\n")
        return 2
    try:
        with VaultClient(args.server, token=token) as client:
            result = _run(client, args)
    except LoravaultError as error:
        sys.stderr.write(f"loravault: {type(error).__name__}: {error}\n")
        return 1
    if result is not None or args.json:
        _print(result, as_json=args.json)
    return 0


def _health(args: argparse.Namespace) -> int:
    try:
        status = check_health(args.server, service=args.service, timeout=args.timeout)
    except LoravaultError as error:
        sys.stderr.write(f"loravault: {type(error).__name__}: {error}\n")
        return 1
    sys.stdout.write((json.dumps({"status": status}) if args.json else status) + "\n")
    return 0 if status == "SERVING" else 1


def _run(client: VaultClient, args: argparse.Namespace) -> Any:
    group, action, tenant = args.group, getattr(args, "action", None) or "", args.tenant
    if group == "whoami":
        return client.whoami()
    if group == "tenants":
        return {"create": lambda: client.create_tenant(args.name), "list": client.list_tenants,
                "delete": lambda: {"purged_blobs": client.delete_tenant(args.name)}}[action]()
    if group == "tokens":
        return {"issue": lambda: client.issue_token(tenant=tenant, label=args.label),
                "list": lambda: client.list_tokens(tenant=tenant),
                "revoke": lambda: client.revoke_token(args.token_id, tenant=tenant)}[action]()
    if group == "keys":
        return _keys(client, args, tenant)
    if group == "admin":
        return client.fsck(repair=args.repair)
    if group == "erase":
        return _erase(client, args)
    if group == "generate":
        return _generate(client, args)
    if group == "score":
        return client.score(args.adapter or None, args.prompt, args.continuation, version=args.version,
                            tenant=tenant)
    return _run_adapters(client, args, tenant)


def _keys(client: VaultClient, args: argparse.Namespace, tenant: str) -> Any:
    """Key commands; with --key, changes are rotations signed by those keys (see client/key_changes.py)."""
    if args.action == "list":
        return client.list_keys(tenant=tenant)
    signers = [load_private_key(path) for path in args.signing_keys]
    if args.action == "add":
        return client.add_key(json.loads(args.public_key_file.read_text()), signers=signers, tenant=tenant)
    if args.action == "revoke":
        return client.revoke_key(args.keyid, signers=signers, threshold=args.threshold, tenant=tenant)
    return client.set_threshold(args.threshold, signers=signers, tenant=tenant)


def _add_inference_commands(groups: Any) -> None:
    generate = groups.add_parser("generate", help="stream a completion from an adapter on the server's base model")
    generate.add_argument("adapter", help="the adapter ('' = the base model alone)")
    generate.add_argument("prompt")
    generate.add_argument("--version", type=int, default=0, help="adapter version (0 = head)")
    generate.add_argument("--max-new-tokens", type=int, default=0, help="0 = the server's default")
    generate.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    generate.add_argument("--top-p", type=float, default=1.0)
    generate.add_argument("--top-k", type=int, default=0)
    generate.add_argument("--seed", type=int, default=0, help="0 = random; any other value is reproducible")
    generate.add_argument("--stop", action="append", default=[], help="stop before this string (repeatable)")
    score = groups.add_parser("score", help="log-probabilities of a continuation after a prompt")
    score.add_argument("adapter", help="the adapter ('' = the base model alone)")
    score.add_argument("prompt")
    score.add_argument("continuation")
    score.add_argument("--version", type=int, default=0, help="adapter version (0 = head)")


def _generate(client: VaultClient, args: argparse.Namespace) -> Any:
    """Print the deltas as they arrive (plain mode), then the final record."""
    generation = client.generate(args.adapter or None, args.prompt, version=args.version,
                                 max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                                 top_k=args.top_k, seed=args.seed, stop=tuple(args.stop), tenant=args.tenant)
    for text in generation:
        if not args.json:
            sys.stdout.write(text)
            sys.stdout.flush()
    if not args.json:
        sys.stdout.write("\n")
        done = generation.finished()
        sys.stderr.write(f"[{done.finish_reason}: {done.completion_tokens} tokens, version {done.version}]\n")
        return None
    return generation.done


def _erase(client: VaultClient, args: argparse.Namespace) -> dict[str, Any]:
    from transformers.utils import logging as transformers_logging  # NOTE: transformers, peft and the eraser

    from loravault.core import load_base  # load only for this command

    from .erasure import erase_samples, eraser_for_head

    transformers_logging.disable_progress_bar()  # the CLI prints one JSON or text record, no loading bar
    base = load_base(args.base or client.whoami().base_name, attn_implementation="eager")
    eraser = eraser_for_head(client, args.name, base=base, train=_read_samples(args.train),
                             reference=_read_samples(args.reference) if args.reference else (), cache_dir=args.cache,
                             tenant=args.tenant)
    outcome = erase_samples(client, args.name, eraser=eraser, base_fingerprint=base.fingerprint,
                            forget_ids=args.forget, signers=[load_private_key(path) for path in args.key],
                            receipts_dir=args.receipts, tenant=args.tenant)
    return {"version": outcome.version.number, "blob_sha256": outcome.version.blob_sha256,
            "log_index": outcome.receipt.log_index, "receipt": str(outcome.receipt_path),
            "forget_loss_before": round(outcome.forget_loss_before, 4),
            "forget_loss_after": round(outcome.forget_loss_after, 4), "method": outcome.report.method,
            "step": outcome.report.step, "seconds": round(outcome.report.wall_seconds, 2)}


def _read_samples(path: Path) -> list[Sample]:
    """Samples from JSON lines with id, prompt and response."""
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
                samples.append(Sample(id=str(row["id"]), prompt=str(row["prompt"]), response=str(row["response"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidArgumentError(f"{path}:{number}: expected {{id, prompt, response}} ({exc})") from exc
    return samples


def _generate_key(path: Path) -> dict[str, str]:
    """A new Ed25519 key pair; the private key never leaves this machine, the public one goes to `keys add`."""
    pem = generate_private_key_pem()
    save_private_key(path, pem)
    public = public_key_dict(signer_from_pem(pem))
    public_path = path.with_name(path.name + ".pub.json")
    public_path.write_text(json.dumps(public, indent=2, sort_keys=True) + "\n")
    return {"keyid": key_id(public), "private_key": str(path), "public_key": str(public_path)}


def _run_adapters(client: VaultClient, args: argparse.Namespace, tenant: str) -> Any:
    action = args.action
    if action == "create":
        from loravault.core.peft_format import read_peft_folder  # NOTE: peft loads only for this command

        schema, _ = read_peft_folder(args.peft_folder, base_fingerprint=client.whoami().base_fingerprint)
        return client.create_adapter(args.name, schema, tenant=tenant)
    if action == "list":
        return client.list_adapters(tenant=tenant)
    if action == "versions":
        from .rounds import versions_with_provenance

        return versions_with_provenance(client, args.name, tenant=tenant)
    if action == "upload":
        return client.upload(args.name, args.peft_folder, tenant=tenant)
    if action == "download":
        _, version, tensors = client.download_tensors(args.name, version=args.version, tenant=tenant)
        args.output.write_bytes(encode_tensors(tensors))
        return version
    if action == "export":
        return client.download(args.name, args.folder, version=args.version, tenant=tenant)
    if action == "rollback":
        return client.rollback(args.name, args.to_version, tenant=tenant)
    return {"purged_blobs": client.delete_adapter(args.name, tenant=tenant)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "DESCRIPTOR"):
        return MessageToDict(value, preserving_proto_field_name=True)
    return value


def _print(result: Any, *, as_json: bool) -> None:
    plain = _plain(result)
    if as_json or not isinstance(plain, list):
        sys.stdout.write(json.dumps(plain, indent=None if as_json else 2, default=str) + "\n")
        return
    for row in plain:
        sys.stdout.write((json.dumps(row, default=str) if isinstance(row, (dict, list)) else str(row)) + "\n")
