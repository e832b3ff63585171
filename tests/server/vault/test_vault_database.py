"""SQLite write transactions start with BEGIN IMMEDIATE, and a writer that waits too long gets UnavailableError."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from loravault.core import UnavailableError
from loravault.server.vault.clock import utc_now
from loravault.server.vault.database import open_engine, read_transaction, upgrade, write_transaction
from loravault.server.vault.tables import tenants


def test_a_second_writer_waits_then_gets_unavailable(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path / 'busy.db'}", busy_timeout_ms=50)
    upgrade(engine)
    with write_transaction(engine) as holder:  # takes the write lock at BEGIN, before any statement
        with pytest.raises(UnavailableError, match="locked"), write_transaction(engine) as second:
            second.execute(insert(tenants).values(name="late", created_at=utc_now()))
        with read_transaction(engine) as reader:  # WAL: readers are not blocked by the writer
            assert reader.scalar(select(tenants.c.name)) is None
        holder.execute(insert(tenants).values(name="first", created_at=utc_now()))
    with read_transaction(engine) as reader:
        assert list(reader.scalars(select(tenants.c.name))) == ["first"]
    engine.dispose()
