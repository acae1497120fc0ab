"""The rows a run trains on: memory-mapped shards, tokenized through the cache, mixed, ordered.

Every epoch's order is a function of (seed, epoch) alone, so a run resumed at (epoch, step) sees
exactly the batches an uninterrupted run would have seen from there on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from bayling_data.train.config import DataConfig, TrainConfigError
from bayling_data.train.tokenize import (
    MaskSpec,
    cache_key,
    read_cached,
    tokenize_table,
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
    """One build's kept rows as flat token arrays (zero-copy views of the cache file)."""

    path: str
    ids: np.ndarray
    trained: np.ndarray
    offsets: np.ndarray
    langs: list[str]
    directions: list[str]
    dropped: dict[str, int]

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    def row(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.offsets[index], self.offsets[index + 1]
        return self.ids[start:end], self.trained[start:end]


def _flat(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    chunk = table.column(column).combine_chunks()
    return chunk.values.to_numpy(), chunk.offsets.to_numpy()


def tokenize_build(
    build: str, split: str, tokenizer, spec: MaskSpec, cache_dir: Path, num_proc: int
) -> TokenizedBuild:
    """A build's split tokenized, read from the cache or written to it."""
    table, checksums = read_build_split(build, split)
    entry = cache_dir.expanduser() / cache_key(checksums, tokenizer, spec)
    cached = read_cached(entry)
    if cached is None:
        tokens, dropped = tokenize_table(table, tokenizer, spec, num_proc)
        write_cached(entry, tokens.combine_chunks(), dropped)
        cached = read_cached(entry)
    tokens, dropped = cached
    ids, offsets = _flat(tokens, "input_ids")
    trained, _ = _flat(tokens, "trained")
    return TokenizedBuild(
        path=build,
        ids=ids,
        trained=trained,
        offsets=offsets,
        langs=tokens.column("lang").to_pylist(),
        directions=tokens.column("direction").to_pylist(),
        dropped=dropped,
    )


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
        lang_index = {name: i for i, name in enumerate(self.lang_names)}
        direction_index = {name: i for i, name in enumerate(self.direction_names)}
        self.lang_of = np.array([lang_index[x] for b in self.builds for x in b.langs], np.int64)
        self.direction_of = np.array(
            [direction_index[x] for b in self.builds for x in b.directions], np.int64
        )
        self.lengths = np.concatenate([np.diff(b.offsets) for b in self.builds]).astype(np.int64)

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


def load_corpus(config: DataConfig, tokenizer, spec: MaskSpec, split: str) -> Corpus:
    cache_dir = Path(config.cache_dir) if config.cache_dir else DEFAULT_CACHE
    builds = [
        tokenize_build(source.path, split, tokenizer, spec, cache_dir, config.num_proc)
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


def pack_rows(
    rows: np.ndarray, lengths: np.ndarray, max_length: int, packing: bool
) -> list[list[int]]:
    """Rows grouped into sequences of at most ``max_length`` tokens, in order (greedy); one row a
    sequence without packing."""
    if not packing:
        return [[int(row)] for row in rows]
    sequences: list[list[int]] = []
    current: list[int] = []
    used = 0
    for row in rows:
        length = int(lengths[row])
        if current and used + length > max_length:
            sequences.append(current)
            current, used = [], 0
        current.append(int(row))
        used += length
    if current:
        sequences.append(current)
    return sequences


@dataclass(frozen=True)
class EpochPlan:
    """An epoch's micro-batches (lists of sequences of rows) in global order."""

    epoch: int
    micro_batches: list[list[list[int]]]
    micro_per_step: int

    @property
    def steps(self) -> int:
        return len(self.micro_batches) // self.micro_per_step

    def step_batches(self, step: int, rank: int, world: int) -> list[list[list[int]]]:
        """This rank's micro-batches of an optimizer step: accumulation index a takes
        micro-batch ``step * micro_per_step + a * world + rank``."""
        base = step * self.micro_per_step
        return [
            self.micro_batches[base + a * world + rank] for a in range(self.micro_per_step // world)
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
    sequences = pack_rows(epoch_rows(corpus, seed, epoch), corpus.lengths, max_length, packing)
    micro = [sequences[i : i + batch_size] for i in range(0, len(sequences), batch_size)]
    micro = [batch for batch in micro if len(batch) == batch_size]
    return EpochPlan(epoch, micro, world * accumulation)
