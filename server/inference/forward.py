"""One engine step: prefill and decode for many sequences, many adapters, in one forward of the base model.

The step's tokens are flattened into one (N, D) batch: first one token for every KV row in the decode range
[0, R) (rows that are not decoding carry a dummy token whose output is dropped), then the prompts of the
sequences joining this step, one segment each. Every base projection runs once over all N tokens; each row's
LoRA is added on top: BGMV for the decode rows (LoraStacks), one pair of products per prompt segment for the
prefills (SGMV). Attention differs by kind: decode rows attend over their own KV row with a length mask,
prompts attend causally within their segment. This is Orca's selective batching (OSDI '22) with the LoRA
handling of Punica (arXiv 2310.18547) and S-LoRA (arXiv 2311.03285), written in plain torch.

The math is the base model's own (Llama: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU) calling
its modules and weights, so a row gives the logits a single-request forward with the same adapter gives, up
to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from loravault.core.errors import FailedPreconditionError

from .adapters import AdapterSlot
from .kv import KVCache
from .llama import Attention, Mlp, as_llama
from .stacks import LoraStacks

__all__ = ["StepModel", "StepBatch", "Prefill"]


@dataclass(frozen=True)
class Prefill:
    """A prompt joining the batch: its KV row, tokens, adapter (None: base), and whether every position's
    logits are wanted (Score) or only the last one's (Generate)."""

    row: int
    tokens: torch.Tensor  # (T,) long
    adapter: AdapterSlot | None
    all_logits: bool = False


@dataclass
class StepBatch:
    """What one step computes. Decode rows are KV rows 0..R-1; `decode_pos[r]` is where row r's token goes."""

    decode_tokens: torch.Tensor  # (R,) long
    decode_pos: torch.Tensor  # (R,) long
    prefills: list[Prefill] = field(default_factory=list)

    @property
    def n_decode(self) -> int:
        return int(self.decode_tokens.shape[0])


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StepModel:
    """Runs StepBatches over a Llama-architecture causal LM, reading and writing `kv` and reading `stacks`."""

    def __init__(self, model: torch.nn.Module, *, kv: KVCache, stacks: LoraStacks) -> None:
        self._model, self._kv, self._stacks = as_llama(model), kv, stacks
        config = self._model.config
        if getattr(config, "model_type", None) not in ("llama",):
            raise FailedPreconditionError(
                f"the inference engine serves Llama-architecture bases; this one is {config.model_type!r}")
        self.n_heads = config.num_attention_heads
        self.n_kv = config.num_key_value_heads or self.n_heads  # None means no grouping, as in LlamaConfig
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.n_heads

    @torch.inference_mode()
    def forward(self, batch: StepBatch) -> torch.Tensor:
        """Logits (M, V) for the decode rows (R of them, in row order) then, per prefill, its last position
        (Generate) or every position (Score)."""
        device = self._kv.keys[0].device
        tokens = torch.cat([batch.decode_tokens, *[p.tokens for p in batch.prefills]])  # (N,)
        positions = torch.cat([batch.decode_pos,
                               *[torch.arange(len(p.tokens), device=device) for p in batch.prefills]])  # (N,)
        segments = self._segments(batch)
        inner = self._model.model
        h = inner.embed_tokens(tokens)  # (N, D)
        cos, sin = inner.rotary_emb(h.unsqueeze(0), positions.unsqueeze(0))  # (1, N, hd) each
        rope = (cos[0].unsqueeze(1), sin[0].unsqueeze(1))  # (N, 1, hd): broadcast over heads
        mask = self._decode_mask(batch)
        for index, layer in enumerate(inner.layers):
            h = h + self._attention(index, layer.self_attn, layer.input_layernorm(h), rope, batch, segments, mask)
            h = h + self._mlp(index, layer.mlp, layer.post_attention_layernorm(h), batch, segments)
        picked = self._picked(batch, segments)
        return self._model.lm_head(inner.norm(h[picked]))  # (M, V)

    def _segments(self, batch: StepBatch) -> list[tuple[int, int, Prefill]]:
        """(start, end, prefill) of each prompt in the flattened token batch."""
        start, out = batch.n_decode, []
        for prefill in batch.prefills:
            out.append((start, start + len(prefill.tokens), prefill))
            start += len(prefill.tokens)
        return out

    def _picked(self, batch: StepBatch, segments: list[tuple[int, int, Prefill]]) -> torch.Tensor:
        index = list(range(batch.n_decode))
        for start, end, prefill in segments:
            index.extend(range(start, end) if prefill.all_logits else [end - 1])
        return torch.tensor(index, dtype=torch.long, device=self._kv.keys[0].device)

    def _decode_mask(self, batch: StepBatch) -> torch.Tensor | None:
        """(R, 1, 1, L) True where row r may attend: positions 0..decode_pos[r] of its own KV row."""
        if not batch.n_decode:
            return None
        length = int(batch.decode_pos.max()) + 1
        span = torch.arange(length, device=batch.decode_pos.device)  # (L,)
        return (span.unsqueeze(0) <= batch.decode_pos.unsqueeze(1))[:, None, None, :]  # (R, 1, 1, L)

    def _project(self, key: tuple[int, str], linear: torch.nn.Linear, x: torch.Tensor, batch: StepBatch,
                 segments: list[tuple[int, int, Prefill]]) -> torch.Tensor:
        """The base projection once for all N tokens, plus each token's own LoRA delta."""
        out = linear(x)  # (N, d_out)
        rows = batch.n_decode
        stack = self._stacks.get(key) if rows else None
        if stack is not None:
            shrunk = torch.bmm(x[:rows].unsqueeze(1), stack.a_t[:rows])  # (R, 1, d_in) @ (R, d_in, r) -> (R, 1, r)
            out[:rows] += torch.bmm(shrunk, stack.b_t[:rows]).squeeze(1)  # (R, 1, r) @ (R, r, d_out) -> (R, d_out)
        for start, end, prefill in segments:
            weights = prefill.adapter.modules.get(key) if prefill.adapter is not None else None
            if weights is not None:
                out[start:end] += (x[start:end] @ weights.a.T) @ weights.b.T  # (T, d_in) @ (d_in, r) @ (r, d_out)
        return out

    def _attention(self, index: int, attn: Attention, x: torch.Tensor,
                   rope: tuple[torch.Tensor, torch.Tensor], batch: StepBatch,
                   segments: list[tuple[int, int, Prefill]], mask: torch.Tensor | None) -> torch.Tensor:
        N, H, KV, hd = x.shape[0], self.n_heads, self.n_kv, self.head_dim
        cos, sin = rope
        q = self._project((index, "q_proj"), attn.q_proj, x, batch, segments).view(N, H, hd)
        k = self._project((index, "k_proj"), attn.k_proj, x, batch, segments).view(N, KV, hd)
        v = self._project((index, "v_proj"), attn.v_proj, x, batch, segments).view(N, KV, hd)
        q = q * cos + _rotate_half(q) * sin  # (N, H, hd)
        k = k * cos + _rotate_half(k) * sin  # (N, KV, hd)
        keys, values = self._kv.keys[index], self._kv.values[index]  # (S, KV, L_max, hd)
        rows = batch.n_decode
        out = torch.empty(N, H, hd, device=x.device, dtype=x.dtype)
        if rows:
            row_ids = torch.arange(rows, device=x.device)
            keys[row_ids, :, batch.decode_pos] = k[:rows]  # (R, KV, hd) written at each row's position
            values[row_ids, :, batch.decode_pos] = v[:rows]
        for start, end, prefill in segments:  # after the decode writes: a joining row overwrites its dummy
            keys[prefill.row, :, : end - start] = k[start:end].transpose(0, 1)  # (KV, T, hd)
            values[prefill.row, :, : end - start] = v[start:end].transpose(0, 1)
            seg = F.scaled_dot_product_attention(
                q[start:end].transpose(0, 1).unsqueeze(0),  # (1, H, T, hd)
                k[start:end].transpose(0, 1).unsqueeze(0),  # (1, KV, T, hd)
                v[start:end].transpose(0, 1).unsqueeze(0), is_causal=True, enable_gqa=KV != H)
            out[start:end] = seg[0].transpose(0, 1)  # (T, H, hd)
        if mask is not None:  # there are decode rows
            length = mask.shape[-1]
            dec = F.scaled_dot_product_attention(
                q[:rows].unsqueeze(2),  # (R, H, 1, hd)
                keys[:rows, :, :length], values[:rows, :, :length],  # (R, KV, L, hd): a view, no copy
                attn_mask=mask, enable_gqa=KV != H)
            out[:rows] = dec.squeeze(2)  # (R, H, hd)
        return self._project((index, "o_proj"), attn.o_proj, out.view(N, H * hd), batch, segments)

    def _mlp(self, index: int, mlp: Mlp, x: torch.Tensor, batch: StepBatch,
             segments: list[tuple[int, int, Prefill]]) -> torch.Tensor:
        gate = self._project((index, "gate_proj"), mlp.gate_proj, x, batch, segments)  # (N, I)
        up = self._project((index, "up_proj"), mlp.up_proj, x, batch, segments)  # (N, I)
        return self._project((index, "down_proj"), mlp.down_proj, mlp.act_fn(gate) * up, batch, segments)
