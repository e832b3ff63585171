"""`python -m loravault.server serve|audit`: open the vault, load the base, listen, stop gracefully on SIGTERM;
and the offline audit-log commands (server/audit/commands.py).

The `loravault serve` and `loravault audit` commands of the CLI run this module, so the client never imports
the server. The environment variable LORAVAULT_DATABASE_URL (the database URL, password included, when
--database-url is not given: arguments are visible to every user in the process list) is read once, here in
main(), into the configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from loravault.core.base_layout import BaseLayout
from loravault.core.models import BaseModel, load_base
from loravault.proto.keys import public_key_dict

from .audit import AuditLog
from .audit.commands import add_audit_commands, run_audit_command
from .config import DEFAULT_MAX_ADAPTER_BYTES, MAX_CHUNK_BYTES, ServerConfig
from .erasure import ErasurePipeline, ProbeRunner
from .events import PurgeEvents
from .inference import InferenceConfig, InferenceEngine
from .inference.purge_watch import PurgeWatch
from .logs import configure_json_logging
from .rpc.app import create_server
from .rpc.state import ServerState
from .server_key import load_or_create_server_key
from .vault import Vault

__all__ = ["main", "serve", "READY_FILE"]

logger = logging.getLogger(__name__)
READY_FILE = "serve.json"  # written once the port is bound: {"port": N, "pid": P}
# the metadata database's URL when --database-url is not given: a password in it stays out of the process list
DATABASE_URL_ENV = "LORAVAULT_DATABASE_URL"


def serve(config: ServerConfig, *, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT (or `stop` is set), then let calls in flight finish for grace_seconds."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    base = load_base(config.base)
    vault = Vault.open(config.data_dir, base_fingerprint=base.fingerprint, database_url=config.database_url,
                       blobs=config.blobs, s3_endpoint=config.s3_endpoint)
    if vault.credentials.ensure_admin_token(config.admin_token_path):
        logger.info("wrote the admin token to %s (readable by its owner only)", config.admin_token_path)
    events = PurgeEvents()
    erasure = build_erasure_pipeline(config, vault=vault, base=base, events=events)
    inference, watch = None, None
    if config.inference is not None:
        inference = InferenceEngine(base, vault=vault, config=config.inference)
        events.subscribe(inference)
        inference.start()
        watch = PurgeWatch(inference, vault.adapters, events, interval_s=config.inference.purge_poll_s)
        watch.start()
    state = ServerState(vault=vault, base=BaseLayout.of(base),
                        max_chunk_bytes=MAX_CHUNK_BYTES, max_adapter_bytes=config.max_adapter_bytes,
                        base_model=base, erasure=erasure, inference=inference, events=events)
    server, port = create_server(config, state=state)
    server.start()
    _write_ready_file(config.data_dir, port)
    logger.info("serving base %s (%s) on %s:%d", config.base, base.fingerprint[:12], config.host, port)
    stop = stop or threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    state.health.enter_graceful_shutdown()
    logger.info("shutting down: %.0f s for calls in flight", config.grace_seconds)
    server.stop(config.grace_seconds).wait()
    if watch is not None:
        watch.close()
    if inference is not None:
        inference.close()
    vault.close()
    (config.data_dir / READY_FILE).unlink(missing_ok=True)


def build_erasure_pipeline(config: ServerConfig, *, vault: Vault, base: BaseModel,
                           events: PurgeEvents | None = None) -> ErasurePipeline:
    """The erasure pipeline over `vault`, signing with the deployment's server key (config.server_key, or the
    data folder's, created on first start), which the database must name (see Vault.claim_server_key); every
    committed erasure is announced on `events`."""
    signer = load_or_create_server_key(config.data_dir, key_file=config.server_key)
    if vault.credentials.claim_server_key(keyid=signer.public_key.keyid, public_key=public_key_dict(signer)):
        logger.info("recorded server key %s as this deployment's receipt key", signer.public_key.keyid[:12])
    audit = AuditLog(vault, signer=signer, checkpoint_every=config.erasure.checkpoint_every)
    probe = ProbeRunner(base, config=config.erasure.probe) if config.erasure.probe.enabled else None
    return ErasurePipeline(vault=vault, audit=audit, base_fingerprint=base.fingerprint, probe=probe,
                           config=config.erasure, events=events)


def _write_ready_file(data_dir: Path, port: int) -> None:
    path = data_dir / READY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"port": port, "pid": os.getpid()}))
    tmp.replace(path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loravault", description="loravault server commands")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the vault server")
    serve_cmd.add_argument("--data", type=Path, required=True, help="data folder (created if missing)")
    serve_cmd.add_argument("--port", type=int, default=50051, help="port to listen on (0 = any free port)")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve_cmd.add_argument("--base", default="tiny", help="tiny, smollm2-135m, or a local model folder")
    serve_cmd.add_argument("--database-url", default=None,
                           help=f"SQLAlchemy URL (default: ${DATABASE_URL_ENV}, else SQLite in --data)")
    serve_cmd.add_argument("--blobs", default=None, help="s3://bucket/prefix (default: blob files in --data)")
    serve_cmd.add_argument("--s3-endpoint", default=None, help="URL of an S3-compatible store (default: AWS)")
    serve_cmd.add_argument("--server-key", type=Path, default=None,
                           help="the deployment's signing key file, shared by its replicas (default: made in --data)")
    serve_cmd.add_argument("--max-concurrent-rpcs", type=int, default=64)
    serve_cmd.add_argument("--max-adapter-mib", type=int, default=DEFAULT_MAX_ADAPTER_BYTES >> 20,
                           help="the largest adapter anyone may create or upload (CreateAdapter, Upload)")
    serve_cmd.add_argument("--tls-cert", type=Path, default=None)
    serve_cmd.add_argument("--tls-key", type=Path, default=None)
    serve_cmd.add_argument("--tls-client-ca", type=Path, default=None, help="require client certificates (mTLS)")
    _add_inference_flags(serve_cmd)
    add_audit_commands(commands)
    return parser


def _add_inference_flags(serve_cmd: argparse.ArgumentParser) -> None:
    group = serve_cmd.add_argument_group("inference")
    group.add_argument("--no-inference", action="store_true", help="serve no Generate/Score (UNAVAILABLE)")
    group.add_argument("--inference-device", default="cpu", help="torch device of the engine (cpu, cuda, cuda:1)")
    group.add_argument("--inference-dtype", default="float32", help="float32, float16 or bfloat16")
    group.add_argument("--max-batch", type=int, default=32, help="sequences decoding together")
    group.add_argument("--max-waiting", type=int, default=256, help="queued requests before RESOURCE_EXHAUSTED")
    group.add_argument("--max-new-tokens", type=int, default=256, help="the largest max_new_tokens a request may ask")
    group.add_argument("--adapter-cache-mb", type=int, default=256, help="adapter weights held on the device")
    group.add_argument("--stream-interval-ms", type=float, default=20.0,
                       help="a request's tokens are sent together until this long after its previous message (0: "
                            "every token alone)")


def _inference_config(args: argparse.Namespace) -> InferenceConfig | None:
    if args.no_inference:
        return None
    return InferenceConfig(device=args.inference_device, dtype=args.inference_dtype, max_batch=args.max_batch,
                           max_waiting=args.max_waiting, max_waiting_per_tenant=max(1, args.max_waiting // 4),
                           max_new_tokens=args.max_new_tokens, default_new_tokens=min(64, args.max_new_tokens),
                           cache_bytes=args.adapter_cache_mb << 20, stream_interval_s=args.stream_interval_ms / 1000)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_json_logging()
    if args.command == "audit":
        return run_audit_command(args)
    config = ServerConfig(
        data_dir=args.data, base=args.base, blobs=args.blobs,
        database_url=args.database_url or os.environ.get(DATABASE_URL_ENV) or None,
        s3_endpoint=args.s3_endpoint, server_key=args.server_key, host=args.host, port=args.port,
        max_concurrent_rpcs=args.max_concurrent_rpcs, max_adapter_bytes=args.max_adapter_mib << 20,
        tls_cert=args.tls_cert, tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        inference=_inference_config(args),
    )
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
