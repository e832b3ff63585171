"""The one name rule for tenants and adapters, held by the vault and by signed manifests alike."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loravault.proto import ManifestError, check_name, is_valid_name
from loravault.proto.errors import InvalidArgumentError
from loravault.proto.manifest import _require_name

NAMES = [
    pytest.param("acme", True, id="plain"),
    pytest.param("Acme-support_v2.1", True, id="all-allowed-characters"),
    pytest.param("7", True, id="one-digit"),
    pytest.param("a" * 64, True, id="64-chars"),
    pytest.param("a" * 65, False, id="65-chars"),
    pytest.param("", False, id="empty"),
    pytest.param(".hidden", False, id="leading-dot"),
    pytest.param("-x", False, id="leading-dash"),
    pytest.param("acme\n", False, id="trailing-newline"),
    pytest.param("ac/me", False, id="slash"),
    pytest.param("ac me", False, id="space"),
    pytest.param("café", False, id="non-ascii"),
    pytest.param(b"acme", False, id="bytes"),
    pytest.param(None, False, id="none"),
]


@pytest.mark.parametrize(("name", "valid"), NAMES)
def test_name_rule(name, valid):
    assert is_valid_name(name) is valid
    if valid:
        assert check_name(name, what="tenant") == name
    else:
        with pytest.raises(InvalidArgumentError, match="tenant name .* is invalid: use 1 to 64 characters"):
            check_name(name, what="tenant")


@given(st.text(alphabet=st.sampled_from("aZ09._-/ \n\u00e9"), max_size=70))
def test_vault_and_manifest_accept_the_same_names(name):
    try:
        _require_name(name, field_name="tenant")
        manifest_accepts = True
    except ManifestError:
        manifest_accepts = False
    assert manifest_accepts is is_valid_name(name)
