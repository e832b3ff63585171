"""Alembic environment: migrations run on the connection the vault passes in, never on an ini file's URL.

`database.upgrade` puts an open SQLAlchemy Connection in `config.attributes["connection"]`. Offline mode
(`database.upgrade_sql`) renders the DDL for a dialect without a database, so a DBA can review what will run
on PostgreSQL. No logging configuration here: embedding applications keep theirs.
"""

from __future__ import annotations

from alembic import context

from loravault.server.vault.tables import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("loravault migrations run only through loravault.server.vault.database.upgrade")
    # one transaction around reading the revision and every step: on SQLite that transaction starts with BEGIN
    # IMMEDIATE (database.upgrade), so two processes migrating one file at once run one after the other
    context.configure(connection=connection, target_metadata=metadata, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
