"""The federation's run config: Flower's flat kebab-case keys into validated sections, read once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from loravault.core import InvalidArgumentError
from loravault.federation.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def test_the_apps_own_pyproject_config_parses_with_its_defaults():
    flower = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    config = RunConfig.from_flower(flower["config"])
    assert config.rounds.aggregation == "ffa" and config.rounds.num_server_rounds == 2
    assert flower["components"] == {"serverapp": "loravault.federation.server_app:app",
                                    "clientapp": "loravault.federation.client_app:app"}


def test_integers_widen_to_float_fields_and_modules_split():
    config = RunConfig.from_flower({"alpha": 8, "target-modules": "v_proj, q_proj"})
    assert config.training.alpha == 8.0 and isinstance(config.training.alpha, float)
    assert config.training.modules == ("q_proj", "v_proj")


@pytest.mark.parametrize("settings, match", [
    ({"num-rounds": 3}, "not a federation setting"),
    ({"aggregation": "median"}, "aggregation"),
    ({"min-replies": 0}, "min-replies"),
    ({"round-timeout": -1.0}, "round-timeout"),
    ({"vault-address": "127.0.0.1:1"}, "key-files"),
    ({"learning-rate": 0.0}, "learning-rate"),
], ids=["unknown-key", "unknown-method", "zero-replies", "negative-timeout", "vault-without-key", "zero-lr"])
def test_bad_settings_are_refused_by_name(settings, match):
    with pytest.raises(InvalidArgumentError, match=match):
        RunConfig.from_flower(settings)
