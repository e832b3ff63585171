"""The audit log: hash chain, signed receipts and checkpoints, offline verification from a data folder and from
an export, and the detection of every kind of rewrite."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import update

from loravault.core import DataLossError
from loravault.proto.errors import SignatureError
from loravault.proto.keys import generate_private_key_pem, public_key_dict, signer_from_pem
from loravault.server.audit import (
    GENESIS_HASH,
    AuditLog,
    Checkpoint,
    ErasureRecord,
    check_chain,
    check_log,
    read_data_folder,
    read_export,
    sign_checkpoint,
    verify_chain,
    verify_checkpoint,
    write_export,
)
from loravault.server.server_key import SERVER_KEY_FILE, load_or_create_server_key
from loravault.server.vault import Vault
from loravault.server.vault.tables import audit_log

FINGERPRINT = hashlib.sha256(b"base").hexdigest()


def _record(number: int) -> ErasureRecord:
    h = lambda text: hashlib.sha256(f"{text}{number}".encode()).hexdigest()  # noqa: E731
    return ErasureRecord(
        kind="erasure", tenant="acme", adapter="support", request_id=f"{number:032x}", key_ids=(h("key"),),
        manifest_hash=h("manifest"), parent_version=number + 1, parent_hash=h("parent"), new_version=number + 2,
        new_hash=h("new"), delta_hash=h("delta"), forget_commitment=h("forget"), forget_count=3,
        committed_at=1_767_225_600 + number)


@pytest.fixture
def logged(tmp_path: Path, database_url: str | None):
    """A vault in tmp_path/data with 5 appended entries, checkpoints every 2, the server key, and the database
    URL (None: SQLite in the folder), on each database."""
    data = tmp_path / "data"
    data.mkdir()
    signer = load_or_create_server_key(data)
    with Vault.open(data, base_fingerprint=FINGERPRINT, database_url=database_url) as vault:
        log = AuditLog(vault, signer=signer, checkpoint_every=2)
        for number in range(5):
            with vault.write_transaction() as conn:
                log.append(conn, _record(number))
        yield data, vault, log, signer, database_url


def test_concurrent_appends_make_one_linear_chain(logged):
    """Eight writers at once (on PostgreSQL truly concurrent): the log's lock serializes them, so no append
    is lost, no index is taken twice, and the chain does not fork."""
    _, vault, log, _, _ = logged
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def append(number: int) -> None:
        try:
            barrier.wait(timeout=30)
            with vault.write_transaction() as conn:
                log.append(conn, _record(number))
        except BaseException as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(10 + n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    entries = list(log.entries())
    assert [e.index for e in entries] == list(range(13))
    verify_chain(entries)
    assert sorted(json.loads(e.body)["request_id"] for e in entries[5:]) == [f"{10 + n:032x}" for n in range(8)]


def test_entries_chain_from_genesis_and_checkpoints_sign_every_n(logged):
    _, _, log, signer, _ = logged
    entries = list(log.entries())
    assert [e.index for e in entries] == [0, 1, 2, 3, 4] and entries[0].previous_hash == GENESIS_HASH
    assert verify_chain(entries).head_hash == entries[-1].entry_hash
    sizes = [verify_checkpoint(c.envelope, server_key=public_key_dict(signer)).size for c in log.checkpoints()]
    assert sizes == [2, 4]
    assert log.checkpoint_now(time=1).size == 5 and log.checkpoint_now(time=2).size == 5  # once per size


@pytest.mark.parametrize("tamper", ["body", "drop", "reorder", "relink"])
def test_any_rewrite_of_the_chain_is_detected(logged, tamper):
    entries = list(logged[2].entries())
    if tamper == "body":
        forged = entries[2].body.replace(b'"forget_count":3', b'"forget_count":2')
        entries[2] = dataclasses.replace(entries[2], body=forged)
    elif tamper == "drop":
        del entries[1]
    elif tamper == "reorder":
        entries[1], entries[2] = entries[2], entries[1]
    else:
        entries[3] = dataclasses.replace(entries[3], previous_hash=entries[1].entry_hash)
    assert not check_chain(entries)
    with pytest.raises(DataLossError, match="audit log entry"):
        verify_chain(entries)


def test_data_folder_verifies_and_a_rewritten_row_is_reported(logged):
    data, vault, _, _, _ = logged
    assert check_log(**_inputs(read_data_folder(data, database_url=logged[4])))
    with vault.write_transaction() as conn:
        conn.execute(update(audit_log).where(audit_log.c.index == 3).values(body=_record(9).to_bytes().decode()))
    report = check_log(**_inputs(read_data_folder(data, database_url=logged[4])))
    assert not report and "entry 3" in report.problems[0]


def test_export_round_trips_and_a_forged_checkpoint_or_receipt_fails(logged, tmp_path):
    data = logged[0]
    snapshot = read_data_folder(data, database_url=logged[4])
    write_export(snapshot, tmp_path / "log.jsonl")
    assert read_export(tmp_path / "log.jsonl") == snapshot
    forger = signer_from_pem(generate_private_key_pem())
    forged = sign_checkpoint(Checkpoint(size=2, head_hash=snapshot.entries[1].entry_hash, time=5), signer=forger)
    report = check_log(**_inputs(dataclasses.replace(snapshot, checkpoints=[forged])))
    assert not report and "checkpoint 0" in report.problems[0]
    swapped = dict(snapshot.receipts)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    report = check_log(**_inputs(dataclasses.replace(snapshot, receipts=swapped)))
    assert len(report.problems) == 2 and "names another entry" in report.problems[0]


def test_cli_verifies_a_data_folder_and_an_export_against_a_pinned_key(logged, tmp_path):
    data = logged[0]
    run = lambda *args: subprocess.run([sys.executable, "-m", "loravault.server", "audit", *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    write_export(read_data_folder(data, database_url=logged[4]), tmp_path / "log.jsonl")  # the export command
    url = ["--database-url", logged[4]] if logged[4] else []
    ok = run("verify", "--data", str(data), *url)
    assert ok.returncode == 0 and "entries 5" in ok.stdout and "checkpoints 2" in ok.stdout
    other = tmp_path / "other.pub.json"
    other.write_text(json.dumps(public_key_dict(signer_from_pem(generate_private_key_pem()))))
    pinned = run("verify", "--export", str(tmp_path / "log.jsonl"), "--server-key", str(other))
    assert pinned.returncode == 1 and "FAILED" in pinned.stdout


def test_server_key_is_created_once_with_mode_0600(tmp_path):
    first = load_or_create_server_key(tmp_path)
    assert stat.S_IMODE((tmp_path / SERVER_KEY_FILE).stat().st_mode) == 0o600
    assert load_or_create_server_key(tmp_path).public_key.keyid == first.public_key.keyid


def test_checkpoint_signed_by_another_key_is_refused(logged):
    signer = logged[3]
    envelope = sign_checkpoint(Checkpoint(size=0, head_hash=GENESIS_HASH, time=0), signer=signer)
    other = public_key_dict(signer_from_pem(generate_private_key_pem()))
    with pytest.raises(SignatureError):
        verify_checkpoint(envelope, server_key=other)


def _inputs(snapshot) -> dict:
    return {"entries": snapshot.entries, "receipts": snapshot.receipts, "checkpoints": snapshot.checkpoints,
            "server_key": snapshot.server_key}


def test_a_deployment_key_file_is_loaded_through_a_link_and_never_created(tmp_path):
    """`serve --server-key`: a Secret volume links its files, so the link is followed; a missing file is an
    error, never a new key (replicas with different keys would sign receipts the others cannot verify)."""
    from loravault.core import NotFoundError
    from loravault.proto.keys import save_private_key

    shared = tmp_path / "secret" / "..data" / "server-key.pem"
    shared.parent.mkdir(parents=True)
    save_private_key(shared, generate_private_key_pem())
    (tmp_path / "secret" / "server-key.pem").symlink_to(shared)
    signers = [load_or_create_server_key(tmp_path / name, key_file=tmp_path / "secret" / "server-key.pem")
               for name in ("r1", "r2") if (tmp_path / name).mkdir() is None]
    assert signers[0].public_key.keyid == signers[1].public_key.keyid
    assert not (tmp_path / "r1" / SERVER_KEY_FILE).exists()  # the data folder holds only the public half
    with pytest.raises(NotFoundError, match="does not exist"):
        load_or_create_server_key(tmp_path / "r1", key_file=tmp_path / "missing.pem")
