"""The federation's ServerApp (Flower Message API): the coordinator, which runs the rounds with VaultStrategy
and commits each one to the vault as a signed federation-round version, through the SDK as the federation's
tenant.

On start it reads the shared adapter's head from the vault (creating the adapter with version 1 = the FFA
initialisation, A from the seed and B = 0, the first time), so a federation resumes where it stopped. With no
vault configured the rounds run and nothing is committed.

    flwr run . --run-config "vault-address='127.0.0.1:50051' token-file='fed.token' key-files='coord.key'"
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from loravault.client import VaultClient
from loravault.core import BaseModel, load_base
from loravault.core.adapter_schema import AdapterSchema
from loravault.core.errors import NotFoundError
from loravault.proto.keys import load_private_key

from . import keys
from .config import RunConfig
from .provenance import commit_round
from .strategy import RoundOutcome, RoundRecord, VaultStrategy
from .task import initial_adapter

__all__ = ["app", "make_server_app", "run_federation"]

logger = logging.getLogger(__name__)


def make_server_app(overrides: Mapping[str, Any] | None = None) -> ServerApp:
    """A ServerApp whose run config is Flower's with `overrides` on top, read once at start."""
    extra = dict(overrides or {})
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        run_federation(grid, RunConfig.from_flower({**context.run_config, **extra}))

    return server_app


@contextlib.contextmanager
def _vault(config: RunConfig) -> Iterator[VaultClient | None]:
    if not config.vault.vault_address:
        yield None
        return
    token = Path(config.vault.token_file).read_text().strip()
    with VaultClient(config.vault.vault_address, token=token) as client:
        yield client


def _shared_adapter(vault: VaultClient | None, base: BaseModel, config: RunConfig
                    ) -> tuple[AdapterSchema, dict[str, Any]]:
    """The vault's head of the shared adapter, or version 1 (the FFA initialisation) when there is none."""
    schema, tensors = initial_adapter(base, config.training)
    if vault is None:
        return schema, tensors
    name = config.vault.adapter
    try:
        head = vault.get_adapter(name).head_version
    except NotFoundError:
        head = vault.create_adapter(name, schema).head_version
    if head == 0:
        vault.upload_tensors(name, tensors, parent_version=0)
        logger.info("shared adapter %s: version 1 is the initialisation (seed %d)", name, config.training.seed)
        return schema, tensors
    info, version, found = vault.download_tensors(name)
    logger.info("shared adapter %s: resuming from v%d", name, version.number)
    return info.schema, {k: v.float() for k, v in found.items()}


def run_federation(grid: Grid, config: RunConfig) -> list[RoundRecord]:
    """Run every round; returns the per-round records (also written to outputs.report_file when set)."""
    base = load_base(config.training.base)
    with _vault(config) as vault:
        schema, tensors = _shared_adapter(vault, base, config)
        signers = [load_private_key(Path(p)) for p in config.vault.key_paths]
        server_key = vault.server_key() if vault is not None else None

        def commit(outcome: RoundOutcome) -> tuple[int, float]:
            assert vault is not None  # the strategy gets `commit` only with a vault (below)
            committed = commit_round(vault, adapter=config.vault.adapter, signers=signers,
                                     round_number=outcome.round, aggregate=outcome.tensors, report=outcome.report,
                                     participants=outcome.participants, failures=outcome.failures,
                                     server_key=server_key)
            logger.info("round %d committed as v%d (audit index %d)", outcome.round, committed.version,
                        committed.log_index)
            return committed.version, committed.seconds

        strategy = VaultStrategy(schema=schema, rounds=config.rounds, commit=commit if vault is not None else None)
        method = ConfigRecord({keys.METHOD: config.rounds.aggregation})
        strategy.start(grid=grid, initial_arrays=ArrayRecord(tensors), num_rounds=config.rounds.num_server_rounds,
                       timeout=config.rounds.round_timeout, train_config=method, evaluate_config=method)
    if config.outputs.report_file:
        report = {"config": dataclasses.asdict(config), "rounds": [dataclasses.asdict(r) for r in strategy.history]}
        Path(config.outputs.report_file).write_text(json.dumps(report, indent=2, sort_keys=True))
    return strategy.history


app = make_server_app()
