"""The coordinator's side of a round commit: build and sign the round manifest, send it with the aggregate
through the SDK, check the server's receipt.

    committed = commit_round(client, adapter="shared", signers=[signer], round_number=1,
                             aggregate=tensors, report=report, participants=[...], failures=[])

The manifest binds the shared adapter's head as read just before (parent version and blob hash); when another
commit moved the head meanwhile, the server answers ABORTED and nothing is written.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from securesystemslib.signer import Signer

from loravault.client import VaultClient
from loravault.core.aggregation import AggregationReport
from loravault.core.tensors import canonical_float32
from loravault.proto import loravault_pb2 as pb
from loravault.proto.federation import (
    Failure,
    Participant,
    RoundManifest,
    sign_round_manifest,
    verify_round_receipt,
)
from loravault.proto.manifest import ValidityWindow, new_request_id
from loravault.proto.receipt import Receipt

__all__ = ["CommittedRound", "commit_round", "update_hash"]

VALIDITY_SECONDS = 3600  # a round is committed seconds after it is signed; an hour leaves room for slow links


def update_hash(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of an adapter's canonical float32 safetensors bytes: how a participant's update is named."""
    return hashlib.sha256(canonical_float32(tensors)).hexdigest()


@dataclass(frozen=True)
class CommittedRound:
    manifest: RoundManifest
    receipt: Receipt  # verified against the server's key
    version: int
    log_index: int
    seconds: float  # wall time of the commit call (sign, send, verify)


def commit_round(
    client: VaultClient,
    *,
    adapter: str,
    signers: Sequence[Signer],
    round_number: int,
    aggregate: Mapping[str, torch.Tensor],
    report: AggregationReport,
    participants: Sequence[Participant],
    failures: Sequence[Failure] = (),
    tenant: str = "",
    server_key: dict | None = None,
) -> CommittedRound:
    """Sign and commit one round on the adapter's current head; raises the SDK's errors (AbortedError, ...)."""
    started = time.perf_counter()
    data = canonical_float32(aggregate)
    head = client.get_adapter(adapter, tenant=tenant).head_version
    parent = client.versions(adapter, tenant=tenant, after=head - 1, limit=1)[0]
    identity = client.whoami()
    now = int(time.time())
    manifest = RoundManifest(
        tenant=identity.tenant or tenant, adapter=adapter, key_ids=tuple(s.public_key.keyid for s in signers),
        request_id=new_request_id(), base_fingerprint=identity.base_fingerprint, parent_version=parent.number,
        parent_hash=parent.blob_sha256, round=round_number, new_version=parent.number + 1,
        aggregate_hash=hashlib.sha256(data).hexdigest(), aggregation=report.method,
        effective_weight_error=report.effective_weight_error, truncation_error=report.truncation_error,
        participants=tuple(participants), failures=tuple(failures),
        window=ValidityWindow(issued_at=now, expires_at=now + VALIDITY_SECONDS))
    envelope = sign_round_manifest(manifest, signers=signers)
    answer: pb.RoundReceipt = client.commit_round(adapter, envelope=envelope, aggregate=data, tenant=tenant)
    receipt = verify_round_receipt(answer.envelope, server_key=server_key or client.server_key(), manifest=manifest)
    return CommittedRound(manifest, receipt, answer.version.number, answer.log_index, time.perf_counter() - started)
