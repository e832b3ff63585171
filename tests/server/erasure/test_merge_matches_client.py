"""The client's float32 merge (core add_delta, which it signs the result hash over) and the server's (written
into the canonical layout and checked against that hash) are the same bytes, for any values and head dtype."""

from __future__ import annotations

import hashlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loravault.core import AdapterSchema, InvalidArgumentError, TensorSpec, add_delta, canonical_float32
from loravault.server.erasure.merge import merge

FP = hashlib.sha256(b"base").hexdigest()
A, B = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"


class _Manifest:
    label = "adapter acme/support v3"

    def __init__(self, result_hash: str) -> None:
        self.result_hash = result_hash


def _schema(rank: int, d_in: int, d_out: int, dtype: str) -> AdapterSchema:
    return AdapterSchema(rank=rank, alpha=2.0 * rank, target_modules=("q_proj",),
                         tensors=(TensorSpec(A, (rank, d_in)), TensorSpec(B, (d_out, rank))),
                         dtype=dtype, base_fingerprint=FP)


# any finite float32, subnormals included, but below 2**126 so that no sum overflows (that case: the last test)
_values = st.floats(min_value=-(2.0**126), max_value=2.0**126, allow_nan=False, width=32)


@st.composite
def _adapters(draw):
    rank, d_in, d_out = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from(["float32", "bfloat16", "float16"]))
    torch_dtype = getattr(torch, dtype)

    def tensor(shape, dtype):
        n = shape[0] * shape[1]
        return torch.tensor(draw(st.lists(_values, min_size=n, max_size=n)), dtype=torch.float32).view(shape).to(dtype)

    shapes = {A: (rank, d_in), B: (d_out, rank)}
    head = {name: tensor(shape, torch_dtype) for name, shape in shapes.items()}
    head = {name: t.nan_to_num(posinf=0.0, neginf=0.0) for name, t in head.items()}  # float16 overflows to inf
    delta = {name: tensor(shape, torch.float32) for name, shape in shapes.items()}
    return _schema(rank, d_in, d_out, dtype), head, delta


@settings(max_examples=60, deadline=None)
@given(_adapters())
def test_server_merge_is_byte_identical_to_the_clients(adapter):
    schema, head, delta = adapter
    client = canonical_float32(add_delta(schema, head, delta))
    server = merge(_Manifest(hashlib.sha256(client).hexdigest()), schema=schema, head=head, delta=delta)
    assert bytes(server.data) == client


def test_both_refuse_a_sum_that_overflows_float32():
    schema = _schema(1, 2, 2, "float32")
    head = {A: torch.full((1, 2), 3e38), B: torch.zeros(2, 1)}
    delta = {A: torch.full((1, 2), 3e38), B: torch.ones(2, 1)}
    with pytest.raises(InvalidArgumentError, match=f"merged tensor {A} is not finite"):
        add_delta(schema, head, delta)
    with pytest.raises(InvalidArgumentError, match=f"head \\+ delta tensor {A} is not finite"):
        merge(_Manifest("0" * 64), schema=schema, head=head, delta=delta)
