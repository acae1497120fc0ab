"""The rows a run trains on: memory-mapped shards, tokenized through the cache, mixed, ordered.

Every epoch's order is a function of (seed, epoch) alone, so a run resumed at (epoch, step) sees
exactly the batches an uninterrupted run would have seen from there on.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bayling_data.train.config import DataConfig, TrainConfigError
from bayling_data.train.tokenize import (
    MaskSpec,
    cache_key,
    read_cached,
    tokenize_batches,
    write_cached,
)

DEFAULT_CACHE = Path("~/.cache/bayling_data/tokenized")


def read_build_split(build: str | Path, split: str) -> tuple[pa.Table, list[str]]:
    """A build's split, memory-mapped shard by shard, and the shards' sha256 from its manifest."""
    build = Path(build)
    manifest = json.loads((build / "manifest.json").read_text("utf-8"))
    splits = manifest.get("splits", {})
    if split not in splits:
        raise TrainConfigError(
            f"data: build {build} has no split {split!r}; it has: {', '.join(splits) or 'none'}"
        )
    shards = splits[split]["shards"]
    tables = [
        pa.ipc.open_stream(pa.memory_map(str(build / split / shard["file"]))).read_all()
        for shard in shards
    ]
    return pa.concat_tables(tables), [shard["sha256"] for shard in shards]


@dataclass
class TokenizedBuild:
    """One build's kept rows: views of the memory-mapped cache file, record batch by record batch
    (zero-copy, shared by every rank through the page cache), and small integer metadata."""

    path: str
    tokens: pa.Table
    dropped: dict[str, int]

    def __post_init__(self) -> None:
        self._ids, self._trained, self._offsets = [], [], []
        for ids, trained in zip(
            self.tokens.column("input_ids").chunks,
            self.tokens.column("trained").chunks,
            strict=True,
        ):
            self._ids.append(ids.values.to_numpy())
            self._trained.append(trained.values.to_numpy())
            self._offsets.append(ids.offsets.to_numpy())
        self.lengths = (
            np.concatenate([np.diff(o) for o in self._offsets]).astype(np.int64)
            if self._offsets
            else np.zeros(0, np.int64)
        )
        self._bases = np.cumsum([0] + [len(o) - 1 for o in self._offsets])
        self.langs, self.lang_codes = _codes(self.tokens, "lang")
        self.directions, self.direction_codes = _codes(self.tokens, "direction")

    @property
    def num_rows(self) -> int:
        return self.tokens.num_rows

    def row(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chunk = int(np.searchsorted(self._bases, index, side="right")) - 1
        local = index - int(self._bases[chunk])
        start, end = self._offsets[chunk][local], self._offsets[chunk][local + 1]
        return self._ids[chunk][start:end], self._trained[chunk][start:end]


def _codes(table: pa.Table, column: str) -> tuple[list[str], np.ndarray]:
    """A string column as its distinct values and an int32 code per row, in Arrow (no Python
    string per row)."""
    encoded = pc.dictionary_encode(table.column(column)).combine_chunks()
    names = encoded.dictionary.to_pylist()
    return names, encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32)


def tokenize_build(
    build: str, split: str, tokenizer, spec: MaskSpec, cache_dir: Path, num_proc: int
) -> TokenizedBuild:
    """A build's split tokenized, read from the cache or streamed into it."""
    table, checksums = read_build_split(build, split)
    entry = cache_dir.expanduser() / cache_key(checksums, tokenizer, spec)
    cached = read_cached(entry)
    if cached is None:
        write_cached(entry, tokenize_batches(table, tokenizer, spec, num_proc))
        cached = read_cached(entry)
    tokens, dropped = cached
    return TokenizedBuild(path=build, tokens=tokens, dropped=dropped)


@dataclass
class Corpus:
    """The tokenized builds of a run, with a global row numbering and small-integer metadata."""

    builds: list[TokenizedBuild]
    weights: list[float]
    lang_names: list[str] = field(init=False)
    direction_names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.bases = np.cumsum([0] + [b.num_rows for b in self.builds])
        self.lang_names = sorted({lang for b in self.builds for lang in b.langs})
        self.direction_names = sorted({d for b in self.builds for d in b.directions})
        self.lang_of = _global_codes(self.builds, "langs", "lang_codes", self.lang_names)
        self.direction_of = _global_codes(
            self.builds, "directions", "direction_codes", self.direction_names
        )
        self.lengths = np.concatenate([np.zeros(0, np.int64)] + [b.lengths for b in self.builds])

    @property
    def num_rows(self) -> int:
        return int(self.bases[-1])

    def row(self, global_index: int) -> tuple[np.ndarray, np.ndarray]:
        build = int(np.searchsorted(self.bases, global_index, side="right")) - 1
        return self.builds[build].row(global_index - int(self.bases[build]))

    def dropped(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for build in self.builds:
            for reason, count in build.dropped.items():
                total[reason] = total.get(reason, 0) + count
        return total


def _global_codes(builds, names: str, codes: str, everything: list[str]) -> np.ndarray:
    """Each build's per-row codes mapped from its own distinct values to the corpus's."""
    index = {name: i for i, name in enumerate(everything)}
    parts = [np.zeros(0, np.int64)]
    for build in builds:
        lookup = np.array([index[name] for name in getattr(build, names)], np.int64)
        parts.append(lookup[getattr(build, codes)] if len(lookup) else np.zeros(0, np.int64))
    return np.concatenate(parts)


def default_num_proc() -> int:
    """The CPUs this process may use (its affinity, not the machine's count), up to 8."""
    available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return max(1, min(8, len(available) if available else os.cpu_count() or 1))


def load_corpus(config: DataConfig, tokenizer, spec: MaskSpec, split: str) -> Corpus:
    cache_dir = Path(config.cache_dir) if config.cache_dir else DEFAULT_CACHE
    num_proc = config.num_proc or default_num_proc()
    builds = [
        tokenize_build(source.path, split, tokenizer, spec, cache_dir, num_proc)
        for source in config.builds
    ]
    return Corpus(builds, [source.weight for source in config.builds])


# --- order and packing ---------------------------------------------------------------------------


def epoch_rows(corpus: Corpus, seed: int, epoch: int) -> np.ndarray:
    """The epoch's rows: each build drawn ``weight`` times over (whole repeats, then a fixed
    random part), all shuffled together; a function of (seed, epoch) only."""
    parts = []
    for index, (build, weight) in enumerate(zip(corpus.builds, corpus.weights, strict=True)):
        wanted = round(weight * build.num_rows)
        repeats, remainder = divmod(wanted, build.num_rows) if build.num_rows else (0, 0)
        local = np.arange(build.num_rows, dtype=np.int64)
        picked = np.random.default_rng([seed, epoch, index]).permutation(local)[:remainder]
        parts.append(corpus.bases[index] + np.concatenate([np.tile(local, repeats), picked]))
    rows = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return np.random.default_rng([seed, epoch]).permutation(rows)


def pack_bounds(
    rows: np.ndarray, lengths: np.ndarray, max_length: int, packing: bool
) -> np.ndarray:
    """Where each sequence starts in ``rows`` (and the end): rows grouped in order into sequences
    of at most ``max_length`` tokens (greedy: a row that does not fit starts the next sequence; a
    row longer than that is a sequence alone). One row a sequence without packing. A loop over
    sequences, each end found by binary search over the running total, in numpy arrays only."""
    if not packing or len(rows) == 0:
        return np.arange(len(rows) + 1, dtype=np.int64)
    total = np.concatenate([[0], np.cumsum(lengths[rows], dtype=np.int64)])
    bounds = [0]
    start = 0
    while start < len(rows):
        end = int(np.searchsorted(total, total[start] + max_length, side="right")) - 1
        start = max(end, start + 1)
        bounds.append(start)
    return np.asarray(bounds, np.int64)


def pack_rows(
    rows: np.ndarray, lengths: np.ndarray, max_length: int, packing: bool
) -> list[list[int]]:
    """``pack_bounds`` as lists of rows (for inspection and tests)."""
    bounds = pack_bounds(rows, lengths, max_length, packing)
    return [rows[a:b].tolist() for a, b in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class EpochPlan:
    """An epoch's micro-batches in global order, as arrays: the epoch's rows in order and where
    each sequence starts among them (no Python list per row or sequence)."""

    epoch: int
    rows: np.ndarray
    bounds: np.ndarray
    batch_size: int
    micro_per_step: int

    @property
    def num_micro_batches(self) -> int:
        return (len(self.bounds) - 1) // self.batch_size  # an incomplete last one is left out

    @property
    def steps(self) -> int:
        return self.num_micro_batches // self.micro_per_step

    def micro_batch(self, index: int) -> list[list[int]]:
        """The sequences (lists of global rows) of micro-batch ``index``."""
        first = index * self.batch_size
        starts = self.bounds[first : first + self.batch_size + 1]
        return [self.rows[a:b].tolist() for a, b in itertools.pairwise(starts)]

    def step_batches(self, step: int, rank: int, world: int) -> list[list[list[int]]]:
        """This rank's micro-batches of an optimizer step: accumulation index a takes
        micro-batch ``step * micro_per_step + a * world + rank``."""
        base = step * self.micro_per_step
        return [
            self.micro_batch(base + a * world + rank) for a in range(self.micro_per_step // world)
        ]


def plan_epoch(
    corpus: Corpus,
    *,
    seed: int,
    epoch: int,
    max_length: int,
    packing: bool,
    batch_size: int,
    world: int,
    accumulation: int,
) -> EpochPlan:
    rows = epoch_rows(corpus, seed, epoch)
    bounds = pack_bounds(rows, corpus.lengths, max_length, packing)
    return EpochPlan(epoch, rows, bounds, batch_size, world * accumulation)
