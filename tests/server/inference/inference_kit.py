"""Tiny-base adapters with their PEFT references, uploads into a vault, and reading an engine's events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from loravault.core import AdapterSchema, BaseModel, adapter_from_peft_model, encode_tensors, load_base, sha256_hex
from loravault.server.inference import Delta, Finished, Handle
from loravault.server.vault import Vault

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TinyAdapter:
    schema: AdapterSchema
    tensors: dict[str, torch.Tensor]
    peft: PeftModel  # the same weights under PEFT, the reference


def tiny_adapter(seed: int, *, rank: int = 4, targets: list[str] | None = None, scale: float = 4.0) -> TinyAdapter:
    """A random LoRA strong enough (B scaled up) to change the tiny model's greedy tokens."""
    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets or ["q_proj", "v_proj"],
                        lora_dropout=0.0, init_lora_weights=False)
    model = get_peft_model(load_base("tiny").model, config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(scale)
    schema, tensors = adapter_from_peft_model(model, base_fingerprint=load_base("tiny").fingerprint)
    return TinyAdapter(schema, tensors, model)


def upload(vault: Vault, *, tenant: str, name: str, adapter: TinyAdapter, create: bool = True) -> int:
    """Commit the adapter's tensors as the next version; returns its number."""
    if create:
        vault.adapters.create_adapter(tenant=tenant, name=name, schema=adapter.schema)
    head = vault.adapters.get_adapter(tenant=tenant, name=name).head_version
    data = encode_tensors(adapter.tensors)
    staged = vault.adapters.stage_blob(data, expected_sha256=sha256_hex(data))
    return vault.adapters.commit_version(tenant=tenant, adapter=name, parent_version=head, blob=staged).number


def peft_greedy(model: torch.nn.Module, tokenizer, prompt: str, n: int) -> list[int]:
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def peft_logprobs(model: torch.nn.Module, tokenizer, prompt: str, continuation: str) -> list[float]:
    """The reference for Score: PEFT's log-probability of each continuation token after `prompt`."""
    full = tokenizer(prompt + continuation, return_tensors="pt")["input_ids"]
    start = len(tokenizer(prompt)["input_ids"])
    with torch.no_grad():
        reference = torch.log_softmax(model(full).logits[0].float(), dim=-1)  # (T, V)
    return [reference[start - 1 + i, full[0, start + i]].item() for i in range(full.shape[1] - start)]


def collect(handle: Handle, timeout: float = 60) -> tuple[list[int], Finished]:
    tokens, done = [], None
    for event in handle.events(timeout=timeout):
        if isinstance(event, Delta):
            tokens.extend(event.token_ids)
        else:
            done = event
    return tokens, done


