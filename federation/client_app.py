"""The federation's ClientApp (Flower Message API): local training on the client's own facts, and evaluation.

Each client rebuilds its partition from its node config (`partition-id`, and optionally `client-name`), trains
the shared adapter it received for `local-steps` steps, records the sample ids and the update's hash in its
local ledger, and answers its adapter, its sample count and its identity. Its data never leaves it.

Run it with `flwr run` (pyproject's [tool.flwr.app.components]) or in-process with
loravault.federation.simulation; `make_client_app(overrides)` layers settings over the run config (tests).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from loravault.core import load_base
from loravault.core.adapter_schema import AdapterSchema

from . import keys
from .config import RunConfig
from .data import Partition, partition
from .ledger import Ledger, LedgerEntry
from .provenance import update_hash
from .task import evaluate, train_round

__all__ = ["app", "make_client_app"]

logger = logging.getLogger(__name__)


def make_client_app(overrides: Mapping[str, Any] | None = None) -> ClientApp:
    """A ClientApp whose run config is Flower's with `overrides` on top (read once per message)."""
    extra = dict(overrides or {})
    client_app = ClientApp()

    @client_app.train()
    def train(message: Message, context: Context) -> Message:
        return _train(message, context, RunConfig.from_flower({**context.run_config, **extra}))

    @client_app.evaluate()
    def evaluate_(message: Message, context: Context) -> Message:
        return _evaluate(message, context, RunConfig.from_flower({**context.run_config, **extra}))

    return client_app


def _identity(context: Context) -> tuple[int, str]:
    partition_id = int(context.node_config[keys.PARTITION_ID])
    return partition_id, str(context.node_config.get(keys.NODE_CLIENT_NAME, f"client-{partition_id}"))


def _shared(message: Message, base_fingerprint: str, config: RunConfig) -> tuple[AdapterSchema, dict]:
    tensors = dict(message.content.array_records[keys.ARRAYS].to_torch_state_dict())
    schema = AdapterSchema.from_tensors(tensors, rank=config.training.rank, alpha=config.training.alpha,
                                        target_modules=config.training.modules, base_fingerprint=base_fingerprint)
    return schema, tensors


def _partition(partition_id: int, config: RunConfig) -> Partition:
    return partition(partition_id=partition_id, facts=config.rounds.facts_per_client, seed=config.training.seed)


def _train(message: Message, context: Context, config: RunConfig) -> Message:
    partition_id, name = _identity(context)
    server_round = int(keys.number(message.content.config_records[keys.CONFIG][keys.ROUND], key=keys.ROUND))
    method = str(message.content[keys.CONFIG][keys.METHOD])
    if (config.faults.fail_partition, config.faults.fail_round) == (partition_id, server_round):
        raise RuntimeError(f"{name}: injected failure in round {server_round} (fail-partition {partition_id})")
    base = load_base(config.training.base)
    schema, shared = _shared(message, base.fingerprint, config)
    data = _partition(partition_id, config)
    seed = config.training.seed + 1000 * server_round + partition_id
    started = time.perf_counter()
    tensors, loss = train_round(base, schema, shared, data.train, training=config.training, method=method, seed=seed)
    seconds = time.perf_counter() - started
    digest = update_hash(tensors)
    ledger_dir = Path(config.outputs.ledger_dir or Path.home() / ".loravault" / "federation")
    Ledger(ledger_dir, client=name).record(LedgerEntry(
        run_id=int(message.metadata.run_id), round=server_round, node_id=int(context.node_id),
        sample_ids=tuple(s.id for s in data.train), update_sha256=digest, num_samples=len(data.train)))
    logger.info("%s: round %d trained on %d samples, loss %.4f", name, server_round, len(data.train), loss)
    reply = RecordDict({
        keys.ARRAYS: ArrayRecord(tensors),
        keys.METRICS: MetricRecord({keys.NUM_EXAMPLES: len(data.train), keys.TRAIN_LOSS: loss,
                                   keys.TRAIN_SECONDS: seconds}),
        keys.CLIENT: ConfigRecord({keys.CLIENT_NAME: name, keys.UPDATE_HASH: digest}),
    })
    return Message(content=reply, reply_to=message)


def _evaluate(message: Message, context: Context, config: RunConfig) -> Message:
    partition_id, name = _identity(context)
    base = load_base(config.training.base)
    schema, shared = _shared(message, base.fingerprint, config)
    data = _partition(partition_id, config)
    facts = evaluate(base, schema, shared, data.train, training=config.training)
    paraphrases = evaluate(base, schema, shared, data.paraphrases, training=config.training)
    reply = RecordDict({
        keys.METRICS: MetricRecord({keys.NUM_EXAMPLES: facts.samples, keys.EVAL_LOSS: facts.loss,
                                    keys.RECALL: facts.recall, keys.PARAPHRASE_RECALL: paraphrases.recall}),
        keys.CLIENT: ConfigRecord({keys.CLIENT_NAME: name}),
    })
    return Message(content=reply, reply_to=message)


app = make_client_app()
