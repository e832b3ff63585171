"""The one SHA-256 hex rule that every part holds a digest to."""

import hashlib

import pytest

from loravault.proto import is_sha256_hex

GOOD = hashlib.sha256(b"loravault").hexdigest()


def test_a_sha256_hexdigest_has_the_form():
    assert is_sha256_hex(GOOD)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(GOOD.upper(), id="uppercase"),
        pytest.param(GOOD[:-1], id="63-chars"),
        pytest.param(GOOD + "0", id="65-chars"),
        pytest.param(GOOD + "\n", id="trailing-newline"),
        pytest.param(" " + GOOD, id="leading-space"),
        pytest.param(GOOD[:-1] + "g", id="non-hex"),
        pytest.param("０" * 64, id="fullwidth-digits"),
        pytest.param(GOOD.encode(), id="bytes"),
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
    ],
)
def test_anything_else_is_refused(value):
    assert not is_sha256_hex(value)
