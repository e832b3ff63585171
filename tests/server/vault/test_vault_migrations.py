"""Migrations build the schema on a fresh database, are idempotent on reopen, and match tables.py."""

from __future__ import annotations

import multiprocessing

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from vault_testkit import FINGERPRINT, adapter_bytes, make_schema, upload

from loravault.server.vault import Vault
from loravault.server.vault.database import open_engine, upgrade, upgrade_sql
from loravault.server.vault.tables import metadata


TABLES = {
    "alembic_version", "tenants", "tokens", "keys", "adapters", "versions", "audit_log", "audit_checkpoints",
    "blob_pins", "server_identity",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """The URL of a database nothing has run on yet: a new SQLite file, or an empty PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = cluster.create_database(template=None)
    yield cluster.url(name)
    cluster.drop_database(name)


def test_fresh_database_gets_every_table_at_the_newest_revision(empty_database):
    engine = open_engine(empty_database)
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) == TABLES
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0003"
    engine.dispose()


def _migrate(url: str) -> None:
    engine = open_engine(url)
    upgrade(engine)
    engine.dispose()


def test_replicas_migrating_at_once_build_the_schema_once(empty_database):
    """Replicas start together on an empty database: the migration lock lets one build, the others find it
    built. (Processes, as replicas are: alembic's command API keeps module globals and is not thread-safe.)"""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_migrate, args=(empty_database,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    engine = open_engine(empty_database)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
        assert set(inspect(conn).get_table_names()) == TABLES
    engine.dispose()


def test_tables_module_describes_exactly_what_the_migrations_build(empty_database):
    engine = open_engine(empty_database)
    upgrade(engine)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


PRAGMAS = ("journal_mode", "synchronous", "foreign_keys")


def test_sqlite_connections_use_wal_full_sync_and_foreign_keys(sqlite_vault):
    with sqlite_vault._engine.connect() as conn:
        pragmas = [conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in PRAGMAS]
    assert pragmas == ["wal", 2, 1]  # synchronous 2 = FULL


def test_reopening_runs_nothing_again_and_keeps_the_data(tmp_path, vault_options):
    data = tmp_path / "data"
    with Vault.open(data, base_fingerprint=FINGERPRINT, **vault_options) as first:
        first.credentials.create_tenant("acme")
        first.adapters.create_adapter(tenant="acme", name="support", schema=make_schema())
        upload(first, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    with Vault.open(data, base_fingerprint=FINGERPRINT, **vault_options) as second:
        assert second.adapters.read_version_blob(tenant="acme", adapter="support") == adapter_bytes(1)
        with second._engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1


def test_migrations_render_for_postgresql_with_portable_types():
    ddl = upgrade_sql("postgresql://")
    assert "CREATE TABLE versions" in ddl and "TIMESTAMP WITH TIME ZONE" in ddl and "BOOLEAN DEFAULT false" in ddl
    for sqlite_only in ("AUTOINCREMENT", "PRAGMA", "DATETIME"):
        assert sqlite_only not in ddl
