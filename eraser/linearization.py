"""One batch's curvature products from a kept autograd graph: the forward is paid once, not once per product.

A solve takes many curvature products at the same parameters on the same batches (CG: one per iteration, LiSSA
and power iteration: one per step). `torch.func.jvp` then `vjp` redo the forward for every product (twice:
once for the tangent, once for the pullback). Kept here instead:

- Gauss-Newton: the logits' graph and the graph of u -> J'u (a backward with create_graph). Jv is the
  derivative of <J'u, v> in u (the "double-vjp" trick: J'u is linear in u, so its vjp with v is Jv), one
  backward through the backward; J'(H Jv) is one more backward through the kept forward graph.
- Hessian: the graph of the gradient (create_graph); Hv is one backward through it.

On SmolLM2-135M (8 samples of ~20 tokens, two CPU cores) a Gauss-Newton product fell from 1.5 s to 0.5 s after a
2 s build. The price is memory: the kept graph (activations of the forward and of the backward) is counted by
`saved_bytes` so the operator can keep only as many batches as its budget allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Linearization", "linearize_gauss_newton", "linearize_hessian"]


@dataclass(frozen=True)
class Linearization:
    """A batch's kept graph and the product it answers: v (P,) -> the batch's summed curvature times v."""

    product: Callable[[torch.Tensor], torch.Tensor]
    saved_bytes: int  # tensors the graph keeps alive, beyond the module's own parameters and buffers


class _SavedBytes:
    """Counts the distinct storages autograd saves for backward, leaving out the module's weights."""

    def __init__(self, module: nn.Module) -> None:
        self._seen = {t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers())}
        self.total = 0

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self._seen:
            self._seen.add(storage.data_ptr())
            self.total += storage.nbytes()
        # detached: a saved output kept with its grad_fn would hold that grad_fn alive from inside it, a cycle
        # through C++ that no garbage collection frees (every request's graphs leaked until the process died);
        # autograd re-attaches the grad_fn when it unpacks, so nothing is lost (pytorch/pytorch#189025)
        return tensor.detach()

    @staticmethod
    def unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor


def _grad(output: torch.Tensor, wrt: torch.Tensor, cotangent: torch.Tensor | None, **kwargs: bool) -> torch.Tensor:
    (result,) = torch.autograd.grad(output, wrt, cotangent, allow_unused=True, **kwargs)
    return torch.zeros_like(wrt) if result is None else result


def linearize_gauss_newton(
    module: nn.Module,
    theta: torch.Tensor,
    logits: Callable[[torch.Tensor], torch.Tensor],
    output_hessian: Callable[[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]],
) -> Linearization:
    """Keep the graph of `logits` at theta; output_hessian(logits) returns u -> H_L u at those (detached) logits."""
    counter = _SavedBytes(module)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        leaf = theta.detach().requires_grad_(True)
        out = logits(leaf)
        dual = torch.zeros_like(out, requires_grad=True)
        pullback = _grad(out, leaf, dual, create_graph=True)
    hessian = output_hessian(out.detach())

    def product(v: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            jv = _grad(pullback, dual, v.detach(), retain_graph=True)
            return _grad(out, leaf, hessian(jv).detach(), retain_graph=True)

    return Linearization(product, counter.total + 2 * out.numel() * out.element_size())  # + H_L's two (B, T, V)


def linearize_hessian(module: nn.Module, theta: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor]) -> Linearization:
    """Keep the graph of the gradient of the scalar `loss` at theta."""
    counter = _SavedBytes(module)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        leaf = theta.detach().requires_grad_(True)
        gradient = _grad(loss(leaf), leaf, None, create_graph=True)

    def product(v: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return _grad(gradient, leaf, v.detach(), retain_graph=True)

    return Linearization(product, counter.total)
