"""Federation.CommitRound on a real server: signed rounds commit as federation-round versions with provenance;
unregistered keys, stale parents, NaN aggregates and replays are refused with state unchanged."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from loravault.core import AbortedError, InvalidArgumentError, UnauthenticatedError
from loravault.core.aggregation import ClientUpdate, aggregate
from loravault.core.peft_format import adapter_from_peft_model
from loravault.federation.provenance import commit_round, update_hash
from loravault.proto.federation import Failure, Participant
from loravault.proto.keys import public_key_dict
from loravault.server.audit import read_data_folder, verify_log

from .conftest import peft_tiny
from .erasure_kit import erasure_server, new_signer, vault_state  # noqa: F401  (fixture)

FED, SHARED = "fed", "shared"


def federation(server):
    """Tenant fed with the coordinator's key (first AddKey: trust on first use) and shared adapter v1."""
    client = server.tenant(FED)
    signer = new_signer()
    client.add_key(public_key_dict(signer))
    schema, tensors = adapter_from_peft_model(peft_tiny(0), base_fingerprint=server.fingerprint)
    client.create_adapter(SHARED, schema)
    client.upload_tensors(SHARED, tensors)
    return client, signer, schema, tensors


def round_of(schema, head, *, seed):
    """Two clients that trained only B from the shared A (FFA), aggregated exactly."""
    g = torch.Generator().manual_seed(seed)
    updates = []
    for count in (3, 5):
        t = {k: (v + 0.01 * torch.randn(v.shape, generator=g) if "lora_B" in k else v.clone()) for k, v in head.items()}
        updates.append(ClientUpdate(t, count))
    tensors, report = aggregate(schema, updates, method="ffa")
    participants = [Participant(node_id=str(1000 + i), client=f"client-{i}", update_hash=update_hash(u.tensors),
                                num_samples=u.num_samples) for i, u in enumerate(updates)]
    return tensors, report, participants


def test_two_rounds_commit_as_federation_versions_with_provenance_and_audit(erasure_server, database_url):
    client, signer, schema, head = federation(erasure_server)
    for number in (1, 2):
        tensors, report, participants = round_of(schema, head, seed=number)
        committed = commit_round(client, adapter=SHARED, signers=[signer], round_number=number, aggregate=tensors,
                                 report=report, participants=participants, failures=[Failure("77", "timeout")])
        assert committed.version == number + 1 and committed.receipt.new_version == number + 1
        head = tensors
    versions = client.versions(SHARED)
    assert [v.kind for v in versions] == ["upload", "federation-round", "federation-round"]
    rounds = client.rounds(SHARED)
    assert [r.version for r in rounds] == [2, 3]
    assert rounds[1].manifest.parent_version == 2 and rounds[1].manifest.parent_hash == versions[1].blob_sha256
    assert rounds[1].manifest.aggregate_hash == versions[2].blob_sha256
    assert [p.num_samples for p in rounds[0].manifest.participants] == [3, 5]
    assert rounds[0].manifest.failures == (Failure("77", "timeout"),)
    assert all(r.manifest_hash == v.manifest_hash for r, v in zip(rounds, versions[1:]))
    snapshot = read_data_folder(erasure_server.data_dir, database_url=database_url)
    assert verify_log(snapshot.entries, receipts=snapshot.receipts, checkpoints=snapshot.checkpoints,
                      server_key=snapshot.server_key).entries == 2


def test_round_signed_by_an_unregistered_key_is_refused_with_state_unchanged(erasure_server):
    client, _, schema, head = federation(erasure_server)
    tensors, report, participants = round_of(schema, head, seed=1)
    before = vault_state(erasure_server)
    with pytest.raises(UnauthenticatedError, match="signed by 0 of 1"):
        commit_round(client, adapter=SHARED, signers=[new_signer()], round_number=1, aggregate=tensors,
                     report=report, participants=participants)
    assert vault_state(erasure_server) == before


def test_round_on_a_stale_parent_is_aborted_with_state_unchanged(erasure_server, monkeypatch):
    client, signer, schema, head = federation(erasure_server)
    tensors, report, participants = round_of(schema, head, seed=1)
    real_versions = client.versions
    client.upload_tensors(SHARED, head)  # the head moves to v2 after the coordinator read v1
    monkeypatch.setattr(client, "get_adapter", lambda name, tenant="": dataclasses.replace(
        type(client).get_adapter(client, name), head_version=1))
    monkeypatch.setattr(client, "versions", lambda name, tenant="", after=0, limit=0: real_versions(
        name, after=0, limit=1))
    before = vault_state(erasure_server)
    with pytest.raises(AbortedError, match="not the head"):
        commit_round(client, adapter=SHARED, signers=[signer], round_number=1, aggregate=tensors, report=report,
                     participants=participants)
    assert vault_state(erasure_server) == before


def test_round_whose_aggregate_holds_nan_is_refused_with_state_unchanged(erasure_server):
    client, signer, schema, head = federation(erasure_server)
    tensors, report, participants = round_of(schema, head, seed=1)
    name = next(k for k in tensors if "lora_B" in k)
    tensors[name] = tensors[name].clone()
    tensors[name][0, 0] = float("nan")
    before = vault_state(erasure_server)
    with pytest.raises(InvalidArgumentError, match="NaN"):
        commit_round(client, adapter=SHARED, signers=[signer], round_number=1, aggregate=tensors, report=report,
                     participants=participants)
    assert vault_state(erasure_server) == before


def test_a_replayed_round_returns_the_stored_receipt_and_changes_nothing(erasure_server):
    from loravault.core.tensors import canonical_float32
    from loravault.proto.federation import sign_round_manifest

    client, signer, schema, head = federation(erasure_server)
    tensors, report, participants = round_of(schema, head, seed=1)
    committed = commit_round(client, adapter=SHARED, signers=[signer], round_number=1, aggregate=tensors,
                             report=report, participants=participants)
    envelope = sign_round_manifest(committed.manifest, signers=[signer])
    before = vault_state(erasure_server)
    again = client.commit_round(SHARED, envelope=envelope, aggregate=canonical_float32(tensors))
    assert again.log_index == committed.log_index and again.version.number == committed.version
    assert vault_state(erasure_server) == before


def test_cli_adapters_versions_shows_each_rounds_provenance(erasure_server, capsys):
    from loravault.client.cli import main

    client, signer, schema, head = federation(erasure_server)
    tensors, report, participants = round_of(schema, head, seed=1)
    commit_round(client, adapter=SHARED, signers=[signer], round_number=1, aggregate=tensors, report=report,
                 participants=participants)
    token = client.issue_token(label="cli").token
    capsys.readouterr()
    assert main(["--server", erasure_server.target, "--token", token, "--json", "adapters", "versions", SHARED]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert "provenance" not in rows[0] and rows[1]["kind"] == "federation-round"
    provenance = rows[1]["provenance"]
    assert provenance["round"] == 1 and provenance["aggregation"] == "ffa" and provenance["parent_version"] == 1
    assert [p["num_samples"] for p in provenance["participants"]] == [3, 5]
