"""Per-token cross entropy without a full fp32 copy of the logits.

A (B, L, V) fp32 copy of the logits is ~2 GB for a 4 x 1024 micro-batch at Llama-3's 128k
vocabulary, and autograd keeps it for the backward pass. The chunked path runs the output layer on
the trained positions only, ``chunk_tokens`` at a time, upcasts one chunk to fp32 for the cross
entropy and recomputes that chunk in the backward pass (``torch.utils.checkpoint``), so at most one
chunk's logits exist at a time. The work happens inside the output layer's own call (its
``forward`` is swapped for the call), so DDP, FSDP and ZeRO-3 hooks see an ordinary forward of
that layer and its weights are gathered where they are sharded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from bayling_data.train.config import TrainConfigError

IGNORE = -100
# Model config attributes that change the logits after the output layer (Gemma-2's softcapping,
# Cohere's scale): the chunked and Liger paths would skip them, so those models take `full`.
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale")


@dataclass(frozen=True)
class LossSettings:
    """How per-token losses are computed (``loss.*`` in the config, resolved for the model)."""

    implementation: Literal["chunked", "full", "liger"] = "chunked"
    chunk_tokens: int = 4096


@dataclass
class TokenLosses:
    """Per-token losses (B, L-1), 0 where untrained; the trained mask; and their differentiable
    sum, the term a step back-propagates (with Liger only ``total`` carries gradients)."""

    losses: torch.Tensor
    trained: torch.Tensor
    total: torch.Tensor


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross entropy (B, L-1) from full logits, 0 where untrained, and the trained mask:
    the token at t is predicted from position t-1 (the reference the other paths must equal)."""
    targets = labels[:, 1:]
    losses = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(targets.shape)
    return losses, targets != IGNORE


def unwrap(model: Any) -> Any:
    """The transformers model inside DDP, FSDP1 and DeepSpeed wrappers (``.module``); peft and
    FSDP2 models answer ``get_output_embeddings`` themselves."""
    while not hasattr(model, "get_output_embeddings") and hasattr(model, "module"):
        model = model.module
    return model


def liger_available(device: torch.device) -> bool:
    """Liger's fused kernels are Triton kernels: CUDA (or ROCm) only."""
    return device.type == "cuda" and importlib.util.find_spec("liger_kernel") is not None


def resolve_loss(chosen: str, chunk_tokens: int, model: Any, device: torch.device) -> LossSettings:
    """The config's ``loss.implementation`` for this model and device (``auto``: Liger where it
    runs, else chunked; ``full`` for models that transform their logits)."""
    inner = unwrap(model)
    transform = next(
        (name for name in LOGIT_TRANSFORMS if getattr(inner.config, name, None) not in (None, 1.0)),
        None,
    )
    head = inner.get_output_embeddings()
    if chosen == "auto":
        if transform is not None:
            chosen = "full"
        elif liger_available(device) and isinstance(head, torch.nn.Linear):
            chosen = "liger"
        else:
            chosen = "chunked"
    elif chosen != "full" and transform is not None:
        raise TrainConfigError(
            f"loss.implementation: {chosen} cannot apply the model's {transform} to its logits; "
            "use full"
        )
    elif chosen == "liger" and not liger_available(device):
        raise TrainConfigError(
            "loss.implementation: liger needs liger_kernel and a CUDA device; install it with: "
            "python -m pip install liger-kernel (or use chunked)"
        )
    elif chosen == "liger" and not isinstance(head, torch.nn.Linear):
        raise TrainConfigError(
            f"loss.implementation: liger needs a plain Linear output layer, not "
            f"{type(head).__name__}; use chunked"
        )
    return LossSettings(chosen, chunk_tokens)


def _chunk_losses(head_forward: Callable, hidden: torch.Tensor, targets: torch.Tensor):
    return F.cross_entropy(head_forward(hidden).float(), targets, reduction="none")


def chunked_losses(
    head_forward: Callable, hidden: torch.Tensor, targets: torch.Tensor, chunk_tokens: int
) -> torch.Tensor:
    """(N,) fp32 losses of hidden states (N, H) against targets (N,), ``chunk_tokens`` rows of
    logits at a time; with gradients on, each chunk is recomputed in the backward pass instead of
    being kept."""
    parts = []
    for start in range(0, hidden.shape[0], chunk_tokens):
        args = (
            head_forward,
            hidden[start : start + chunk_tokens],
            targets[start : start + chunk_tokens],
        )
        if torch.is_grad_enabled():
            parts.append(checkpoint(_chunk_losses, *args, use_reentrant=False))
        else:
            parts.append(_chunk_losses(*args))
    return torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)


def _liger_sum(head: torch.nn.Linear, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    result = liger_fused_linear_cross_entropy(
        hidden, head.weight, targets, head.bias, ignore_index=IGNORE, reduction="sum"
    )
    return result[0] if isinstance(result, tuple) else result


@contextmanager
def _head_returns_losses(model: Any, targets: torch.Tensor, settings: LossSettings) -> Iterator:
    """While inside, the output layer maps the hidden states (B, L, H) to the losses of the
    positions whose target is trained (N,), or for Liger to [sum, N detached losses]."""
    head = unwrap(model).get_output_embeddings()
    had_own = "forward" in head.__dict__
    original = head.forward

    def losses_forward(hidden: torch.Tensor) -> torch.Tensor:
        keep = targets != IGNORE
        kept_hidden, kept_targets = hidden[keep], targets[keep]
        if settings.implementation != "liger":
            return chunked_losses(original, kept_hidden, kept_targets, settings.chunk_tokens)
        total = _liger_sum(head, kept_hidden, kept_targets)
        with torch.no_grad():  # the per-token values, for the per-language and per-task losses
            values = chunked_losses(original, kept_hidden, kept_targets, settings.chunk_tokens)
        return torch.cat([total.float().view(1), values])

    head.forward = losses_forward
    try:
        yield
    finally:
        if had_own:
            head.forward = original
        else:
            del head.forward


def model_token_losses(
    model: Any, inputs: dict[str, Any], labels: torch.Tensor, settings: LossSettings
) -> TokenLosses:
    """Per-token losses (B, L-1) of a forward pass over ``inputs`` with these labels."""
    if settings.implementation == "full":
        losses, trained = token_losses(model(**inputs).logits, labels)
        return TokenLosses(losses, trained, losses.sum())
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE)  # the target of each position
    with _head_returns_losses(model, targets, settings):
        flat = model(**inputs).logits
    keep = targets != IGNORE
    if settings.implementation == "liger":
        total, flat = flat[0], flat[1:]
    else:
        total = flat.sum()
    losses = flat.new_zeros(targets.shape).masked_scatter(keep, flat)
    return TokenLosses(losses[:, :-1], keep[:, :-1], total)
