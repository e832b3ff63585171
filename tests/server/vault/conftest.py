"""Fixtures for the vault tests: a fresh vault per test under tmp_path (helpers live in vault_testkit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vault_testkit import FINGERPRINT, make_schema

from loravault.server.vault import Vault


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    opened = Vault.open(tmp_path / "data", base_fingerprint=FINGERPRINT)
    yield opened
    opened.close()


@pytest.fixture
def acme(vault: Vault) -> Vault:
    """A vault with tenant acme and its empty adapter support."""
    vault.create_tenant("acme")
    vault.create_adapter(tenant="acme", name="support", schema=make_schema())
    return vault
