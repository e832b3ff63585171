"""The vault's public surface: exactly the names in __all__, each importable."""

from __future__ import annotations

import loravault.server.vault as vault_package

EXPECTED = {
    "AdapterRecord", "BlobReader", "BlobWriter", "DeleteResult", "FsckReport", "IssuedToken", "KeyRecord",
    "Principal", "Role", "SigningPolicy", "StagedBlob", "TenantRecord", "TokenRecord", "Vault", "VersionKind", "VersionRecord",
}


def test_all_lists_the_public_names_and_each_exists():
    assert set(vault_package.__all__) == EXPECTED
    assert [name for name in vault_package.__all__ if not hasattr(vault_package, name)] == []
