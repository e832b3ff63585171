"""A client's local record of what it trained on in each round."""

from __future__ import annotations

import pytest

from loravault.core import DataLossError, InvalidArgumentError
from loravault.federation.ledger import Ledger, LedgerEntry


def entry(round_: int, ids: tuple[str, ...]) -> LedgerEntry:
    return LedgerEntry(run_id=1, round=round_, node_id=42, sample_ids=ids, update_sha256="ab" * 32,
                       num_samples=len(ids))


def test_rounds_are_recorded_in_order_and_name_the_rounds_a_sample_reached(tmp_path):
    ledger = Ledger(tmp_path, client="client-0")
    ledger.record(entry(1, ("a", "b")))
    ledger.record(entry(2, ("b", "c")))
    assert [e.round for e in ledger.entries()] == [1, 2]
    assert ledger.entries()[1] == entry(2, ("b", "c"))
    assert ledger.rounds_of(["a"]) == [1] and ledger.rounds_of(["b"]) == [1, 2] and ledger.rounds_of(["z"]) == []


def test_a_corrupt_line_is_data_loss_and_a_path_like_name_is_refused(tmp_path):
    ledger = Ledger(tmp_path, client="client-0")
    ledger.record(entry(1, ("a",)))
    with open(ledger.path, "a") as handle:
        handle.write("{not json\n")
    with pytest.raises(DataLossError, match=":2:"):
        ledger.entries()
    with pytest.raises(InvalidArgumentError):
        Ledger(tmp_path, client="../elsewhere")
