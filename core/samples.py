"""Training samples and the one template that renders them, so training and erasure see the same tokens.

The loss is the mean token negative log-likelihood over the response tokens only: prompt positions carry the
label IGNORE_INDEX.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

__all__ = ["Sample", "RenderedBatch", "render", "render_batch", "IGNORE_INDEX", "PROMPT_TEMPLATE"]

IGNORE_INDEX = -100
PROMPT_TEMPLATE = "Question: {prompt}\nAnswer:"


@dataclass(frozen=True)
class Sample:
    """One training example; `id` is the tenant's own identifier (it never leaves the tenant in clear)."""

    id: str
    prompt: str
    response: str


@dataclass(frozen=True)
class RenderedBatch:
    """Right-padded token ids with response-only labels."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    labels: torch.Tensor  # (B, T), IGNORE_INDEX outside the response

    def to(self, device: str | torch.device) -> RenderedBatch:
        return RenderedBatch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))


def render(tokenizer: PreTrainedTokenizerBase, sample: Sample, *, max_length: int = 128) -> tuple[list[int], list[int]]:
    """Token ids and labels of one sample: prompt tokens masked, response tokens and eos scored."""
    prompt_ids = tokenizer(PROMPT_TEMPLATE.format(prompt=sample.prompt), add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(" " + sample.response, add_special_tokens=False)["input_ids"]
    response_ids = response_ids + [tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_length]
    return ids, labels


def render_batch(
    tokenizer: PreTrainedTokenizerBase, samples: Sequence[Sample], *, max_length: int = 128
) -> RenderedBatch:
    """Render and right-pad samples into one batch."""
    rendered = [render(tokenizer, s, max_length=max_length) for s in samples]
    width = max(len(ids) for ids, _ in rendered)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rendered), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rendered), width), dtype=torch.long)
    labels = torch.full((len(rendered), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, lab) in enumerate(rendered):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, : len(lab)] = torch.tensor(lab)
    return RenderedBatch(input_ids, attention, labels)
