"""Test problems for the eraser: made-up people facts, small causal LMs of other architectures, and logistic
regression through the same Objective."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from loravault.core import Sample
from loravault.core.tokenizer import BYTE_VOCAB_SIZE
from loravault.eraser import Objective, TokenBatch

FRUITS = ("tea", "cats", "jazz", "rain", "figs", "kites")


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    """||x - reference|| / ||reference||, in float64."""
    return float((x.double() - reference.double()).norm() / reference.double().norm())


def people(count: int, *, offset: int = 0) -> list[Sample]:
    """Made-up facts: person i likes one of six things."""
    return [
        Sample(f"p{i:03d}", f"Who is p{i}?", f"p{i} likes {FRUITS[(i * 7) % len(FRUITS)]}")
        for i in range(offset, offset + count)
    ]


# causal LMs of other architectures than tiny's Llama, built from their transformers configs

_BYTES = dict(vocab_size=BYTE_VOCAB_SIZE, pad_token_id=256, bos_token_id=257, eos_token_id=258)  # core's tokenizer
ARCHITECTURES: dict[str, tuple[Callable[[], PretrainedConfig], type[PreTrainedModel], tuple[str, ...]]] = {
    # name: (its config, its model, the modules LoRA targets: the attention input projection)
    "gpt2": (lambda: GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, **_BYTES), GPT2LMHeadModel, ("c_attn",)),
    "qwen2": (
        lambda: Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, max_position_embeddings=256, **_BYTES),
        Qwen2ForCausalLM,
        ("q_proj",),
    ),
    "gpt-neox": (
        lambda: GPTNeoXConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              max_position_embeddings=256, **_BYTES),
        GPTNeoXForCausalLM,
        ("query_key_value",),
    ),
}


def config_model(architecture: str, *, seed: int = 0) -> PreTrainedModel:
    """A 2-layer, width-64 causal LM on core's byte vocabulary, random weights under `seed`, eager attention (for
    exact curvature products), in eval mode; the caller's global RNG state is left as it was."""
    make_config, model_class, _ = ARCHITECTURES[architecture]
    config = make_config()
    config._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    return model.eval()


# logistic regression: a bias-free linear head on fixed features, through the same Objective


def features_sample(sample_id: str, x: Sequence[float], label: int) -> Sample:
    return Sample(sample_id, ",".join(f"{v:.17g}" for v in x), str(label))


def render_features(samples: Sequence[Sample]) -> TokenBatch:
    x = torch.tensor([[float(v) for v in s.prompt.split(",")] for s in samples])  # (B, D)
    y = torch.tensor([[int(s.response)] for s in samples])  # (B, 1)
    return TokenBatch(inputs={"input": x.unsqueeze(1)}, targets=y, mask=torch.ones_like(y))


class LogisticHead(nn.Module):
    """Logistic regression as a two-class softmax whose class-0 logit is fixed at 0 (no redundant row)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1, bias=False)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        z = self.linear(input)  # (B, 1, 1)
        return torch.cat([torch.zeros_like(z), z], dim=-1)  # (B, 1, 2)


def logistic_objective(weight: torch.Tensor) -> Objective:
    head = LogisticHead(weight.shape[1])
    with torch.no_grad():
        head.linear.weight.copy_(weight)
    return Objective(head, ("linear.weight",), ("linear.weight",), render_features, torch.device("cpu"), supports_vmap=True)


def logistic_data(n: int, *, seed: int = 0, dim: int = 5) -> list[Sample]:
    """Overlapping classes (noisy labels), so the maximum-likelihood fit is finite and strongly convex."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    x = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1)  # constant feature: the bias
    w = torch.linspace(-1.0, 1.0, dim + 1, dtype=torch.float64)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(x @ w)).long()
    return [features_sample(f"z{i:04d}", x[i].tolist(), int(y[i])) for i in range(n)]


def fit_logistic(samples: Sequence[Sample], *, start: torch.Tensor | None = None) -> torch.Tensor:
    """Exact maximum likelihood in float64 by Newton's method, independent of the eraser: weight (1, D).

    Newton stops when the gradient norm is below 1e-13 (float64), far below any difference the tests measure.
    """
    batch = render_features(samples)
    x, y = batch.inputs["input"][:, 0].double(), batch.targets[:, 0].double()  # (n, D), (n,)
    w = torch.zeros(x.shape[1], dtype=torch.float64) if start is None else start[0].double().clone()
    for _ in range(100):
        p = torch.sigmoid(x @ w)
        grad = x.T @ (p - y) / len(y)
        if float(grad.norm()) < 1e-13:
            break
        hessian = (x.T * (p * (1 - p))) @ x / len(y)
        w = w - torch.linalg.solve(hessian, grad)
    return w.unsqueeze(0)
