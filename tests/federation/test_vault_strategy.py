"""VaultStrategy's round rules on real Flower messages: failures and missing nodes are reported, fewer replies
than min-replies commit nothing, the aggregate is core's, and a client lying about its update hash is refused."""

from __future__ import annotations

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict

from loravault.core import AdapterSchema, InvalidArgumentError, TensorSpec
from loravault.federation import keys
from loravault.federation.config import RoundSettings
from loravault.federation.provenance import update_hash
from loravault.federation.strategy import VaultStrategy

SCHEMA = AdapterSchema(rank=2, alpha=4.0, target_modules=("q_proj",), dtype="float32", base_fingerprint="ab" * 32,
                       tensors=(TensorSpec("m.q_proj.lora_A.weight", (2, 3)), TensorSpec("m.q_proj.lora_B.weight", (4, 2))))
A = torch.arange(6, dtype=torch.float32).reshape(2, 3)


@pytest.fixture(autouse=True)
def serverapp_identity(monkeypatch):
    """The identity Flower sets in a running ServerApp process, which Message() reads."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 0)):
        monkeypatch.setattr(TaskIdentity, name, value)


def sent(node: int) -> Message:
    return Message(content=RecordDict({keys.CONFIG: ConfigRecord({keys.ROUND: 1})}), dst_node_id=node,
                   message_type=MessageType.TRAIN)


def reply(node: int, scale: float, samples: int, *, claim: str | None = None) -> Message:
    tensors = {"m.q_proj.lora_A.weight": A.clone(), "m.q_proj.lora_B.weight": torch.full((4, 2), scale)}
    content = RecordDict({
        keys.ARRAYS: ArrayRecord(tensors),
        keys.METRICS: MetricRecord({keys.NUM_EXAMPLES: samples, keys.TRAIN_SECONDS: 1.5}),
        keys.CLIENT: ConfigRecord({keys.CLIENT_NAME: f"client-{node}", keys.UPDATE_HASH: claim or update_hash(tensors)}),
    })
    return Message(content=content, reply_to=sent(node))


def failed(node: int) -> Message:
    return Message(error=Error(code=2, reason="Traceback ...\nRuntimeError: out of memory"), reply_to=sent(node))


def strategy(min_replies: int, commits: list) -> VaultStrategy:
    s = VaultStrategy(schema=SCHEMA, rounds=RoundSettings(min_replies=min_replies, min_nodes=1),
                      commit=lambda outcome: commits.append(outcome) or (2, 0.25))
    s._asked[1] = ([1, 2, 3, 4], 1000)  # what configure_train records when it samples nodes 1-4
    return s


def test_a_round_below_min_replies_commits_nothing_and_reports_every_failure():
    commits: list = []
    s = strategy(3, commits)
    arrays, metrics = s.aggregate_train(1, [reply(1, 1.0, 2), reply(2, 2.0, 6), failed(3)])
    assert (arrays, metrics, commits) == (None, None, [])
    (record,) = s.history
    assert record.committed_version is None
    assert record.failures == [{"node_id": "3", "reason": "error 2: RuntimeError: out of memory"},
                               {"node_id": "4", "reason": "no reply within the round timeout"}]


def test_a_round_with_enough_replies_commits_the_exact_aggregate_with_its_failures():
    commits: list = []
    s = strategy(2, commits)
    arrays, _ = s.aggregate_train(1, [reply(1, 1.0, 2), reply(2, 2.0, 6), failed(3)])
    (outcome,) = commits
    assert [p.client for p in outcome.participants] == ["client-1", "client-2"]
    assert [f.node_id for f in outcome.failures] == ["3", "4"]
    b = arrays.to_torch_state_dict()["m.q_proj.lora_B.weight"]
    assert torch.allclose(b, torch.full((4, 2), 0.25 * 1.0 + 0.75 * 2.0))  # weighted by 2 and 6 samples
    assert outcome.report.exact and s.history[0].committed_version == 2 and s.history[0].train_seconds == 1.5


def test_a_client_whose_claimed_update_hash_differs_is_refused():
    s = strategy(1, [])
    with pytest.raises(InvalidArgumentError, match="claims"):
        s.aggregate_train(1, [reply(1, 1.0, 2, claim="00" * 32)])
