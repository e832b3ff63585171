"""The pipeline's steps one by one: stream limits, tensor checks, float32 merge, probe check, configuration."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from loravault.core import (
    AdapterSchema,
    DeserializationError,
    FailedPreconditionError,
    InvalidArgumentError,
    ResourceExhaustedError,
    TensorSpec,
    canonical_float32,
    encode_tensors,
    load_base,
)
from loravault.core.peft_format import adapter_from_peft_model
from loravault.server.erasure import (
    ErasureChecks,
    ErasureConfig,
    ErasureHeader,
    ErasureLimits,
    ProbeConfig,
    ProbeRunner,
)
from loravault.server.erasure.limits import check_limits, receive_delta
from loravault.server.erasure.merge import merge
from loravault.server.erasure.probe import check_probe
from loravault.core.norms import frobenius_norm
from loravault.server.erasure.tensors import check_tensors

FP = hashlib.sha256(b"base").hexdigest()
SCHEMA = AdapterSchema(rank=2, alpha=4.0, target_modules=("q_proj",),
                       tensors=(TensorSpec("m.q_proj.lora_A.weight", (2, 8)),
                                TensorSpec("m.q_proj.lora_B.weight", (8, 2))),
                       dtype="float32", base_fingerprint=FP)
HEAD = {"m.q_proj.lora_A.weight": torch.ones(2, 8), "m.q_proj.lora_B.weight": torch.ones(8, 2)}
HEAD_NORM = frobenius_norm(HEAD)


class _Manifest:
    label = "adapter acme/support v3"

    def __init__(self, result_hash: str = "0" * 64) -> None:
        self.result_hash = result_hash


def _header(data: bytes, **changes) -> ErasureHeader:
    header = ErasureHeader(tenant="acme", adapter="support", envelope=b"{}", delta_size=len(data),
                           delta_sha256=hashlib.sha256(data).hexdigest())
    return dataclasses.replace(header, **changes)


@pytest.mark.parametrize(("changes", "error"), [
    ({"envelope": b"x" * 65537}, ResourceExhaustedError),
    ({"delta_size": SCHEMA.max_blob_bytes() + 1}, ResourceExhaustedError),
    ({"delta_size": 0}, InvalidArgumentError),
    ({"delta_sha256": "ABC"}, InvalidArgumentError),
], ids=["envelope", "declared-size", "empty", "digest-form"])
def test_header_limits_refuse_before_reading(changes, error):
    with pytest.raises(error):
        check_limits(_header(b"abc", **changes), schema=SCHEMA, limits=ErasureLimits())


@pytest.mark.parametrize(("chunks", "error"), [
    ([b"a" * 5], ResourceExhaustedError), ([b"ab", b"cd"], ResourceExhaustedError), ([b"ab"], InvalidArgumentError),
], ids=["oversized-chunk", "past-declared-size", "truncated"])
def test_stream_limits_refuse_while_reading(chunks, error):
    header = _header(b"abc")
    with pytest.raises(error):
        receive_delta(header, iter(chunks), limits=ErasureLimits(max_chunk_bytes=4))


def test_stream_of_the_declared_bytes_is_returned_whole():
    assert receive_delta(_header(b"abcdef"), iter([b"abc", b"def"]), limits=ErasureLimits()) == b"abcdef"


@pytest.mark.parametrize(("scale", "match"), [(0.0, "all zeros"), (1.01, "at most 1.0"), (float("nan"), "NaN")],
                         ids=["zero", "norm-bomb", "nan"])
def test_tensor_checks_refuse_zero_huge_and_nonfinite_deltas(scale, match):
    delta = {k: v * scale for k, v in HEAD.items()}
    with pytest.raises(InvalidArgumentError, match=match):
        check_tensors(encode_tensors(delta), manifest=_Manifest(), schema=SCHEMA, head_norm=HEAD_NORM,
                      checks=ErasureChecks())


def test_tensor_check_accepts_a_delta_at_the_norm_bound_and_refuses_garbage_bytes():
    delta = {k: -v for k, v in HEAD.items()}
    assert check_tensors(encode_tensors(delta), manifest=_Manifest(), schema=SCHEMA, head_norm=HEAD_NORM,
                         checks=ErasureChecks()).keys() == HEAD.keys()
    with pytest.raises(DeserializationError):
        check_tensors(b"\x00" * 16, manifest=_Manifest(), schema=SCHEMA, head_norm=HEAD_NORM, checks=ErasureChecks())


def test_merge_is_float32_on_new_tensors_and_checked_against_the_signed_hash():
    delta = {k: torch.full_like(v, 0.5) for k, v in HEAD.items()}
    expected = hashlib.sha256(canonical_float32({k: v + 0.5 for k, v in HEAD.items()})).hexdigest()
    merged = merge(_Manifest(expected), schema=SCHEMA, head=HEAD, delta=delta)
    assert merged.sha256 == expected and torch.equal(HEAD["m.q_proj.lora_A.weight"], torch.ones(2, 8))
    assert merged.norm == pytest.approx(frobenius_norm(merged.tensors), rel=1e-6)
    with pytest.raises(InvalidArgumentError, match="signs result"):
        merge(_Manifest("1" * 64), schema=SCHEMA, head=HEAD, delta=delta)


@pytest.fixture(scope="module")
def tiny_adapter():
    from peft import LoraConfig, get_peft_model

    base = load_base("tiny")
    torch.manual_seed(0)
    model = get_peft_model(load_base("tiny").model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                               init_lora_weights=False))
    schema, tensors = adapter_from_peft_model(model, base_fingerprint=base.fingerprint)
    return base, schema, tensors


def test_probe_refuses_a_delta_that_raises_the_probe_loss_past_the_bound(tiny_adapter):
    base, schema, head = tiny_adapter
    runner = ProbeRunner(base, config=ProbeConfig())
    assert runner.applies_to(schema) and not runner.applies_to(SCHEMA)
    worse = {k: v * 40.0 for k, v in head.items()}
    before, after = runner.loss(schema, head), runner.loss(schema, worse)
    assert after > before  # a 1600x effective weight degrades the probe text (checked, not assumed)
    bound = ProbeConfig(max_loss_increase=(after - before) / 2)
    with pytest.raises(FailedPreconditionError, match="probe loss rises"):
        check_probe(runner, label="a", schema=schema, head=head, head_sha256="h", merged=worse, config=bound)
    roomy = ProbeConfig(max_loss_increase=(after - before) * 2)
    assert check_probe(runner, label="a", schema=schema, head=head, head_sha256="h", merged=worse,
                       config=roomy) == pytest.approx(after)
    assert check_probe(runner, label="a", schema=SCHEMA, head=HEAD, head_sha256="x", merged=HEAD, config=roomy) is None


def test_probe_leaves_the_served_base_model_untouched(tiny_adapter):
    base, schema, head = tiny_adapter
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    ProbeRunner(base, config=ProbeConfig()).loss(schema, {k: v * 10 for k, v in head.items()})
    assert all(torch.equal(before[k], v) for k, v in base.model.state_dict().items())


@pytest.mark.parametrize("bad", [
    lambda: ErasureLimits(max_chunk_bytes=0), lambda: ErasureChecks(max_norm_ratio=float("inf")),
    lambda: ProbeConfig(max_loss_increase=-1.0), lambda: ErasureConfig(checkpoint_every=0),
], ids=["chunk", "norm", "probe", "checkpoint"])
def test_configuration_refuses_invalid_values(bad):
    with pytest.raises(InvalidArgumentError):
        bad()


def test_head_cache_evicts_least_recently_used_within_its_byte_budget():
    from loravault.server.erasure.heads import Head, HeadCache

    cache = HeadCache(max_bytes=2 * 64)  # two entries of 16 float32 each
    one = Head({"t": torch.zeros(16)}, 0.0)
    cache.put("a", one)
    cache.put("b", Head({"t": torch.ones(16)}, 4.0))
    assert cache.get("a") is one  # a is now the most recent
    cache.put("c", Head({"t": torch.ones(16)}, 4.0))
    assert cache.get("b") is None and cache.get("a") is one and cache.get("c") is not None
    cache.put("huge", Head({"t": torch.zeros(1000)}, 0.0))
    assert cache.get("huge") is None
