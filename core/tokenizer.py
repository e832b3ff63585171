"""A byte-level tokenizer built in code, so the `tiny` base needs no file from a hub."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

__all__ = ["byte_tokenizer", "BYTE_VOCAB_SIZE"]

_SPECIALS = ("<|pad|>", "<|bos|>", "<|eos|>")
BYTE_VOCAB_SIZE = 256 + len(_SPECIALS)


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """One token per UTF-8 byte plus pad, bos and eos; identical on every machine.

    The byte alphabet is sorted so token ids never depend on set iteration order.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {char: index for index, char in enumerate(alphabet)}
    for offset, special in enumerate(_SPECIALS):
        vocab[special] = 256 + offset
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|eos|>"
    )
    tokenizer.padding_side = "right"
    return tokenizer
