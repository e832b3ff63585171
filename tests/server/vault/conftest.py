"""Fixtures for the vault tests: a fresh vault per test under tmp_path (helpers live in vault_testkit).

`vault` runs each test on three stores: SQLite with blob files (the embedded default), PostgreSQL with blob
files, and PostgreSQL with blobs in an S3 bucket (moto's server), the scale-out deployment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vault_testkit import FINGERPRINT, make_schema

from loravault.server.vault import Vault

STORES = ("sqlite-files", "postgresql-files", "postgresql-s3")


@pytest.fixture(params=STORES)
def vault_options(request: pytest.FixtureRequest) -> dict[str, str | None]:
    """Vault.open's database_url, blobs and s3_endpoint for one of STORES."""
    database, blobs = request.param.split("-")
    options: dict[str, str | None] = {"database_url": None, "blobs": None, "s3_endpoint": None}
    if database == "postgresql":
        options["database_url"] = request.getfixturevalue("pg_url")
    if blobs == "s3":
        options["blobs"] = request.getfixturevalue("s3_bucket")
        options["s3_endpoint"] = request.getfixturevalue("s3_endpoint")
    return options


@pytest.fixture
def vault(tmp_path: Path, vault_options: dict[str, str | None]) -> Iterator[Vault]:
    opened = Vault.open(tmp_path / "data", base_fingerprint=FINGERPRINT, **vault_options)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_vault(tmp_path: Path) -> Iterator[Vault]:
    """The embedded default only, for tests of SQLite itself or of the blob folder's files."""
    opened = Vault.open(tmp_path / "data", base_fingerprint=FINGERPRINT)
    yield opened
    opened.close()


@pytest.fixture
def acme(vault: Vault) -> Vault:
    """A vault with tenant acme and its empty adapter support."""
    vault.credentials.create_tenant("acme")
    vault.adapters.create_adapter(tenant="acme", name="support", schema=make_schema())
    return vault
