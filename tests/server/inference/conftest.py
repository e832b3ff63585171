"""Fixtures: the tiny base, a vault on tmp_path, and engines over it that are closed after the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loravault.core import BaseModel, load_base
from loravault.server.inference import InferenceConfig, InferenceEngine
from loravault.server.vault import Vault


@pytest.fixture(scope="session")
def tiny() -> BaseModel:
    return load_base("tiny")


@pytest.fixture
def vault(tmp_path, tiny) -> Iterator[Vault]:
    with Vault.open(tmp_path / "data", base_fingerprint=tiny.fingerprint) as opened:
        yield opened


@pytest.fixture
def make_engine(tiny, vault):
    engines = []

    def make(*, start: bool = True, **overrides) -> InferenceEngine:
        """start=False: requests queued before engine.start() all join its first step."""
        config = InferenceConfig(**{"max_batch": 8, "max_seq_len": 128, "max_prompt_tokens": 64,
                                    "max_new_tokens": 64, "default_new_tokens": 16, **overrides})
        engine = InferenceEngine(tiny, vault=vault, config=config)
        if start:
            engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()
