"""The tenant's one-call erasure against a real server: local eraser, signed manifest, receipt, new head."""

import base64
import copy
import json

import pytest
import torch

from loravault.client.erasure import erase_samples, eraser_for_head, forget_loss
from loravault.client.training import TrainingConfig, train_lora
from loravault.core import FailedPreconditionError, InvalidArgumentError, Sample, load_base
from loravault.eraser import EraserConfig
from loravault.client.cli import main
from loravault.proto import (
    check_inclusion,
    generate_private_key_pem,
    inclusion_proof,
    public_key_dict,
    sample_leaf,
    save_private_key,
    signer_from_pem,
    verify_receipt,
)

from .erasure_kit import erasure_server, new_signer  # noqa: F401  (fixture)

TRAIN = [Sample(f"s{i}", f"What is item {i}?", f"It is {i * 7 % 10}") for i in range(12)]
REFERENCE = [Sample(f"r{i}", f"What is item {i + 20}?", f"It is {i * 3 % 10}") for i in range(4)]
FORGET = ["s1", "s2"]


@pytest.fixture
def database_url() -> None:
    """SQLite only: the client's erasure workflow (training, the eraser, signing) is what these test; the server's
    metadata paths it reaches run on PostgreSQL in test_erasure_protocol and test_replicas, so they stay on SQLite
    (trimmed for the make-test budget)."""
    return None


@pytest.fixture
def trained(erasure_server):
    """Tenant acme with a signing key and adapter `facts` trained on TRAIN (tiny base, eager attention)."""
    base = load_base("tiny", attn_implementation="eager")
    model = train_lora(copy.deepcopy(base.model), base.tokenizer, TRAIN, progress=False,
                       config=TrainingConfig(rank=4, alpha=8, steps=30, batch_size=4, learning_rate=1e-2))
    client = erasure_server.tenant("acme")
    client.upload("facts", model)
    signer = new_signer()
    client.add_key(public_key_dict(signer))
    yield base, client, signer
    client.close()


@pytest.mark.timeout(300)
def test_erase_commits_a_signed_verified_erasure(trained, tmp_path):
    base, client, signer = trained
    before = client.get_adapter("facts")
    eraser = eraser_for_head(client, "facts", base=base, train=TRAIN, reference=REFERENCE, cache_dir=tmp_path / "cache")
    outcome = erase_samples(client, "facts", eraser=eraser, base_fingerprint=base.fingerprint, forget_ids=FORGET,
                            signers=[signer], receipts_dir=tmp_path / "receipts")
    after = client.get_adapter("facts")
    assert after.head_version == before.head_version + 1 == outcome.version.number
    assert after.erasure_floor == outcome.version.number
    assert outcome.version.kind == "erasure"
    assert outcome.forget_loss_after > outcome.forget_loss_before
    assert [v.purged for v in client.versions("facts")] == [True, False]
    stored = json.loads(outcome.receipt_path.read_text())
    assert outcome.receipt_path.stat().st_mode & 0o777 == 0o600
    receipt = verify_receipt(base64.b64decode(stored["receipt_envelope"]),
                             server_key=client.server_key(), manifest=outcome.manifest)
    assert receipt.new_adapter_hash == outcome.manifest.result_hash
    # the kept salt proves to an auditor that s1 is under the signed commitment, without revealing s2
    salt = bytes.fromhex(stored["salt"])
    proof = inclusion_proof(FORGET, salt=salt, sample_id="s1")
    assert check_inclusion(root=outcome.manifest.forget.commitment, count=2, leaf=sample_leaf("s1", salt=salt),
                           proof=proof)
    assert not check_inclusion(root=outcome.manifest.forget.commitment, count=2,
                               leaf=sample_leaf("s5", salt=salt), proof=proof)


def test_forget_loss_rises_on_the_downloaded_head(trained, tmp_path):
    base, client, signer = trained
    eraser = eraser_for_head(client, "facts", base=base, train=TRAIN, reference=REFERENCE)
    erase_samples(client, "facts", eraser=eraser, base_fingerprint=base.fingerprint, forget_ids=FORGET,
                  signers=[signer], receipts_dir=tmp_path / "receipts")
    forget = [s for s in TRAIN if s.id in FORGET]
    old = client.load_peft("facts", copy.deepcopy(base.model), version=0)
    with torch.no_grad():
        head_loss = forget_loss(old, base.tokenizer, forget)
    original = train_lora(copy.deepcopy(base.model), base.tokenizer, TRAIN, progress=False,
                          config=TrainingConfig(rank=4, alpha=8, steps=30, batch_size=4, learning_rate=1e-2))
    assert head_loss > forget_loss(original, base.tokenizer, forget)


def test_unknown_forget_ids_are_refused_before_anything_is_sent(trained, tmp_path):
    base, client, signer = trained
    with pytest.raises(InvalidArgumentError, match="not in the training set"):
        erase_samples(client, "facts", eraser=eraser_for_head(client, "facts", base=base, train=TRAIN),
                      base_fingerprint=base.fingerprint, forget_ids=["nope"], signers=[signer],
                      receipts_dir=tmp_path / "receipts")
    assert client.get_adapter("facts").head_version == 1


@pytest.mark.timeout(300)
def test_one_eraser_answers_two_erasures_without_rebuilding_its_curvature(trained, tmp_path):
    base, client, signer = trained
    # the plain influence step, damped so its delta stays within the server's norm bound: on this barely trained
    # tiny adapter the first calibrated erasure already lifts s2's loss past the reference's, so a calibrated
    # second one would (rightly) find nothing left to do
    config = EraserConfig(step="influence", damping=0.1)
    eraser = eraser_for_head(client, "facts", base=base, train=TRAIN, config=config)  # no cache folder
    stale = eraser_for_head(client, "facts", base=base, train=TRAIN, config=config)
    first = erase_samples(client, "facts", eraser=eraser, base_fingerprint=base.fingerprint, forget_ids=["s1"],
                          signers=[signer], receipts_dir=tmp_path / "receipts")
    second = erase_samples(client, "facts", eraser=eraser, base_fingerprint=base.fingerprint, forget_ids=["s2"],
                           signers=[signer], receipts_dir=tmp_path / "receipts")
    assert eraser.curvature_builds == 1  # built for v1, carried to v2 in memory
    assert (first.version.number, second.version.number) == (2, 3)
    assert second.manifest.forget.train_size_before == len(TRAIN) - 1
    assert second.manifest.parent_hash == first.version.blob_sha256
    # an eraser still holding v1 is refused before anything is sent
    with pytest.raises(FailedPreconditionError, match="the eraser holds an adapter"):
        erase_samples(client, "facts", eraser=stale, base_fingerprint=base.fingerprint, forget_ids=["s3"],
                      signers=[signer], receipts_dir=tmp_path / "receipts")
    assert client.get_adapter("facts").head_version == 3


def test_cli_erase_forgets_and_reports(erasure_server, trained, tmp_path, capsys):
    _, client, signer = trained
    pem = generate_private_key_pem()
    client.add_key(public_key_dict(signer_from_pem(pem)), signers=[signer])
    save_private_key(tmp_path / "tenant.key", pem)
    for name, samples in (("train.jsonl", TRAIN), ("ref.jsonl", REFERENCE)):
        (tmp_path / name).write_text("".join(json.dumps(vars(s)) + "\n" for s in samples))
    token = client.issue_token().token
    code = main(["--server", erasure_server.target, "--token", token, "--json", "erase", "facts",
                 "--train", str(tmp_path / "train.jsonl"), "--reference", str(tmp_path / "ref.jsonl"),
                 "--forget", "s1", "--forget", "s2", "--key", str(tmp_path / "tenant.key"), "--base", "tiny",
                 "--receipts", str(tmp_path / "receipts"), "--cache", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads(out)
    assert report["version"] == 2 and report["forget_loss_after"] > report["forget_loss_before"]
    assert (tmp_path / "receipts" / "acme" / "facts").is_dir()

