"""The LoraConfig table covers every field of the pinned peft, and the schema scales each module as peft does."""

import dataclasses

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer

from loravault.core import InvalidArgumentError
from loravault.core.adapter_schema import AdapterSchema
from loravault.core.lora import effective_weights
from loravault.core.lora_config import FIELD_RULES, Rule, check_lora_config, kept_metadata, metadata_fields
from loravault.core.models import load_base
from loravault.core.peft_format import adapter_from_peft_model, lora_config_for


def test_the_table_names_every_lora_config_field_exactly_once():
    assert set(FIELD_RULES) == {field.name for field in dataclasses.fields(LoraConfig)}


@pytest.mark.parametrize("keywords", [
    {"use_rslora": True},
    {"alpha_pattern": {"v_proj": 32, "layers.0.self_attn.q_proj": 3}},
    {"rank_pattern": {"layers.1.self_attn.q_proj": 2, "v_proj": 6}},
    {"use_rslora": True, "rank_pattern": {"v_proj": 2}, "alpha_pattern": {"q_proj": 5}},
])
def test_effective_weights_scale_every_module_as_peft_does(keywords):
    torch.manual_seed(0)
    model = get_peft_model(load_base("tiny").model, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                                                               target_modules=["q_proj", "v_proj"], **keywords))
    schema, tensors = adapter_from_peft_model(model, base_fingerprint="0" * 64)
    ours = effective_weights(schema, tensors)
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            torch.testing.assert_close(ours[name], module.get_delta_weight("default"),
                                       rtol=1e-6, atol=1e-7)
    rebuilt = get_peft_model(load_base("tiny").model, lora_config_for(schema))
    scalings = {name: module.scaling["default"] for name, module in rebuilt.named_modules()
                if isinstance(module, LoraLayer)}
    assert scalings == {name: module.scaling["default"] for name, module in model.named_modules()
                        if isinstance(module, LoraLayer)}


def test_a_schema_round_trips_its_lora_settings_through_json():
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_rslora=True,
                        rank_pattern={"v_proj": 2}, lora_dropout=0.05)
    schema, _ = adapter_from_peft_model(get_peft_model(load_base("tiny").model, config), base_fingerprint="0" * 64)
    assert AdapterSchema.from_json(schema.to_json()) == schema
    assert metadata_fields(schema.peft_metadata)["lora_dropout"] == 0.05


@pytest.mark.parametrize(("change", "field"), [
    ({"bias": "all"}, "bias"), ({"use_dora": True}, "use_dora"), ({"layer_replication": [[0, 1]]}, "layer_replication"),
    ({"init_lora_weights": "olora"}, "init_lora_weights"), ({"peft_type": "IA3"}, "peft_type"),
    ({"some_future_field": 1}, "some_future_field"),
])
def test_check_lora_config_refuses_naming_the_field(change, field):
    config = {**LoraConfig(r=4, target_modules=["q_proj"]).to_dict(), **change}
    with pytest.raises(InvalidArgumentError, match=field):
        check_lora_config(config)


def test_stored_metadata_holds_only_kept_fields():
    assert metadata_fields(kept_metadata({"lora_dropout": 0.1, "r": 4})) == {"lora_dropout": 0.1}
    with pytest.raises(InvalidArgumentError, match="use_dora"):
        metadata_fields('{"use_dora": true}')
    assert all(rule in Rule for rule in FIELD_RULES.values())
