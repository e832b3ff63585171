"""`python -m loravault.server audit verify|export|checkpoint`: the offline audit commands (the CLI forwards
`loravault audit ...` here). They write their report to stdout and return the process exit code.

    python -m loravault.server audit verify --data DIR            # chain, receipts, checkpoints
    python -m loravault.server audit export --data DIR --out log.jsonl
    python -m loravault.server audit verify --export log.jsonl --server-key server_ed25519.pub.json
    python -m loravault.server audit checkpoint --data DIR        # sign one now (server stopped)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from loravault.core.errors import LoravaultError

from ..server_key import load_or_create_server_key
from .export import read_data_folder, read_export, write_export
from .log import AuditLog
from .verify import check_log

__all__ = ["add_audit_commands", "run_audit_command"]


def add_audit_commands(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser("audit", help="verify, export or checkpoint the erasure audit log")
    actions = audit.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", help="check the hash chain, receipts and checkpoints offline")
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="the server's data folder")
    source.add_argument("--export", type=Path, help="a JSON-lines export (audit export)")
    verify.add_argument("--server-key", type=Path, default=None,
                        help="the server public key you trust (JSON); default: the data folder's or the export's")
    verify.add_argument("--database-url", default=None)
    export = actions.add_parser("export", help="write the log as JSON lines")
    export.add_argument("--data", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--database-url", default=None)
    checkpoint = actions.add_parser("checkpoint", help="sign a checkpoint of the log now (server stopped)")
    checkpoint.add_argument("--data", type=Path, required=True)
    checkpoint.add_argument("--base", default="tiny", help="the base the data folder serves (for the vault)")


def run_audit_command(args: argparse.Namespace) -> int:
    try:
        return {"verify": _verify, "export": _export, "checkpoint": _checkpoint}[args.action](args)
    except LoravaultError as exc:
        sys.stderr.write(f"audit {args.action}: {type(exc).__name__}: {exc}\n")
        return 2


def _verify(args: argparse.Namespace) -> int:
    if args.data is not None:
        snapshot = read_data_folder(args.data, database_url=args.database_url)
    else:
        snapshot = read_export(args.export)
    key = json.loads(args.server_key.read_text()) if args.server_key else snapshot.server_key
    report = check_log(snapshot.entries, receipts=snapshot.receipts, checkpoints=snapshot.checkpoints,
                       server_key=key)
    sys.stdout.write(
        f"entries {report.entries}, head {report.head_hash}, receipts {report.receipts}, "
        f"checkpoints {report.checkpoints}: {'OK' if report else 'FAILED'}\n")
    for problem in report.problems:
        sys.stdout.write(f"  {problem}\n")
    return 0 if report else 1


def _export(args: argparse.Namespace) -> int:
    count = write_export(read_data_folder(args.data, database_url=args.database_url), args.out)
    sys.stdout.write(f"wrote {count} entries to {args.out}\n")
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    from loravault.core.models import load_base  # NOTE: only to learn the fingerprint the vault opens with

    from ..vault import Vault

    with Vault.open(args.data, base_fingerprint=load_base(args.base).fingerprint) as vault:
        log = AuditLog(vault, signer=load_or_create_server_key(args.data))
        stored = log.checkpoint_now(time=int(time.time()))
    sys.stdout.write(f"checkpoint at size {stored.size}, head {stored.head_hash}\n")
    return 0
