"""Training throughput (tokens/s per device) and MFU for a Llama config and sequence length,
alone or next to TRL's SFTTrainer.

Default: the training step of ``bayling-data train`` (packed rows, per-token loss on trained
tokens, AdamW) on synthetic packed batches, on whatever device is there. ``--vs-trl``: the whole
``bayling-data train`` loop and TRL's ``SFTTrainer`` on the same model (the sizes below) and the
same rows (the sample build's train split, a BPE trained on it), packing on, loss on the answers
only, batch 2, AdamW; MFU uses the same FLOP count (bayling_data.train.metrics.model_flops, each
packed row its own length for TRL too) and the same peak. ``--vs-trl`` needs ``trl`` (the
``[bench]`` extra, not ``[train]``). On CPU the default is a tiny model; on a GPU pass real sizes,
e.g. Llama-3.2-1B's:

    python benchmarks/train_throughput.py                                   # tiny, CPU
    python benchmarks/train_throughput.py --vs-trl --hidden 48 --intermediate 96 --steps 10
    python benchmarks/train_throughput.py --hidden 2048 --layers 16 --heads 32 --kv-heads 8 \\
        --intermediate 8192 --vocab 128256 --seq-len 4096 --bf16 --attn flash_attention_2
    python benchmarks/train_throughput.py --vs-trl --hidden 2048 --layers 16 --heads 32 \\
        --kv-heads 8 --intermediate 8192 --seq-len 4096 --bf16 --attn flash_attention_2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))


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


def step_throughput(args: argparse.Namespace) -> None:
    """The training step alone, on synthetic packed batches."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = LlamaConfig(**model_sizes(args), vocab_size=args.vocab, attn_implementation=args.attn)
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


def ours(
    build: Path, tokenizer: Path, out: Path, args: argparse.Namespace, peak: float
) -> tuple[float, float]:
    """``bayling-data train`` itself: tokens/s and MFU averaged over the logged steps."""
    from bayling_data.train.config import TrainConfig
    from bayling_data.train.loop import train

    config = TrainConfig.model_validate(
        {
            "model": {
                "init_config": {"model_type": "llama", **model_sizes(args)},
                "tokenizer": str(tokenizer),
                "attn_implementation": args.attn,
            },
            "data": {
                "builds": [{"path": str(build)}],
                "max_length": args.seq_len,
                "template": "llama3",
                "cache_dir": str(out / "cache"),
                "eval_split": None,
            },
            "optim": {
                "max_steps": args.steps + args.warmup,
                "batch_size": args.batch,
                "learning_rate": 1e-3,
                "lr_scheduler": "constant",
            },
            "output": {"dir": str(out / "ours"), "logging_steps": 1},
            "peak_tflops": peak,
            "bf16": args.bf16,
        }
    )
    history = train(config, log=lambda *_: None).history[args.warmup :]
    tokens_per_s = sum(e["tokens_per_s_per_device"] for e in history) / len(history)
    return tokens_per_s, sum(e["mfu"] for e in history) / len(history)


def theirs(build: Path, tokenizer_dir: Path, out: Path, args: argparse.Namespace, peak: float):
    """TRL's SFTTrainer on the same model and rows: tokens/s and MFU over the same steps."""
    from datasets import Dataset
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from bayling_data.io.shards import read_split
    from bayling_data.train.metrics import model_flops

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = read_split(build, "train").column("messages").to_pylist()
    # prompt-completion: everything before the last answer is the prompt (single-turn rows here)
    data = Dataset.from_list([{"prompt": m[:-1], "completion": m[-1:]} for m in rows])
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(**model_sizes(args), vocab_size=len(tokenizer), attn_implementation=args.attn)
    )
    flops = model_flops(model)

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    timer = Timer()
    config = SFTConfig(
        output_dir=str(out / "trl"),
        max_steps=args.steps + args.warmup,
        per_device_train_batch_size=args.batch,
        max_length=args.seq_len,
        bf16=args.bf16,
        packing=True,
        completion_only_loss=True,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=data, processing_class=tokenizer, callbacks=[timer]
    )
    # what the packed batches hold: real tokens and each packed row's squared length
    batches = list(iter(trainer.get_train_dataloader()))[args.warmup : args.steps + args.warmup]
    tokens = sum(int((b["position_ids"] >= 0).sum()) for b in batches)
    squares = sum(int((b["cu_seq_lens_q"].diff().long() ** 2).sum()) for b in batches)
    trainer.train()
    seconds = timer.times[-1] - timer.times[args.warmup - 1]
    return tokens / seconds, flops.flops(tokens, squares) / seconds / (peak * 1e12), trainer


def padding_free_gaps(implementation: str) -> list[float]:
    """Four rows through SFTTrainer's padding-free collator and the model as SFTTrainer calls it
    (every key of the batch but the labels): each row's largest logit gap to the row alone
    (0 when packed rows stay apart)."""
    from train_fixtures import TINY_LLAMA
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    generator = torch.Generator().manual_seed(1)
    rows = [torch.randint(0, 1000, (n,), generator=generator).tolist() for n in (40, 55, 30, 61)]
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(
        [{"input_ids": row} for row in rows]
    )
    settings = {k: v for k, v in TINY_LLAMA.items() if k != "model_type"}
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(**settings, vocab_size=1000, attn_implementation=implementation)
    ).eval()
    gaps, at = [], 0
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
        for row in rows:
            alone = model(input_ids=torch.tensor([row])).logits[0]
            gaps.append(float((packed[at : at + len(row)] - alone).abs().max()))
            at += len(row)
    return gaps


def vs_trl(args: argparse.Namespace) -> None:
    """bayling-data train and TRL's SFTTrainer, one after the other, same model, rows, peak."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from train_data_memory import make_build

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, tokenizer = make_build(root, 1)
        build = root / "build"
        peak, source = device_peak_tflops(device, args.peak_tflops, dtype)
        ours_tps, ours_mfu = ours(build, tokenizer, root, args, peak)
        trl_tps, trl_mfu, _ = theirs(build, tokenizer, root, args, peak)
    print(
        f"device {device} | {model_sizes(args)} | seq {args.seq_len} x {args.batch} | "
        f"attn {args.attn} | peak {peak:.3g} TFLOP/s ({source}) | {args.steps} steps after "
        f"{args.warmup} of warm-up"
    )
    print(f"bayling-data train: {ours_tps:,.0f} tokens/s, mfu {ours_mfu:.2%}")
    print(f"trl SFTTrainer:     {trl_tps:,.0f} tokens/s, mfu {trl_mfu:.2%}")
    if device.type == "cpu":
        for implementation in ("sdpa", "eager"):
            found = ", ".join(f"{gap:.1e}" for gap in padding_free_gaps(implementation))
            print(
                f"trl padding-free, {implementation}: logit gap of each packed row to it alone: "
                f"{found}"
            )


def model_sizes(args: argparse.Namespace) -> dict[str, int]:
    return {
        "hidden_size": args.hidden,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "intermediate_size": args.intermediate,
        "max_position_embeddings": args.seq_len,
    }


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
    parser.add_argument(
        "--vs-trl",
        action="store_true",
        help="the bayling-data train loop next to TRL's SFTTrainer, same model and rows",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.vs_trl:
        vs_trl(args)
    else:
        step_throughput(args)


if __name__ == "__main__":
    main()
