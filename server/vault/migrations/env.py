"""Alembic environment: runs migrations on the connection the vault passes in, never on an ini file's URL.

`database.upgrade` puts an open SQLAlchemy Connection in `config.attributes["connection"]`; there is no
offline (SQL script) mode and no logging configuration here, so embedding applications keep theirs.
"""

from __future__ import annotations

from alembic import context

from loravault.server.vault.tables import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("loravault migrations run only through loravault.server.vault.database.upgrade")
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("loravault migrations have no offline mode; open the vault to upgrade its database")
run_migrations_online()
