"""RAM per token of `bayling-data train`'s data: tokenizing a split into the cache, then loading
the cache and planning an epoch, each in a fresh process (what one rank holds).

The sample build's train split is repeated ``--repeat`` times (a manifest listing its shard again
and again, so no copy is written) and tokenized with a BPE trained on it, as the tests do:

    python benchmarks/train_data_memory.py --repeat 16 --num-proc 2

Figures per token: the growth of the peak resident memory while tokenizing (``ru_maxrss`` of the
parent process, less what it held before; the largest worker's too),
and after loading and planning the private memory (``RssAnon``: what every rank pays for itself)
and the file-backed memory (``RssFile``: the memory-mapped cache, shared through the page cache).
Run it against another checkout with ``PYTHONPATH=that/checkout`` to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def memory() -> dict[str, int]:
    """This process's RssAnon and RssFile in bytes (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def make_build(root: Path, repeat: int) -> tuple[Path, Path]:
    """The sample build, a tokenizer trained on it, and a build of its train split ``repeat``
    times over."""
    sys.path.insert(0, str(REPO / "tests"))
    from train_fixtures import train_tokenizer

    from bayling_data.io.shards import read_split
    from bayling_data.pipeline import run_build
    from bayling_data.recipe import load_recipe

    build = root / "build"
    recipe = load_recipe(REPO / "recipes" / "pivot_zh_en.yaml", [f"output.dir={build}"])
    run_build(recipe, progress=False)
    texts = [
        m["content"]
        for row in read_split(build, "train").column("messages").to_pylist()
        for m in row
    ]
    tokenizer = train_tokenizer(texts, root / "tokenizer")
    manifest = json.loads((build / "manifest.json").read_text("utf-8"))
    manifest["splits"] = {"train": dict(manifest["splits"]["train"])}
    manifest["splits"]["train"]["shards"] = manifest["splits"]["train"]["shards"] * repeat
    big = root / "repeated"
    big.mkdir()
    (big / "train").symlink_to(build / "train")
    (big / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    return big, tokenizer


def phase(build: Path, tokenizer_dir: Path, cache: Path, num_proc: int, plan: bool) -> dict:
    """Load (tokenizing on a cache miss) and optionally plan an epoch; memory and time."""
    import torch  # noqa: F401  (imported before the baseline, as in a training run)
    from transformers import AutoTokenizer

    from bayling_data.train.chat_templates import template_text
    from bayling_data.train.config import DataConfig
    from bayling_data.train.data import load_corpus, plan_epoch
    from bayling_data.train.tokenize import MaskSpec

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    spec = MaskSpec(template=template_text("llama3", tokenizer), max_length=512)
    config = DataConfig.model_validate(
        {"builds": [{"path": str(build)}], "cache_dir": str(cache), "num_proc": num_proc}
    )
    before = memory()
    start = time.perf_counter()
    corpus = load_corpus(config, tokenizer, spec, "train")
    loaded = time.perf_counter() - start
    steps = None
    if plan:
        epoch = plan_epoch(
            corpus,
            seed=0,
            epoch=0,
            max_length=2048,
            packing=True,
            batch_size=4,
            world=8,
            accumulation=1,
        )
        steps = epoch.steps
    after = memory()
    return {
        "rows": corpus.num_rows,
        "tokens": int(corpus.lengths.sum()),
        "seconds": loaded,
        "anon": after["RssAnon"] - before["RssAnon"],
        "file": after["RssFile"] - before["RssFile"],
        "peak_growth": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        - before["RssAnon"]
        - before["RssFile"],
        "worker_max_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=16, help="copies of the train split")
    parser.add_argument("--num-proc", type=int, default=2, help="processes that tokenize")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        build, tokenizer, cache = json.loads(args.args)
        result = phase(
            Path(build), Path(tokenizer), Path(cache), args.num_proc, args.phase == "load"
        )
        print(json.dumps(result))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build, tokenizer = make_build(root, args.repeat)
        results = {}
        for name in ("tokenize", "load"):
            command = [
                sys.executable,
                __file__,
                "--phase",
                name,
                "--num-proc",
                str(args.num_proc),
                "--args",
                json.dumps([str(build), str(tokenizer), str(root / "cache")]),
            ]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[name] = json.loads(output.strip().splitlines()[-1])
    tok, load = results["tokenize"], results["load"]
    tokens = tok["tokens"]
    print(f"{tok['rows']:,} rows, {tokens:,} tokens, num_proc {args.num_proc}")
    print(
        f"tokenize: {tok['seconds']:.1f} s, peak RSS growth {tok['peak_growth'] / tokens:.1f} "
        f"bytes/token ({tok['peak_growth'] / 2**20:.0f} MiB), largest worker "
        f"{tok['worker_max_rss'] / 2**20:.0f} MiB"
    )
    print(
        f"load + plan: {load['seconds']:.2f} s, private {load['anon'] / tokens:.1f} bytes/token, "
        f"memory-mapped {load['file'] / tokens:.1f} bytes/token, peak RSS growth "
        f"{load['peak_growth'] / tokens:.1f} bytes/token"
    )


if __name__ == "__main__":
    main()
