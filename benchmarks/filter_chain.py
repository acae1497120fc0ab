"""Filter-chain benchmark: normalize, language ID on both sides, length ratio, exact pair dedup.

The chain of ``../shared/peer-bench`` (fastText lid.176 on both sides, word length ratio at most 3,
exact pair dedup) run with bayling-data's own filter classes on a Moses pair, single process.
Prints pairs per second, pairs kept, peak memory and each filter's share of the time.

    python benchmarks/filter_chain.py [PREFIX] [--order dedup-first|opusfilter] [--json]

PREFIX defaults to the OPUS bible-uedin de-en pair in ../shared/corpora. ``dedup-first`` (the
default) removes duplicate pairs before language ID; each filter depends only on the pair, so the
pairs kept are the same as in OpusFilter's order, but the model never runs on a duplicate.
``benchmarks/scale_compare.py`` times this next to OpusFilter and the LID floor in one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import pyarrow as pa

from bayling_data.filters import Normalize, PairDedup, RatioFilter, RowDedup
from bayling_data.filters.lid import LanguageIdFilter
from bayling_data.sources import MosesSource
from bayling_data.stage import Stage

DEFAULT_PREFIX = (
    Path(__file__).resolve().parents[2]
    / "shared/corpora/opus/moses/bible-uedin-v1.de-en/bible-uedin-v1.de-en"
)


class AsPairs(Stage):
    """Segment batch (two language columns) -> the pair columns the instruction filters read."""

    name = "as_pairs"
    level = "task"

    def __init__(self, src: str, tgt: str):
        super().__init__()
        self.src, self.tgt = src, tgt

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        n = batch.num_rows
        return pa.RecordBatch.from_pydict(
            {
                "direction": pa.array([f"{self.src}-{self.tgt}"] * n),
                "src_lang": pa.array([self.src] * n),
                "tgt_lang": pa.array([self.tgt] * n),
                "src_text": batch.column(self.src),
                "tgt_text": batch.column(self.tgt),
            }
        )


def run(prefix: str, order: str, languages: list[str] | None = None) -> dict[str, object]:
    source = MosesSource(prefix, languages=languages)
    src, tgt = source.languages
    normalize = Normalize(chinese_script="off")
    lid = LanguageIdFilter()
    ratio = RatioFilter(max_ratio=3.0, unit="words")
    if order == "dedup-first":
        segment_stages: list[Stage] = [RowDedup(normalize=False), normalize, lid]
        pair_stages: list[Stage] = [AsPairs(src, tgt), ratio]
    else:
        segment_stages = [normalize, lid]
        pair_stages = [AsPairs(src, tgt), ratio, PairDedup(normalize=False)]
    started = time.perf_counter()
    pairs_in = kept = 0
    load_seconds = 0.0
    batches = source.iter_batches(batch_rows=10_000)
    while True:
        tick = time.perf_counter()
        batch = next(batches, None)
        load_seconds += time.perf_counter() - tick
        if batch is None:
            break
        pairs_in += batch.num_rows
        for stage in segment_stages:
            batch = stage(batch)
        both = pa.compute.and_(pa.compute.is_valid(batch[src]), pa.compute.is_valid(batch[tgt]))
        pairs = batch.filter(both)
        for stage in pair_stages:
            pairs = stage(pairs)
        kept += pairs.num_rows
    seconds = time.perf_counter() - started
    shares = {"load": load_seconds}
    for stage in [*segment_stages, *pair_stages]:
        shares[stage.name] = shares.get(stage.name, 0.0) + stage.stats.seconds
    return {
        "input": str(prefix),
        "order": order,
        "pairs_in": pairs_in,
        "pairs_kept": kept,
        "seconds": round(seconds, 2),
        "pairs_per_second": round(pairs_in / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "time_share": {name: round(t / seconds, 3) for name, t in shares.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", nargs="?", default=str(DEFAULT_PREFIX))
    parser.add_argument("--order", choices=["dedup-first", "opusfilter"], default="dedup-first")
    parser.add_argument(
        "--languages", nargs=2, help="the two file suffixes, when the name has no xx-yy pair"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    result = run(args.prefix, args.order, args.languages)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['pairs_in']:,} pairs in, {result['pairs_kept']:,} kept, "
        f"{result['pairs_per_second']:,} pairs/s, peak {result['peak_rss_mb']} MB"
    )
    for name, share in result["time_share"].items():
        print(f"  {name:<14} {share:6.1%}")


if __name__ == "__main__":
    main()
