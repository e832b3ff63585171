"""in-toto v1 Statements: one canonical byte form, strict parsing, read-only predicates."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loravault.proto.errors import MalformedEnvelopeError
from loravault.proto.statement import STATEMENT_TYPE, Statement, Subject, canonical_json

DIGEST = "ab" * 32


def _statement(predicate=None) -> Statement:
    return Statement(
        subject=(Subject(name="acme/support@v8", digest={"sha256": DIGEST}),),
        predicate_type="urn:loravault:test:v1",
        predicate={"b": [1, 2.5, None, True], "a": "x"} if predicate is None else predicate,
    )


def test_canonical_bytes_are_sorted_compact_ascii():
    assert _statement().to_bytes() == (
        b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"a":"x","b":[1,2.5,null,true]},'
        b'"predicateType":"urn:loravault:test:v1","subject":[{"digest":{"sha256":"' + DIGEST.encode() + b'"},'
        b'"name":"acme/support@v8"}]}'
    )
    assert canonical_json({"k": "\u00e9"}) == b'{"k":"\\u00e9"}'


def test_statement_round_trips_through_bytes():
    statement = _statement()
    assert Statement.from_bytes(statement.to_bytes()) == statement


def test_predicate_is_read_only_and_detached_from_the_caller():
    predicate = {"nested": {"n": 1}, "items": [1]}
    statement = _statement(predicate)
    predicate["nested"]["n"] = 2
    assert statement.predicate["nested"]["n"] == 1
    with pytest.raises(TypeError):
        statement.predicate["nested"]["n"] = 3  # type: ignore[index]
    assert statement.to_dict()["predicate"] == {"nested": {"n": 1}, "items": [1]}


def _doc(**overrides):
    doc = _statement().to_dict()
    doc.update(overrides)
    return doc


def _bytes(doc) -> bytes:
    return canonical_json(doc)


def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


MALFORMED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b"[]", id="array"),
    pytest.param(_bytes({k: v for k, v in _doc().items() if k != "predicate"}), id="missing-predicate"),
    pytest.param(_bytes(_doc(extra=1)), id="extra-field"),
    pytest.param(_bytes(_doc(_type="https://in-toto.io/Statement/v0.1")), id="old-statement-type"),
    pytest.param(_bytes(_doc(subject=[])), id="no-subjects"),
    pytest.param(_bytes(_doc(subject={"name": "x"})), id="subject-not-list"),
    pytest.param(_bytes(_doc(subject=[{"name": "x", "digest": {}}])), id="empty-digest"),
    pytest.param(_bytes(_doc(subject=[{"name": "x", "digest": {"sha256": "AB" * 32}}])), id="uppercase-digest"),
    pytest.param(_bytes(_doc(subject=[{"name": "x", "digest": {"sha256": "ab"}}])), id="short-sha256"),
    pytest.param(_bytes(_doc(subject=[{"name": "", "digest": {"sha256": DIGEST}}])), id="empty-name"),
    pytest.param(_bytes(_doc(subject=[{"name": "x", "digest": {"sha256": DIGEST}, "uri": "u"}])), id="subject-extra"),
    pytest.param(_bytes(_doc(predicateType="")), id="empty-predicate-type"),
    pytest.param(_bytes(_doc(predicate=[])), id="predicate-not-object"),
    pytest.param(_statement().to_bytes().replace(b'{"a"', b'{"a":1,"a"', 1), id="duplicate-key"),
    pytest.param(_statement().to_bytes().replace(b"2.5", b"NaN"), id="nan"),
    pytest.param(_statement().to_bytes().replace(b"2.5", b"1e999"), id="infinite-number"),
    pytest.param(_bytes(_doc(predicate={"d": _nested(40)})), id="too-deep"),
    pytest.param(b"[" * 100_000, id="recursion-bomb"),
    pytest.param(json.dumps(_doc(), indent=1).encode(), id="not-canonical-whitespace"),
    pytest.param(json.dumps(_doc()).encode(), id="not-canonical-spaces"),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_from_bytes_refuses_malformed(data):
    with pytest.raises(MalformedEnvelopeError):
        Statement.from_bytes(data)


def test_type_field_is_in_toto_v1():
    assert _statement().to_dict()["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(
    predicate=st.dictionaries(st.text(), json_values, max_size=5),
    name=st.text(min_size=1, max_size=40),
    digest=st.binary(min_size=32, max_size=32),
)
def test_canonical_json_round_trips(predicate, name, digest):
    statement = Statement(
        subject=(Subject(name=name, digest={"sha256": digest.hex()}),),
        predicate_type="urn:loravault:test:v1",
        predicate=predicate,
    )
    data = statement.to_bytes()
    parsed = Statement.from_bytes(data)
    assert parsed.to_bytes() == data
    assert parsed.to_dict() == statement.to_dict()
