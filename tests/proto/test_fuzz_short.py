"""A short run of the parser fuzz target (loravault.bench.fuzz_parsers), and its contract: the documented
error types are expected, anything else escapes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loravault.bench import fuzz_parsers
from loravault.proto.errors import MalformedEnvelopeError

SEEDS = fuzz_parsers.seed_inputs()


def test_seed_inputs_are_accepted_by_their_parsers():
    for seed in SEEDS:
        fuzz_parsers.TestOneInput(seed)  # raises on anything unexpected
    envelope = fuzz_parsers.parse_envelope(SEEDS[0])
    assert envelope.payload == SEEDS[1]


def test_short_libfuzzer_run_finds_no_crash(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(SEEDS):
        (corpus / f"seed-{index}").write_bytes(seed)
    result = subprocess.run(
        [sys.executable, "-m", "loravault.bench.fuzz_parsers", "-runs=2000", "-max_total_time=20", "-seed=1",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Done" in result.stderr and "runs in" in result.stderr, result.stderr[-2000:]
    assert "Instrumenting loravault.proto.envelope" in result.stderr
    assert not list(tmp_path.glob("crash-*"))


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=2048))
def test_random_bytes_raise_nothing_unexpected(data):
    fuzz_parsers.TestOneInput(data)


@settings(max_examples=150, deadline=None)
@given(seed=st.sampled_from(SEEDS), position=st.integers(min_value=0), value=st.integers(0, 255),
       cut=st.integers(min_value=0))
def test_mutated_seeds_raise_nothing_unexpected(seed, position, value, cut):
    mutated = bytearray(seed)
    mutated[position % len(mutated)] = value
    fuzz_parsers.TestOneInput(bytes(mutated))
    fuzz_parsers.TestOneInput(seed[: cut % (len(seed) + 1)])


def test_an_undocumented_exception_escapes(monkeypatch):
    def broken(data: bytes):
        raise KeyError("payload")

    monkeypatch.setattr(fuzz_parsers, "parse_envelope", broken)
    with pytest.raises(KeyError):
        fuzz_parsers.TestOneInput(b"{}")


def test_a_documented_exception_is_expected(monkeypatch):
    calls = []

    def refuses(data: bytes):
        calls.append(data)
        raise MalformedEnvelopeError("bad")

    monkeypatch.setattr(fuzz_parsers, "parse_envelope", refuses)
    fuzz_parsers.TestOneInput(b"{}")
    assert calls == [b"{}"]
