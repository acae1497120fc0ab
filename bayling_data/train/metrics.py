"""Throughput, MFU and the loss broken down by the rows' language and direction."""

from __future__ import annotations

import time

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
    """What this CPU does on a square matmul at its current thread count, best of five short
    windows (a busy machine only lowers it), as a stand-in for a peak that no table lists."""
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


def device_peak_tflops(device: torch.device, configured: float | None = None) -> tuple[float, str]:
    """The device's bf16 peak and where the figure comes from (config, table, or measured)."""
    if configured is not None:
        return configured, "config peak_tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in GPU_BF16_PEAK_TFLOPS.items():
            if key in name:
                return tflops, f"{name} bf16 dense peak"
        return float("nan"), f"{name}: unknown peak (set peak_tflops)"
    return measured_matmul_tflops(), "measured fp32 matmul on this CPU"


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def mfu(num_parameters: int, tokens_per_second: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation: 6·N·tokens/s (forward and backward) over the device's peak."""
    return 6 * num_parameters * tokens_per_second / (peak_tflops * 1e12)


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
