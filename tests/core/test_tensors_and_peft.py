"""The tensor codec and PEFT's format: canonical bytes, hostile input, and real PeftModel round trips."""

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from loravault.core import (
    DeserializationError,
    adapter_from_peft_model,
    add_delta,
    decode_tensors,
    effective_distance,
    effective_weights,
    encode_tensors,
    load_base,
    peft_model_with_adapter,
    read_peft_folder,
    write_peft_folder,
)


def peft_tiny(seed=0):
    base = load_base("tiny")
    model = get_peft_model(base.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  lora_dropout=0.0, init_lora_weights=False))
    torch.manual_seed(seed)
    return base, model


def test_encoding_is_canonical():
    t = {"b": torch.arange(4.0), "a": torch.ones(2, 2)}
    assert encode_tensors(t) == encode_tensors(dict(reversed(list(t.items()))))
    assert torch.equal(decode_tensors(encode_tensors(t))["b"], t["b"])


@pytest.mark.parametrize("data", [b"", b"\x00" * 8, b"\xff" * 64, (2**40).to_bytes(8, "little") + b"{}",
                                  (10).to_bytes(8, "little") + b'{"a": 1}xx'],
                         ids=["empty", "zero-header", "garbage", "huge-header-length", "bad-json"])
def test_hostile_bytes_raise_one_error_type(data):
    with pytest.raises(DeserializationError):
        decode_tensors(data)


def test_peft_folder_round_trip_gives_identical_logits(tmp_path):
    base, model = peft_tiny()
    schema, tensors = adapter_from_peft_model(model, base_fingerprint=base.fingerprint)
    write_peft_folder(tmp_path, schema, tensors, base_name="tiny")
    read_schema, read_tensors = read_peft_folder(tmp_path)
    assert read_schema == schema
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    reloaded = PeftModel.from_pretrained(load_base("tiny").model, tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(model.eval()(ids).logits, reloaded(ids).logits, atol=1e-6)
        assert not torch.allclose(load_base("tiny").model(ids).logits, reloaded(ids).logits, atol=1e-4)


def test_effective_weights_match_peft_merge():
    base, model = peft_tiny()
    schema, tensors = adapter_from_peft_model(model, base_fingerprint=base.fingerprint)
    pair = schema.pairs()[0]
    layer = model.get_submodule(pair.module)
    expected = layer.get_delta_weight("default")
    assert torch.allclose(effective_weights(schema, tensors)[pair.module], expected, atol=1e-6)


def test_delta_changes_the_function_and_distance_measures_it():
    base, model = peft_tiny()
    schema, tensors = adapter_from_peft_model(model, base_fingerprint=base.fingerprint)
    delta = {name: torch.full_like(t, 0.01) for name, t in tensors.items()}
    merged = add_delta(schema, tensors, delta)
    assert effective_distance(schema, tensors, tensors) == 0.0
    assert effective_distance(schema, tensors, merged) > 0.0
    model2 = peft_model_with_adapter(load_base("tiny").model, schema, merged)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert not torch.allclose(model.eval()(ids).logits, model2(ids).logits, atol=1e-6)
