"""The inference engine's public surface: exactly the names in __all__, each importable."""

from __future__ import annotations

import loravault.server.inference as inference_package

EXPECTED = {"AdapterCache", "AdapterSlot", "Delta", "EngineStats", "Finished", "Handle", "InferenceConfig",
            "InferenceEngine", "SamplingParams", "Scored"}


def test_all_lists_the_public_names_and_each_exists():
    assert set(inference_package.__all__) == EXPECTED
    assert [name for name in inference_package.__all__ if not hasattr(inference_package, name)] == []
