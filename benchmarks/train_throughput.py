"""Training throughput (tokens/s per device) and MFU for a Llama config and sequence length.

Runs the training step of ``bayling-data train`` (packed rows with a block-diagonal mask, per-token
loss on trained tokens, AdamW) on synthetic packed batches, on whatever device is there. On CPU the
default is a tiny model; on a GPU pass real sizes, e.g. Llama-3.2-1B's:

    python benchmarks/train_throughput.py                                   # tiny, CPU
    python benchmarks/train_throughput.py --hidden 2048 --layers 16 --heads 32 --kv-heads 8 \\
        --intermediate 8192 --vocab 128256 --seq-len 4096 --bf16 --attn flash_attention_2
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from bayling_data.train.loss import LossSettings
from bayling_data.train.metrics import (
    count_parameters,
    device_peak_tflops,
    mfu,
    model_flops,
    squared_row_lengths,
)
from bayling_data.train.packing import IGNORE, Batch, batch_loss


def synthetic_batch(batch: int, seq_len: int, vocab: int, row_len: int, gen: torch.Generator):
    """Packed sequences of rows of about ``row_len`` tokens, the second half of each row trained."""
    shape = (batch, seq_len)
    input_ids = torch.randint(0, vocab, shape, generator=gen)
    labels = torch.full(shape, IGNORE)
    position_ids, segments = (
        torch.zeros(shape, dtype=torch.long),
        torch.zeros(shape, dtype=torch.long),
    )
    for b in range(batch):
        at, segment = 0, 1
        while at < seq_len:
            n = min(
                seq_len - at,
                int(torch.randint(row_len // 2, row_len * 3 // 2, (1,), generator=gen)),
            )
            position_ids[b, at : at + n] = torch.arange(n)
            segments[b, at : at + n] = segment
            labels[b, at + n // 2 : at + n] = input_ids[b, at + n // 2 : at + n]
            at, segment = at + n, segment + 1
    zeros = torch.zeros(shape, dtype=torch.long)
    return Batch(input_ids, labels, position_ids, segments, zeros, zeros, rows=[])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2, help="sequences per step")
    parser.add_argument("--row-len", type=int, default=128, help="mean tokens per packed row")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--attn", default="sdpa", choices=["eager", "sdpa", "flash_attention_2"])
    parser.add_argument("--loss", default="chunked", choices=["chunked", "full", "liger"])
    parser.add_argument("--chunk-tokens", type=int, default=4096)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--peak-tflops", type=float, help="device peak for MFU")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = LlamaConfig(
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        intermediate_size=args.intermediate,
        vocab_size=args.vocab,
        max_position_embeddings=args.seq_len,
        attn_implementation=args.attn,
    )
    model = LlamaForCausalLM(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n_params = count_parameters(model)
    flops = model_flops(model)
    loss = LossSettings(args.loss, args.chunk_tokens)
    gen = torch.Generator().manual_seed(0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    tokens, squares, elapsed = 0, 0, 0.0
    for step in range(args.warmup + args.steps):
        batch = synthetic_batch(args.batch, args.seq_len, args.vocab, args.row_len, gen).to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            out = batch_loss(model, batch, args.attn, loss)
        (out.total / out.trained.sum()).backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            elapsed += time.perf_counter() - start
            tokens += batch.num_tokens
            squares += squared_row_lengths(batch.segments)
    per_s = tokens / elapsed
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    peak, source = device_peak_tflops(device, args.peak_tflops, dtype)
    utilisation = mfu(flops.flops(tokens, squares) / elapsed, peak)
    print(
        f"device {device} | params {n_params:,} | seq {args.seq_len} x {args.batch} | "
        f"attn {args.attn} | loss {args.loss} | {per_s:,.0f} tokens/s | mfu {utilisation:.2%} "
        f"of {peak:.3g} TFLOP/s ({source})"
    )


if __name__ == "__main__":
    main()
