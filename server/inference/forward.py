"""One engine step: prefill and decode for many sequences, many adapters, in one forward of the base model.

The step's tokens are flattened into one (N, D) batch: first one token for every KV row in the decode range
[0, R) (rows that are not decoding carry a dummy token whose output is dropped), then the prompts of the
sequences joining this step, back to back. Every base projection runs once over all N tokens; each row's LoRA
is added on top from the per-row stacks (LoraStacks, written when a sequence joins): BGMV for the decode rows,
and for the prompts one pair of batched products over the prompts laid out in a right-padded (P, T_max) grid
(SGMV). Attention differs by kind: decode rows attend over their own KV row with a length mask; the prompts
attend causally in one call over the same padded grid (a causal mask never lets a real position see the
padding after it, so no other mask is needed). This is Orca's selective batching (OSDI '22) with the LoRA
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

from .kv import KVCache
from .llama import Attention, Mlp, as_llama
from .stacks import LoraStacks

__all__ = ["StepModel", "StepBatch", "Prefill"]


@dataclass(frozen=True)
class Prefill:
    """A prompt joining the batch: its KV row (whose LoRA stacks already hold its adapter), its tokens, and
    whether every position's logits are wanted (Score) or only the last one's (Generate)."""

    row: int
    tokens: torch.Tensor  # (T,) long
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


class _PromptGrid:
    """The step's prompts as a right-padded (P, T_max) grid, so that their attention and their LoRA products
    run as one batched call each instead of one per prompt."""

    def __init__(self, prefills: list[Prefill], *, device: torch.device) -> None:
        lengths = [len(p.tokens) for p in prefills]
        self.count, self.width = len(prefills), max(lengths)
        self.rows = torch.tensor([p.row for p in prefills], dtype=torch.long, device=device)  # (P,)
        self._cells = torch.cat([torch.arange(n, device=device) + i * self.width
                                 for i, n in enumerate(lengths)])  # (n_prompt_tokens,): flat grid cell of each

    @property
    def positions(self) -> torch.Tensor:
        """(n_prompt_tokens,): each prompt token's position in its own prompt."""
        return self._cells % self.width

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(n_prompt_tokens, *F) -> (P, T_max, *F), zeros in the padding."""
        grid = x.new_zeros(self.count * self.width, *x.shape[1:])
        grid.index_copy_(0, self._cells, x)
        return grid.view(self.count, self.width, *x.shape[1:])

    def unpad(self, grid: torch.Tensor) -> torch.Tensor:
        """(P, T_max, *F) -> (n_prompt_tokens, *F)."""
        return grid.reshape(self.count * self.width, *grid.shape[2:]).index_select(0, self._cells)


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
        grid = _PromptGrid(batch.prefills, device=device) if batch.prefills else None
        positions = batch.decode_pos if grid is None else torch.cat([batch.decode_pos, grid.positions])  # (N,)
        inner = self._model.model
        h = inner.embed_tokens(tokens)  # (N, D)
        cos, sin = inner.rotary_emb(h.unsqueeze(0), positions.unsqueeze(0))  # (1, N, hd) each
        rope = (cos[0].unsqueeze(1), sin[0].unsqueeze(1))  # (N, 1, hd): broadcast over heads
        mask = self._decode_mask(batch)
        for index, layer in enumerate(inner.layers):
            h = h + self._attention(index, layer.self_attn, layer.input_layernorm(h), rope, batch, grid, mask)
            h = h + self._mlp(index, layer.mlp, layer.post_attention_layernorm(h), batch, grid)
        return self._model.lm_head(inner.norm(h[self._picked(batch)]))  # (M, V)

    def _picked(self, batch: StepBatch) -> torch.Tensor:
        index, start = list(range(batch.n_decode)), batch.n_decode
        for prefill in batch.prefills:
            end = start + len(prefill.tokens)
            index.extend(range(start, end) if prefill.all_logits else [end - 1])
            start = end
        return torch.tensor(index, dtype=torch.long, device=self._kv.keys[0].device)

    def _decode_mask(self, batch: StepBatch) -> torch.Tensor | None:
        """(R, 1, 1, L) True where row r may attend: positions 0..decode_pos[r] of its own KV row."""
        if not batch.n_decode:
            return None
        length = int(batch.decode_pos.max()) + 1
        span = torch.arange(length, device=batch.decode_pos.device)  # (L,)
        return (span.unsqueeze(0) <= batch.decode_pos.unsqueeze(1))[:, None, None, :]  # (R, 1, 1, L)

    def _project(self, key: tuple[int, str], linear: torch.nn.Linear, x: torch.Tensor, batch: StepBatch,
                 grid: _PromptGrid | None) -> torch.Tensor:
        """The base projection once for all N tokens, plus each token's own LoRA delta."""
        out = linear(x)  # (N, d_out)
        stack = self._stacks.get(key)
        if stack is None:
            return out
        rows = batch.n_decode
        if rows:
            shrunk = torch.bmm(x[:rows].unsqueeze(1), stack.a_t[:rows])  # (R, 1, d_in) @ (R, d_in, r) -> (R, 1, r)
            out[:rows] += torch.bmm(shrunk, stack.b_t[:rows]).squeeze(1)  # (R, 1, r) @ (R, r, d_out) -> (R, d_out)
        if grid is not None:
            shrunk = torch.bmm(grid.pad(x[rows:]), stack.a_t[grid.rows])  # (P, T, d_in) @ (P, d_in, r) -> (P, T, r)
            out[rows:] += grid.unpad(torch.bmm(shrunk, stack.b_t[grid.rows]))  # (P, T, r) @ (P, r, d_out)
        return out

    def _attention(self, index: int, attn: Attention, x: torch.Tensor,
                   rope: tuple[torch.Tensor, torch.Tensor], batch: StepBatch,
                   grid: _PromptGrid | None, mask: torch.Tensor | None) -> torch.Tensor:
        N, H, KV, hd = x.shape[0], self.n_heads, self.n_kv, self.head_dim
        cos, sin = rope
        q = self._project((index, "q_proj"), attn.q_proj, x, batch, grid).view(N, H, hd)
        k = self._project((index, "k_proj"), attn.k_proj, x, batch, grid).view(N, KV, hd)
        v = self._project((index, "v_proj"), attn.v_proj, x, batch, grid).view(N, KV, hd)
        q = q * cos + _rotate_half(q) * sin  # (N, H, hd)
        k = k * cos + _rotate_half(k) * sin  # (N, KV, hd)
        keys, values = self._kv.keys[index], self._kv.values[index]  # (S, KV, L_max, hd)
        rows = batch.n_decode
        out = torch.empty(N, H, hd, device=x.device, dtype=x.dtype)
        if rows:
            row_ids = torch.arange(rows, device=x.device)
            keys[row_ids, :, batch.decode_pos] = k[:rows]  # (R, KV, hd) written at each row's position
            values[row_ids, :, batch.decode_pos] = v[:rows]
        if grid is not None:  # after the decode writes: a joining row overwrites its dummy
            qp, kp, vp = (grid.pad(t[rows:]).transpose(1, 2) for t in (q, k, v))  # (P, heads, T_max, hd)
            keys[grid.rows, :, :grid.width] = kp  # the padding's keys land past each prompt, where decode writes
            values[grid.rows, :, :grid.width] = vp
            prompts = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True, enable_gqa=KV != H)
            out[rows:] = grid.unpad(prompts.transpose(1, 2))  # (P, T_max, H, hd) -> (n_prompt_tokens, H, hd)
        if mask is not None:  # there are decode rows
            length = mask.shape[-1]
            dec = F.scaled_dot_product_attention(
                q[:rows].unsqueeze(2),  # (R, H, 1, hd)
                keys[:rows, :, :length], values[:rows, :, :length],  # (R, KV, L, hd): a view, no copy
                attn_mask=mask, enable_gqa=KV != H)
            out[:rows] = dec.squeeze(2)  # (R, H, hd)
        return self._project((index, "o_proj"), attn.o_proj, out.view(N, H * hd), batch, grid)

    def _mlp(self, index: int, mlp: Mlp, x: torch.Tensor, batch: StepBatch, grid: _PromptGrid | None) -> torch.Tensor:
        gate = self._project((index, "gate_proj"), mlp.gate_proj, x, batch, grid)  # (N, I)
        up = self._project((index, "up_proj"), mlp.up_proj, x, batch, grid)  # (N, I)
        return self._project((index, "down_proj"), mlp.down_proj, mlp.act_fn(gate) * up, batch, grid)
