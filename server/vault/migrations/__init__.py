"""Alembic migrations of the vault's metadata schema, run programmatically by `database.upgrade`."""
