"""Streaming check for the Moses loader: a 2,000,000-line pair must load in bounded memory.

Writes a synthetic line-aligned pair (de/en, ~100 characters a line) to a temporary folder, then
reads it through ``MosesSource`` and reports peak resident memory and segments per second. The
reading runs in a fresh child process so that the peak covers loading alone (plus imports).

    python benchmarks/moses_streaming.py [--lines 2000000] [--gzip]

Not a test: speed and memory depend on the machine; the figures go in notes and docs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS_DE = [
    "der",
    "die",
    "das",
    "und",
    "ist",
    "nicht",
    "ein",
    "eine",
    "mit",
    "auf",
    "für",
    "von",
    "dem",
    "den",
    "zu",
    "im",
    "sich",
    "es",
]
WORDS_EN = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "it",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
]


def write_pair(folder: Path, lines: int, compress: bool) -> Path:
    prefix = folder / "synthetic.de-en"
    opener = gzip.open if compress else open
    suffix = ".gz" if compress else ""
    for code, words in (("de", WORDS_DE), ("en", WORDS_EN)):
        with opener(f"{prefix}.{code}{suffix}", "wt", encoding="utf-8") as handle:
            for i in range(lines):
                handle.write(" ".join(words[(i + k) % len(words)] for k in range(16)) + f" {i}.\n")
    return prefix


def read(prefix: str) -> None:
    from bayling_data.sources import MosesSource

    started = time.perf_counter()
    rows = 0
    for batch in MosesSource(prefix).iter_batches():
        rows += batch.num_rows
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "segments": rows,
                "seconds": round(seconds, 2),
                "segments_per_second": round(rows / seconds),
                "peak_rss_mb": round(peak_mb, 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--gzip", action="store_true", help="compress both sides with gzip")
    parser.add_argument("--read", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read(args.read)
        return
    with tempfile.TemporaryDirectory() as tmp:
        prefix = write_pair(Path(tmp), args.lines, args.gzip)
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
        print(
            f"pair of {args.lines:,} lines, {size:.0f} MB on disk{' (gzip)' if args.gzip else ''}"
        )
        done = subprocess.run(
            [sys.executable, __file__, "--read", str(prefix)],
            check=True,
            capture_output=True,
            text=True,
        )
        print(done.stdout.strip())


if __name__ == "__main__":
    main()
