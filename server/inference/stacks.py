"""Per-row LoRA weights laid out for the decode step's gathered matrix products (BGMV, Punica arXiv 2310.18547).

For each adapted projection (layer, name) the stacks hold A transposed and B transposed for every KV-cache row:
`a_t[row]` is (d_in, r_max) and `b_t[row]` is (r_max, d_out), zero for a row without that module (or without an
adapter). A decode step then applies every row's own LoRA with two batched products over the running rows:

    (x @ A_row.T) @ B_row.T  for all rows at once:  bmm((R, 1, d_in), (R, d_in, r)) -> (R, 1, r),
                                                    bmm((R, 1, r), (R, r, d_out)) -> (R, 1, d_out)

Rows are written when a sequence joins (its adapter copied in once) instead of gathered every step, so the
cost per step is the products alone. Ranks below r_max are zero-padded, which leaves the product exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .adapters import AdapterSlot, ModelLayout, ModuleKey

__all__ = ["LoraStacks", "Stack"]


@dataclass
class Stack:
    a_t: torch.Tensor  # (S, d_in, r_max)
    b_t: torch.Tensor  # (S, r_max, d_out)
    rows_in_use: int = 0  # rows whose adapter targets this module; 0 lets the step skip it


class LoraStacks:
    """Owned by the engine thread."""

    def __init__(self, *, rows: int, layout: ModelLayout, device: torch.device, dtype: torch.dtype) -> None:
        self._rows, self._layout, self._device, self._dtype = rows, layout, device, dtype
        self._rank = 0
        self._stacks: dict[ModuleKey, Stack] = {}
        self._assigned: dict[int, AdapterSlot] = {}

    def get(self, key: ModuleKey) -> Stack | None:
        stack = self._stacks.get(key)
        return stack if stack is not None and stack.rows_in_use else None

    def assign(self, row: int, slot: AdapterSlot | None) -> None:
        """Copy `slot`'s weights into `row` of every stack it targets (None: the base model alone)."""
        self.clear(row)
        if slot is None:
            return
        if slot.rank > self._rank:
            self._grow(slot.rank)
        for key, weights in slot.modules.items():
            stack = self._stack(key)
            r = weights.a.shape[0]
            stack.a_t[row, :, :r] = weights.a.T  # (d_in, r)
            stack.b_t[row, :r, :] = weights.b.T  # (r, d_out)
            stack.rows_in_use += 1
        self._assigned[row] = slot

    def clear(self, row: int) -> None:
        slot = self._assigned.pop(row, None)
        if slot is None:
            return
        for key in slot.modules:
            stack = self._stacks[key]
            stack.a_t[row].zero_()
            stack.b_t[row].zero_()
            stack.rows_in_use -= 1

    @property
    def nbytes(self) -> int:
        return sum(s.a_t.numel() * s.a_t.element_size() + s.b_t.numel() * s.b_t.element_size()
                   for s in self._stacks.values())

    def _stack(self, key: ModuleKey) -> Stack:
        stack = self._stacks.get(key)
        if stack is None:
            d_out, d_in = self._layout.shapes[key[1]]
            stack = Stack(
                a_t=torch.zeros(self._rows, d_in, self._rank, device=self._device, dtype=self._dtype),
                b_t=torch.zeros(self._rows, self._rank, d_out, device=self._device, dtype=self._dtype))
            self._stacks[key] = stack
        return stack

    def _grow(self, rank: int) -> None:
        """Re-pad every stack to a larger r_max (rare: only when a higher-rank adapter first joins)."""
        for stack in self._stacks.values():
            a_t = torch.zeros(*stack.a_t.shape[:2], rank, device=self._device, dtype=self._dtype)
            b_t = torch.zeros(stack.b_t.shape[0], rank, stack.b_t.shape[2], device=self._device, dtype=self._dtype)
            a_t[:, :, :self._rank] = stack.a_t
            b_t[:, :self._rank, :] = stack.b_t
            stack.a_t, stack.b_t = a_t, b_t
        self._rank = rank
