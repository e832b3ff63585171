"""General text the adapter never sees: the standard library's pydoc topics, cut into fixed token windows.

It ships with Python, so it is available offline and identical on every machine; perplexity on it measures
what an erasure costs the base model's general ability (the utility side of the trade-off).
"""

from __future__ import annotations

import pydoc_data.topics
import torch
from transformers import PreTrainedTokenizerBase

__all__ = ["general_text_windows"]


def general_text_windows(tokenizer: PreTrainedTokenizerBase, *, windows: int, length: int) -> torch.Tensor:
    """`windows` consecutive windows of `length` tokens from the topics text, sorted by topic name: (W, L)."""
    text = "\n\n".join(pydoc_data.topics.topics[key] for key in sorted(pydoc_data.topics.topics))
    ids = tokenizer(text[: windows * length * 8], add_special_tokens=False)["input_ids"]
    if len(ids) < windows * length:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids[: windows * length], dtype=torch.long).reshape(windows, length)  # (W, L)
