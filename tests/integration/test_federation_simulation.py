"""The Flower apps in Flower's simulation engine (Ray, 1 CPU per client) against a real vault on loopback."""

from __future__ import annotations

import json

import pytest

from loravault.federation.ledger import Ledger

from .erasure_kit import erasure_server  # noqa: F401  (fixture)
from .federation_kit import SHARED, make_federation


@pytest.fixture
def database_url() -> None:
    """SQLite only: what these test is the Flower side (rounds, ledgers, failures); round commits run on
    PostgreSQL in test_federation_rounds.py. Each test starts a local Ray cluster, and starting two of them back
    to back timed out once on a loaded machine ("node timed out during startup"), so each runs once."""
    return None

pytestmark = pytest.mark.slow


def test_three_clients_two_rounds_store_two_signed_rounds_with_provenance(erasure_server, tmp_path):
    from loravault.federation.simulation import run_simulation_here

    fed = make_federation(erasure_server, tmp_path / "fed")
    run_simulation_here(num_clients=3, run_config=fed.run_config(erasure_server.target), num_cpus=2)

    versions = fed.client.versions(SHARED)
    assert [v.kind for v in versions] == ["upload", "federation-round", "federation-round"]
    rounds = fed.client.rounds(SHARED)
    assert [r.manifest.round for r in rounds] == [1, 2]
    for parent, found in zip(versions, rounds):
        manifest = found.manifest
        assert (manifest.parent_version, manifest.parent_hash) == (parent.number, parent.blob_sha256)
        assert manifest.aggregation == "ffa" and manifest.effective_weight_error < 1e-4
        assert sorted(p.client for p in manifest.participants) == ["client-0", "client-1", "client-2"]
        assert [p.num_samples for p in manifest.participants] == [4, 4, 4] and manifest.failures == ()
    # each client's ledger names the sample ids it trained on, and the update hash the vault recorded for it
    for participant in rounds[1].manifest.participants:
        entries = Ledger(tmp_path / "fed" / "ledgers", client=participant.client).entries()
        assert [e.round for e in entries] == [1, 2]
        assert entries[1].update_sha256 == participant.update_hash
        assert len(entries[1].sample_ids) == 4 and all(i.startswith("p") for i in entries[1].sample_ids)
    report = json.loads((tmp_path / "fed" / "report.json").read_text())
    assert [r["committed_version"] for r in report["rounds"]] == [2, 3]


def test_a_client_that_crashes_is_reported_and_the_minimum_replies_rule_holds(erasure_server, tmp_path):
    from loravault.federation.simulation import run_simulation_here

    fed = make_federation(erasure_server, tmp_path / "fed")
    # client of partition 1 raises in round 1; round 1 has 2 replies: enough for min-replies 2 but not 3
    config = fed.run_config(erasure_server.target, fail_partition=1, fail_round=1, num_server_rounds=3,
                            min_replies=3)
    run_simulation_here(num_clients=3, run_config=config, num_cpus=2)
    report = json.loads((tmp_path / "fed" / "report.json").read_text())
    first, second = report["rounds"][0], report["rounds"][1]
    assert first["committed_version"] is None and len(first["failures"]) == 1
    assert "injected failure" in first["failures"][0]["reason"]
    assert second["committed_version"] == 2
    versions = fed.client.versions(SHARED)
    assert [v.kind for v in versions].count("federation-round") == 2  # rounds 2 and 3 only
