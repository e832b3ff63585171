"""Adapters made with peft directly, through both ways in (the CLI's folder upload and the SDK's PeftModel
upload), come back out computing the same function under PeftModel.from_pretrained, or are refused up front
naming the field, with nothing left behind (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaForCausalLM

from loravault.client.cli import main as cli_main
from loravault.core import AdapterSchema, FailedPreconditionError, InvalidArgumentError, LoravaultError, TensorSpec
from loravault.core.lora_config import FIELD_RULES, Rule
from loravault.core.models import load_base, tiny_config

INPUT = torch.tensor([[5, 17, 99, 3, 42, 7, 120, 64]])
ALL_SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# name -> LoraConfig keywords (r=4, alpha=8 unless given), and the dtype the LoRA weights are stored in
SUPPORTED: dict[str, tuple[dict, torch.dtype]] = {
    "plain": ({"target_modules": ["q_proj", "v_proj"]}, torch.float32),
    "all seven linear layers": ({"target_modules": ALL_SEVEN}, torch.float32),
    "all-linear": ({"target_modules": "all-linear"}, torch.float32),
    "rslora": ({"target_modules": ["q_proj", "v_proj"], "use_rslora": True}, torch.float32),
    "alpha_pattern": ({"target_modules": ["q_proj", "v_proj"], "alpha_pattern": {"v_proj": 32}}, torch.float32),
    "rank_pattern": ({"target_modules": ["q_proj", "v_proj"], "rank_pattern": {"layers.1.self_attn.q_proj": 2}},
                     torch.float32),
    "layers_to_transform": ({"target_modules": ["q_proj", "o_proj"], "layers_to_transform": [1]}, torch.float32),
    "regex target": ({"target_modules": r".*\.1\.self_attn\.(q|k)_proj"}, torch.float32),
    "exclude_modules": ({"target_modules": ["q_proj", "v_proj"], "exclude_modules": ["model.layers.0.self_attn.v_proj"]},
                        torch.float32),
    "dropout, gaussian init, base name": ({"target_modules": ["q_proj"], "lora_dropout": 0.1,
                                           "init_lora_weights": "gaussian", "base_model_name_or_path": "my/tiny"},
                                          torch.float32),
    "float16": ({"target_modules": ["q_proj", "v_proj"]}, torch.float16),
    "bfloat16": ({"target_modules": ["q_proj", "v_proj"], "use_rslora": True}, torch.bfloat16),
}

# name -> LoraConfig keywords, and what the refusal must name
REFUSED: dict[str, tuple[dict, str]] = {
    "bias all": ({"target_modules": ["q_proj"], "bias": "all"}, "bias"),
    "bias lora_only": ({"target_modules": ["q_proj"], "bias": "lora_only"}, "bias"),
    "dora": ({"target_modules": ["q_proj"], "use_dora": True}, "use_dora"),
    "modules_to_save": ({"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]}, "modules_to_save"),
    "lora_bias": ({"target_modules": ["q_proj"], "lora_bias": True}, "lora_bias"),
    "pissa init": ({"target_modules": ["q_proj"], "init_lora_weights": "pissa"}, "init_lora_weights"),
    "embedding": ({"target_modules": ["embed_tokens", "q_proj"]}, "embed_tokens"),
}


@pytest.fixture
def database_url() -> None:
    """SQLite only: what is tested is the adapter's function and the refusals, not the metadata backend (the
    first upload's single transaction runs on PostgreSQL in test_adapter_roundtrip)."""
    return None


def made_with_peft(keywords: dict, dtype: torch.dtype = torch.float32, *, seed: int = 0,
                   base: torch.nn.Module | None = None) -> PeftModel:
    torch.manual_seed(seed)
    keywords = dict(keywords)
    base_name = keywords.pop("base_model_name_or_path", None)
    config = LoraConfig(**{"r": 4, "lora_alpha": 8, "init_lora_weights": False, **keywords})
    model = get_peft_model(base if base is not None else load_base("tiny").model, config).eval()
    if base_name is not None:  # get_peft_model takes it from the model, which a tiny built from a config lacks
        model.peft_config["default"].base_model_name_or_path = base_name
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            parameter.data = parameter.data.to(dtype)
    return model


def peft_logits(folder: Path) -> torch.Tensor:
    """What peft serves from a folder: the reference for the original and the test of the export."""
    model = PeftModel.from_pretrained(load_base("tiny").model, folder).eval()
    with torch.no_grad():
        return model(INPUT).logits


def upload_by_path(path: str, server, token: str, model: PeftModel, folder: Path, name: str, capsys) -> None:
    """Upload through the CLI's folder path or the SDK's PeftModel path; a refusal raises LoravaultError."""
    if path == "sdk":
        with server.client(token) as client:
            client.upload(name, model)
        return
    capsys.readouterr()
    code = cli_main(["--server", server.target, "--token", token, "adapters", "upload", name, str(folder)])
    err = capsys.readouterr().err
    if code != 0:
        raise LoravaultError(err)


@pytest.fixture
def acme_token(server) -> str:
    with server.client() as admin:
        admin.create_tenant("acme")
        return admin.issue_token(tenant="acme", label="interop").token


@pytest.fixture
def acme(server, acme_token):
    with server.client(acme_token) as client:
        yield client


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", ["cli", "sdk"])
def test_every_supported_config_comes_back_computing_the_same_function(server, acme, acme_token, tmp_path, capsys,
                                                                      path):
    for index, (variant, (keywords, dtype)) in enumerate(SUPPORTED.items()):
        model = made_with_peft(keywords, dtype, seed=index)
        original = tmp_path / f"{index}-original"
        model.save_pretrained(original)
        name = f"a{index}"
        upload_by_path(path, server, acme_token, model, original, name, capsys)
        exported = tmp_path / f"{index}-exported"
        acme.download(name, exported)
        reference = peft_logits(original)
        assert torch.equal(peft_logits(exported), reference), variant
        with torch.no_grad():
            served = acme.load_peft(name, load_base("tiny").model)(INPUT).logits
        torch.testing.assert_close(served, reference, rtol=0, atol=1e-5, msg=variant)
        config = json.loads((exported / "adapter_config.json").read_text())
        # what came in: the folder peft saved (CLI), or the PeftModel's own config (save_pretrained adds
        # auto_mapping, the SDK never saves)
        given = json.loads((original / "adapter_config.json").read_text()) if path == "cli" \
            else json.loads(json.dumps(model.peft_config["default"].to_dict(), default=sorted))
        for field, rule in FIELD_RULES.items():
            if rule is Rule.KEPT or field in ("r", "lora_alpha", "use_rslora"):
                assert config.get(field) == given.get(field), (variant, field)


@pytest.mark.parametrize("path", ["cli", "sdk"])
@pytest.mark.parametrize("variant", list(REFUSED))
def test_unsupported_configs_are_refused_naming_the_field_and_leave_nothing(server, acme, acme_token, tmp_path,
                                                                            capsys, path, variant):
    keywords, field = REFUSED[variant]
    model = made_with_peft(keywords)
    model.save_pretrained(tmp_path / "original")
    with pytest.raises(LoravaultError, match=field):
        upload_by_path(path, server, acme_token, model, tmp_path / "original", "refused", capsys)
    assert acme.list_adapters() == []


def test_a_refused_first_upload_leaves_no_adapter_behind(server, acme):
    model = made_with_peft({"target_modules": ["q_proj"]})
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "lora_B" in n)[0, 0] = float("nan")
    with pytest.raises(InvalidArgumentError, match="NaN"):
        acme.upload("poisoned", model)
    assert acme.list_adapters() == []
    good = made_with_peft({"target_modules": ["q_proj"]})
    assert acme.upload("poisoned", good).number == 1  # the name is free: nothing was half-created


def test_an_existing_adapter_refuses_an_upload_with_another_schema(server, acme):
    acme.upload("support", made_with_peft({"target_modules": ["q_proj"]}))
    with pytest.raises(FailedPreconditionError, match="another schema"):
        acme.upload("support", made_with_peft({"target_modules": ["q_proj"], "use_rslora": True}))
    # kept metadata alone (here the dropout) may differ: the adapter's own, fixed at creation, is what exports
    assert acme.upload("support", made_with_peft({"target_modules": ["q_proj"], "lora_dropout": 0.2})).number == 2
    assert [v.number for v in acme.versions("support")] == [1, 2]


def wider_llama() -> LlamaForCausalLM:
    config = tiny_config()
    config.hidden_size, config.intermediate_size = 96, 192
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


@pytest.mark.parametrize("path", ["cli", "sdk"])
def test_an_adapter_for_a_base_of_another_width_is_refused(server, acme, acme_token, tmp_path, capsys, path):
    model = made_with_peft({"target_modules": ["q_proj"]}, base=wider_llama())
    model.save_pretrained(tmp_path / "wide")
    with pytest.raises(LoravaultError, match="in_features 64|bound to base"):
        upload_by_path(path, server, acme_token, model, tmp_path / "wide", "wide", capsys)
    assert acme.list_adapters() == []


def test_a_peft_model_over_other_base_weights_is_refused(server, acme):
    base = load_base("tiny").model
    with torch.no_grad():
        base.model.layers[0].mlp.up_proj.weight.add_(0.01)
    with pytest.raises(FailedPreconditionError, match="bound to base"):
        acme.upload("changed", made_with_peft({"target_modules": ["q_proj"]}, base=base))
    assert acme.list_adapters() == []


def schema_with(tensors: dict[str, tuple[int, int]], fingerprint: str, targets=("q_proj",)) -> AdapterSchema:
    return AdapterSchema(rank=4, alpha=8.0, target_modules=targets, dtype="float32", base_fingerprint=fingerprint,
                         tensors=tuple(TensorSpec(n, s) for n, s in sorted(tensors.items())))


def q_proj_pair(layer: int, module: str = "self_attn.q_proj") -> dict[str, tuple[int, int]]:
    prefix = f"base_model.model.model.layers.{layer}.{module}"
    return {f"{prefix}.lora_A.weight": (4, 64), f"{prefix}.lora_B.weight": (64, 4)}


@pytest.mark.parametrize(("tensors", "targets", "message"), [
    ({**q_proj_pair(0), **q_proj_pair(1), **q_proj_pair(0, "self_attn.k_proj")}, ("q_proj",), "does not name it"),
    ({**q_proj_pair(0), **q_proj_pair(1), **q_proj_pair(7)}, ("q_proj",), "has no model.layers.7"),
    ({**q_proj_pair(0)}, ("q_proj",), "no tensors for it"),
    ({**q_proj_pair(0), **q_proj_pair(1)}, ("q_proj", "w_proj"), "matches no adapted module"),
    ({"base_model.model.model.layers.0.mlp.up_proj.lora_A.weight": (4, 64),
      "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight": (64, 4),
      "base_model.model.model.layers.1.mlp.up_proj.lora_A.weight": (4, 64),
      "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight": (128, 4)}, ("up_proj",), "out_features 128"),
    ({"base_model.model.model.norm.lora_A.weight": (4, 64), "base_model.model.model.norm.lora_B.weight": (64, 4)},
     ("norm",), "is a LlamaRMSNorm"),
])
def test_the_server_checks_every_tensor_against_its_base(server, acme, tensors, targets, message):
    schema = schema_with(tensors, server.fingerprint, targets)
    with pytest.raises(FailedPreconditionError, match=message):
        acme.create_adapter("mismatch", schema)
    assert acme.list_adapters() == []
