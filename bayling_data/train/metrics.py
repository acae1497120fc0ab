"""Throughput, MFU and the loss broken down by the rows' language and direction."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

# Dense bf16 peaks (no sparsity), TFLOP/s, by a substring of torch.cuda.get_device_name().
GPU_BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "H800": 989.0,
    "A100": 312.0,
    "A800": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "RTX 4090": 165.0,
    "V100": 125.0,  # fp16: V100 has no bf16
}


def measured_matmul_tflops(dtype: torch.dtype = torch.float32, size: int = 1024) -> float:
    """What this CPU does on a square matmul in ``dtype`` at its current thread count, best of
    five short windows (a busy machine only lowers it), as a stand-in for a peak no table lists."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best = 0.0
    for _ in range(5):
        repeats, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.05:
            a @ b
            repeats += 1
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12)
    return best


def device_peak_tflops(
    device: torch.device, configured: float | None = None, dtype: torch.dtype = torch.bfloat16
) -> tuple[float, str]:
    """The peak MFU is measured against, and where the figure comes from: the config, the GPU's
    dense bf16 peak from the table, or on CPU a matmul measured in the training dtype."""
    if configured is not None:
        return configured, "config peak_tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in GPU_BF16_PEAK_TFLOPS.items():
            if key in name:
                return tflops, f"{name} bf16 dense peak"
        return float("nan"), f"{name}: unknown peak (set peak_tflops)"
    label = str(dtype).removeprefix("torch.")
    return measured_matmul_tflops(dtype), f"measured {label} matmul on this CPU"


def full_numel(parameter: torch.Tensor) -> int:
    """Elements of the whole parameter, also when DeepSpeed's ZeRO-3 partitioned it at load
    (``zero.Init``: the local tensor is empty, ``ds_numel`` is the full size)."""
    return getattr(parameter, "ds_numel", None) or parameter.numel()


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(full_numel(p) for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass(frozen=True)
class ModelFlops:
    """What training costs in FLOPs, from the model's sizes (PaLM, Chowdhery et al. 2022, app. B:
    6·N per token plus the attention scores, with causal attention counted as the half of the
    score matrix it computes).

    - Matmuls: forward 2·N per token, backward 2·N for the activations' gradients plus 2·N for
      the weights' (trainable weights only: 6·N for full fine-tuning, ~4·N for LoRA). N excludes
      the input embedding table (a lookup, no FLOPs) but includes the output layer (a matmul),
      once even when the two are tied.
    - Attention: Q·Kᵀ and the weighted sum of V are 2·2·s²·d FLOPs per layer for a row of s tokens
      over d = heads·head_dim, halved for causal attention; x3 for forward and backward:
      6·layers·d·s² per row (PaLM's 12·layers·d·s per token, halved). Packed rows attend within
      themselves, so each row counts its own length, not the packed sequence's.
    """

    matmul_parameters: int
    trainable_matmul_parameters: int
    layers: int
    attention_width: int

    def flops(self, tokens: float, squared_row_lengths: float) -> float:
        """FLOPs of training on ``tokens`` tokens whose rows' squared lengths sum as given."""
        dense = (4 * self.matmul_parameters + 2 * self.trainable_matmul_parameters) * tokens
        return dense + 6 * self.layers * self.attention_width * squared_row_lengths


def model_flops(model: torch.nn.Module) -> ModelFlops:
    """``ModelFlops`` of a transformers causal LM (also inside DDP/FSDP/peft wrappers); call it
    before the model is sharded, while every parameter has its full size."""
    inner = model
    while not hasattr(inner, "get_input_embeddings") and hasattr(inner, "module"):
        inner = inner.module
    config = inner.config.get_text_config()
    embedding = inner.get_input_embeddings().weight
    head = inner.get_output_embeddings()
    tied = head is not None and head.weight is embedding
    lookup = 0 if tied else full_numel(embedding)
    trainable_lookup = lookup if embedding.requires_grad else 0
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return ModelFlops(
        matmul_parameters=count_parameters(model) - lookup,
        trainable_matmul_parameters=count_parameters(model, trainable_only=True) - trainable_lookup,
        layers=config.num_hidden_layers,
        attention_width=heads * head_dim,
    )


def squared_row_lengths(segments: torch.Tensor) -> int:
    """The sum of each packed row's squared length in a (B, L) segment map (0: padding)."""
    width = int(segments.max()) + 1 if segments.numel() else 1
    keys = segments + width * torch.arange(segments.shape[0], device=segments.device)[:, None]
    counts = torch.bincount(keys[segments > 0].reshape(-1))
    return int((counts.long() ** 2).sum())


def mfu(flops_per_second: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation: the model's FLOPs per second (``ModelFlops``) over the peak."""
    return flops_per_second / (peak_tflops * 1e12)


class GroupedLoss:
    """Sums of per-token loss and token counts, in total and per group (language, direction).

    Every group's mean loss weighted by its tokens adds up to the overall mean, since the groups
    partition the trained tokens.
    """

    def __init__(self, groups: dict[str, list[str]], device: torch.device):
        self.names = groups
        self.sums = {
            key: torch.zeros(len(v), dtype=torch.float64, device=device)
            for key, v in groups.items()
        }
        self.counts = {
            key: torch.zeros(len(v), dtype=torch.float64, device=device)
            for key, v in groups.items()
        }

    def add(
        self, losses: torch.Tensor, trained: torch.Tensor, index: dict[str, torch.Tensor]
    ) -> None:
        weights = trained.double()
        values = losses.detach().double() * weights
        for key, group_index in index.items():
            self.sums[key].index_add_(0, group_index.reshape(-1), values.reshape(-1))
            self.counts[key].index_add_(0, group_index.reshape(-1), weights.reshape(-1))

    def packed(self) -> torch.Tensor:
        """One flat tensor, for a single all-reduce across ranks."""
        return torch.cat([t for key in self.names for t in (self.sums[key], self.counts[key])])

    def unpack(self, flat: torch.Tensor) -> dict[str, dict[str, tuple[float, int]]]:
        """{group kind: {name: (mean loss, tokens)}} for groups that saw tokens."""
        result, at = {}, 0
        for key, names in self.names.items():
            sums, counts = flat[at : at + len(names)], flat[at + len(names) : at + 2 * len(names)]
            at += 2 * len(names)
            result[key] = {
                name: (float(s / c), int(c))
                for name, s, c in zip(names, sums.tolist(), counts.tolist(), strict=True)
                if c > 0
            }
        return result

    def reset(self) -> None:
        for key in self.names:
            self.sums[key].zero_()
            self.counts[key].zero_()
