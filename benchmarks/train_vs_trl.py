"""tokens/s and MFU of `bayling-data train` next to TRL's SFTTrainer, same model, same rows.

Both train a tiny Llama (tests/train_fixtures.TINY_LLAMA, sdpa, fp32) on the sample build's train
split with a BPE trained on it, packing on, loss on the assistant's answers only, batch 2 of 512
tokens, AdamW; MFU uses the same FLOP count (bayling_data.train.metrics.ModelFlops, each packed
row its own length for TRL too) and the same measured CPU peak. Needs `trl` (not in [train]):

    python -m pip install trl && python benchmarks/train_vs_trl.py --steps 20
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))


def ours(build: Path, tokenizer: Path, out: Path, steps: int, peak: float) -> tuple[float, float]:
    from train_fixtures import TINY_LLAMA

    from bayling_data.train.config import TrainConfig
    from bayling_data.train.loop import train

    config = TrainConfig.model_validate(
        {
            "model": {
                "init_config": dict(TINY_LLAMA),
                "tokenizer": str(tokenizer),
                "attn_implementation": "sdpa",
            },
            "data": {
                "builds": [{"path": str(build)}],
                "max_length": 512,
                "template": "llama3",
                "cache_dir": str(out / "cache"),
                "eval_split": None,
            },
            "optim": {
                "max_steps": steps + 2,
                "batch_size": 2,
                "learning_rate": 1e-3,
                "lr_scheduler": "constant",
            },
            "output": {"dir": str(out / "ours"), "logging_steps": 1},
            "peak_tflops": peak,
        }
    )
    history = train(config, log=lambda *_: None).history[2:]  # two steps of warm-up
    tokens_per_s = sum(e["tokens_per_s_per_device"] for e in history) / len(history)
    return tokens_per_s, sum(e["mfu"] for e in history) / len(history)


def theirs(build: Path, tokenizer_dir: Path, out: Path, steps: int, peak: float):
    from datasets import Dataset
    from train_fixtures import TINY_LLAMA
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from bayling_data.io.shards import read_split
    from bayling_data.train.metrics import model_flops

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = read_split(build, "train").column("messages").to_pylist()
    # prompt-completion: everything before the last answer is the prompt (single-turn rows here)
    data = Dataset.from_list([{"prompt": m[:-1], "completion": m[-1:]} for m in rows])
    settings = {k: v for k, v in TINY_LLAMA.items() if k != "model_type"}
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(**settings, vocab_size=len(tokenizer), attn_implementation="sdpa")
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
        max_steps=steps + 2,
        per_device_train_batch_size=2,
        max_length=512,
        packing=True,
        completion_only_loss=True,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=data, processing_class=tokenizer, callbacks=[timer]
    )
    # what the packed batches hold: real tokens and each packed row's squared length
    batches = list(iter(trainer.get_train_dataloader()))[2 : steps + 2]
    tokens = sum(int((b["position_ids"] >= 0).sum()) for b in batches)
    squares = sum(int((b["cu_seq_lens_q"].diff().long() ** 2).sum()) for b in batches)
    trainer.train()
    seconds = timer.times[-1] - timer.times[1]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from train_data_memory import make_build

    from bayling_data.train.metrics import device_peak_tflops

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, tokenizer = make_build(root, 1)
        build = root / "build"
        peak, source = device_peak_tflops(torch.device("cpu"), None, torch.float32)
        ours_tps, ours_mfu = ours(build, tokenizer, root, args.steps, peak)
        trl_tps, trl_mfu, _ = theirs(build, tokenizer, root, args.steps, peak)
    print(f"peak {peak:.3g} TFLOP/s ({source}), {args.steps} steps after 2 of warm-up")
    print(f"bayling-data train: {ours_tps:,.0f} tokens/s, mfu {ours_mfu:.2%}")
    print(f"trl SFTTrainer:     {trl_tps:,.0f} tokens/s, mfu {trl_mfu:.2%}")
    for implementation in ("sdpa", "eager"):
        gaps = ", ".join(f"{gap:.1e}" for gap in padding_free_gaps(implementation))
        print(
            f"trl padding-free, {implementation}: logit gap of each packed row to it alone: {gaps}"
        )


if __name__ == "__main__":
    main()
