"""Base models load from code or local files, and their fingerprints identify the weights exactly."""

import subprocess
import sys

import pytest
import torch

from loravault.core import InvalidArgumentError, NotFoundError, load_base, weights_fingerprint


def test_tiny_fingerprint_is_identical_in_a_fresh_process():
    here = load_base("tiny").fingerprint
    code = "from loravault.core import load_base; print(load_base('tiny').fingerprint)"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert here == there


def test_tiny_build_does_not_disturb_the_callers_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_base("tiny")
    assert torch.equal(torch.rand(3), expected)


def test_fingerprint_changes_with_one_weight():
    model = load_base("tiny").model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    before = weights_fingerprint(state)
    state["model.norm.weight"][0] += 1e-6
    assert weights_fingerprint(state) != before


def test_fingerprint_covers_names_and_dtype():
    a = {"x": torch.zeros(2, 2)}
    assert weights_fingerprint(a) != weights_fingerprint({"y": torch.zeros(2, 2)})
    assert weights_fingerprint(a) != weights_fingerprint({"x": torch.zeros(2, 2, dtype=torch.float64)})
    assert weights_fingerprint(a) != weights_fingerprint({"x": torch.zeros(4)})


def test_unknown_base_name_is_refused():
    with pytest.raises(InvalidArgumentError, match="unknown base"):
        load_base("gpt-17")


def test_missing_base_folder_is_not_found(tmp_path):
    with pytest.raises(NotFoundError):
        load_base(str(tmp_path / "absent"))


def test_local_folder_loads_with_the_same_fingerprint(tmp_path):
    tiny = load_base("tiny")
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    assert load_base(str(tmp_path)).fingerprint == tiny.fingerprint
