"""The adapter schema validates itself and the tensors of every version."""

import pytest
import torch

from loravault.core import AdapterSchema, FailedPreconditionError, InvalidArgumentError, TensorSpec
from loravault.core.errors import DeserializationError

FP = "ab" * 32
A, B = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"


def schema(**overrides):
    fields = dict(rank=4, alpha=8.0, target_modules=("q_proj",),
                  tensors=(TensorSpec(A, (4, 16)), TensorSpec(B, (16, 4))), dtype="float32", base_fingerprint=FP)
    fields.update(overrides)
    return AdapterSchema(**fields)


def tensors():
    return {A: torch.zeros(4, 16), B: torch.zeros(16, 4)}


@pytest.mark.parametrize(
    "overrides",
    [
        {"rank": 0},
        {"rank": -1},
        {"alpha": float("nan")},
        {"alpha": 0.0},
        {"target_modules": ()},
        {"dtype": "int8"},
        {"base_fingerprint": "xyz"},
        {"base_fingerprint": "AB" * 32},
        {"tensors": ()},
        {"tensors": (TensorSpec(B, (16, 4)), TensorSpec(A, (4, 16)))},
        {"tensors": (TensorSpec(A, (4, 16)),)},
        {"tensors": (TensorSpec(A, (4, 16)), TensorSpec(B, (16, 0)))},
        {"tensors": (TensorSpec(A, (3, 16)), TensorSpec(B, (16, 4)))},
        {"tensors": (TensorSpec("m.q_proj.weight", (4, 16)),)},
    ],
    ids=["rank-zero", "rank-negative", "alpha-nan", "alpha-zero", "no-targets", "int-dtype", "short-fingerprint",
         "uppercase-fingerprint", "no-tensors", "unsorted", "a-without-b", "zero-dim", "rank-mismatch", "not-lora"],
)
def test_invalid_schema_is_refused(overrides):
    with pytest.raises(InvalidArgumentError):
        schema(**overrides)


def test_json_round_trip_is_exact():
    s = schema()
    assert AdapterSchema.from_json(s.to_json()) == s


@pytest.mark.parametrize("text", ["", "[]", "{}", '{"rank": "x"}', "{" * 10], ids=["empty", "list", "no-fields",
                                                                                     "bad-rank", "broken"])
def test_malformed_schema_json_is_a_deserialization_error(text):
    with pytest.raises((DeserializationError, InvalidArgumentError)):
        AdapterSchema.from_json(text)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.pop(A), "missing tensor"),
        (lambda t: t.__setitem__("extra.lora_A.weight", torch.zeros(1)), "does not name"),
        (lambda t: t.__setitem__(B, torch.zeros(4, 16)), "shape"),
        (lambda t: t.__setitem__(B, torch.zeros(16, 4, dtype=torch.float16)), "dtype"),
        (lambda t: t[A].__setitem__((0, 0), float("nan")), "NaN"),
        (lambda t: t[B].__setitem__((0, 0), float("inf")), "NaN or infinite"),
    ],
    ids=["missing", "extra", "shape", "dtype", "nan", "inf"],
)
def test_tensors_not_matching_the_schema_are_refused(mutate, message):
    t = tensors()
    mutate(t)
    with pytest.raises(InvalidArgumentError, match=message):
        schema().check_tensors(t)


def test_matching_tensors_pass_and_binding_is_checked():
    schema().check_tensors(tensors())
    with pytest.raises(FailedPreconditionError, match="bound to base"):
        schema().check_binding("cd" * 32)


def test_size_bound_covers_data_and_header():
    s = schema()
    assert s.tensor_bytes() == (4 * 16 * 2) * 4
    assert s.tensor_bytes() < s.max_blob_bytes() < s.tensor_bytes() + 8192
