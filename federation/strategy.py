"""`VaultStrategy`: Flower's FedAvg message flow with loravault's aggregation math and a signed vault commit
per round.

Per round: the shared adapter goes to every sampled node with the aggregation method; replies with errors,
and nodes that did not answer within the round timeout, become the round's failures; with fewer successful
replies than `min_replies` the round commits nothing and the shared adapter stays as it was. Otherwise the
updates are aggregated by core.aggregation (ffa exact, stack with its truncation error, fedavg labelled
approximate with its error), each update's hash is computed here from the bytes received (the client's claim
must match), and the round is handed to `commit` (the ServerApp signs it and commits it to the vault).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from loravault.core.adapter_schema import AdapterSchema
from loravault.core.aggregation import AggregationReport, ClientUpdate, aggregate
from loravault.core.errors import InvalidArgumentError
from loravault.proto.federation import Failure, Participant

from . import keys
from .config import RoundSettings
from .provenance import update_hash

__all__ = ["RoundOutcome", "RoundRecord", "VaultStrategy"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundOutcome:
    """What a successful round hands to the commit: the aggregate and its provenance."""

    round: int
    tensors: dict[str, Any]
    report: AggregationReport
    participants: tuple[Participant, ...]
    failures: tuple[Failure, ...]


@dataclass
class RoundRecord:
    """One round as the ServerApp reports it (the JSON report, the demo and the benchmark read these)."""

    round: int
    committed_version: int | None  # None: fewer replies than min_replies, nothing committed
    participants: list[str]  # client names
    failures: list[dict[str, str]]
    effective_weight_error: float | None = None
    relative_error: float | None = None  # effective_weight_error / ||exact average||_F
    truncation_error: float | None = None
    train_seconds: float = 0.0  # slowest client's local round
    aggregation_seconds: float = 0.0
    commit_seconds: float = 0.0
    bytes_sent: int = 0  # shared adapter to every sampled node
    bytes_received: int = 0  # the replies' adapters
    recall: dict[str, float] = field(default_factory=dict)  # per client, after the round (evaluate)
    paraphrase_recall: dict[str, float] = field(default_factory=dict)  # per client, held-out paraphrases


class VaultStrategy(FedAvg):
    """FedAvg's sampling and messaging; loravault's aggregation; a commit per round."""

    def __init__(self, *, schema: AdapterSchema, rounds: RoundSettings,
                 commit: Callable[[RoundOutcome], tuple[int, float]] | None = None) -> None:
        super().__init__(min_train_nodes=rounds.min_nodes, min_evaluate_nodes=rounds.min_nodes,
                         min_available_nodes=rounds.min_nodes, weighted_by_key=keys.NUM_EXAMPLES,
                         arrayrecord_key=keys.ARRAYS, configrecord_key=keys.CONFIG)
        self._schema, self._rounds, self._commit = schema, rounds, commit
        self._asked: dict[int, tuple[list[int], int]] = {}
        self.history: list[RoundRecord] = []

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
                        ) -> Iterable[Message]:
        config[keys.METHOD] = self._rounds.aggregation
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self._asked[server_round] = ([m.metadata.dst_node_id for m in messages], arrays.count_bytes() * len(messages))
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        valid, errors = self._check_and_log_replies(replies, is_train=True)
        asked, sent = self._asked.get(server_round, ([], 0))
        answered = {m.metadata.src_node_id for m in replies}
        failures = [Failure(str(m.metadata.src_node_id), _reason(m)) for m in errors] + [
            Failure(str(node), "no reply within the round timeout") for node in asked if node not in answered]
        record = RoundRecord(round=server_round, committed_version=None, participants=[],
                             failures=[{"node_id": f.node_id, "reason": f.reason} for f in failures], bytes_sent=sent)
        self.history.append(record)
        if len(valid) < self._rounds.min_replies:
            logger.warning("round %d: %d successful replies, fewer than min-replies %d; nothing is committed",
                           server_round, len(valid), self._rounds.min_replies)
            return None, None
        updates, participants = self._updates(valid)
        record.participants = [p.client for p in participants]
        record.bytes_received = sum(m.content.array_records[keys.ARRAYS].count_bytes() for m in valid)
        record.train_seconds = max(keys.number(m.content.metric_records[keys.METRICS][keys.TRAIN_SECONDS],
                                               key=keys.TRAIN_SECONDS) for m in valid)
        started = time.perf_counter()
        tensors, report = aggregate(self._schema, updates, method=self._rounds.aggregation)
        record.aggregation_seconds = time.perf_counter() - started
        record.effective_weight_error, record.truncation_error = report.effective_weight_error, report.truncation_error
        record.relative_error = report.relative_error
        if self._commit is not None:
            record.committed_version, record.commit_seconds = self._commit(RoundOutcome(
                server_round, tensors, report, tuple(participants), tuple(failures)))
        metrics = MetricRecord({"effective-weight-error": report.effective_weight_error,
                                "truncation-error": report.truncation_error, "replies": len(valid)})
        return ArrayRecord(tensors), metrics

    def _updates(self, valid: list[Message]) -> tuple[list[ClientUpdate], list[Participant]]:
        """Each reply's adapter and weight; its hash is taken here, and a client's differing claim refused."""
        updates, participants = [], []
        for message in valid:
            tensors = {k: v.float() for k, v in message.content.array_records[keys.ARRAYS].to_torch_state_dict().items()}
            client = message.content.config_records[keys.CLIENT]
            digest = update_hash(tensors)
            if str(client[keys.UPDATE_HASH]) != digest:
                raise InvalidArgumentError(f"node {message.metadata.src_node_id}: its update hashes to "
                                           f"{digest[:12]}…, it claims {str(client[keys.UPDATE_HASH])[:12]}…")
            count = int(keys.number(message.content.metric_records[keys.METRICS][keys.NUM_EXAMPLES], key=keys.NUM_EXAMPLES))
            updates.append(ClientUpdate(tensors, count))
            participants.append(Participant(node_id=str(message.metadata.src_node_id),
                                            client=str(client[keys.CLIENT_NAME]), update_hash=digest,
                                            num_samples=count))
        return updates, participants

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        valid, _ = self._check_and_log_replies(replies, is_train=False)
        if self.history and self.history[-1].round == server_round:
            record = self.history[-1]
            for message in valid:
                name = str(message.content.config_records[keys.CLIENT][keys.CLIENT_NAME])
                metrics = message.content.metric_records[keys.METRICS]
                record.recall[name] = keys.number(metrics[keys.RECALL], key=keys.RECALL)
                record.paraphrase_recall[name] = keys.number(metrics[keys.PARAPHRASE_RECALL], key=keys.PARAPHRASE_RECALL)
        return super().aggregate_evaluate(server_round, valid)


def _reason(message: Message) -> str:
    """A node's error as at most 200 printable ASCII characters (what a round manifest may carry): the last
    line of its reason, which names the exception (the engine prepends its own traceback)."""
    lines = [line.strip() for line in str(message.error.reason).splitlines() if line.strip()]
    text = f"error {message.error.code}: {lines[-1] if lines else 'no reason given'}"
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:200]
