"""The record keys of the federation's Flower messages, in one place: ServerApp and ClientApp both use these.

Train and evaluate messages carry RecordDict {ARRAYS: the shared adapter (float32, PEFT names),
CONFIG: {ROUND, METHOD}}. A train reply carries {ARRAYS: the client's adapter, METRICS: {NUM_EXAMPLES,
TRAIN_LOSS}, CLIENT: {CLIENT_NAME, UPDATE_HASH}}; an evaluate reply {METRICS: {NUM_EXAMPLES, EVAL_LOSS,
RECALL, PARAPHRASE_RECALL}, CLIENT: {CLIENT_NAME}}.
"""

from __future__ import annotations

from loravault.core.errors import InvalidArgumentError

__all__ = [
    "number",
    "ARRAYS", "CONFIG", "METRICS", "CLIENT",
    "ROUND", "METHOD", "NUM_EXAMPLES", "TRAIN_LOSS", "TRAIN_SECONDS", "EVAL_LOSS", "RECALL", "PARAPHRASE_RECALL", "CLIENT_NAME", "UPDATE_HASH",
    "PARTITION_ID", "NUM_PARTITIONS", "NODE_CLIENT_NAME",
]

# records of a RecordDict
ARRAYS = "arrays"  # ArrayRecord (FedAvg's arrayrecord_key)
CONFIG = "config"  # ConfigRecord (FedAvg's configrecord_key)
METRICS = "metrics"  # MetricRecord
CLIENT = "client"  # ConfigRecord: who answered

# fields of those records
ROUND = "server-round"  # set by FedAvg.configure_train / configure_evaluate
METHOD = "aggregation"  # ffa | stack | fedavg: ffa clients keep lora_A frozen
NUM_EXAMPLES = "num-examples"  # FedAvg's weighted_by_key
TRAIN_LOSS = "train-loss"
TRAIN_SECONDS = "train-seconds"  # wall time of the local round on the client
EVAL_LOSS = "eval-loss"
RECALL = "recall"  # fraction of the client's facts whose answer tokens are all the argmax
PARAPHRASE_RECALL = "paraphrase-recall"  # the same on held-out paraphrases of those facts
CLIENT_NAME = "name"
UPDATE_HASH = "update-sha256"  # SHA-256 of the client's adapter as canonical float32 bytes

# node config (flower-supernode --node-config, or set by the simulation engine)
PARTITION_ID = "partition-id"
NUM_PARTITIONS = "num-partitions"
NODE_CLIENT_NAME = "client-name"  # optional: the client's identity; default client-<partition-id>


def number(value: object, *, key: str) -> float:
    """A metric or config record's numeric value (records also hold strings, bytes and lists)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"record value {key} must be a number, got {type(value).__name__}")
    return float(value)
