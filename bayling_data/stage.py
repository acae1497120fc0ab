"""The unit of work: a stage is a function from an Arrow record batch to a record batch.

A stage loads heavy objects in :meth:`Stage.setup` (once per worker, not per batch) and keeps only
counters as state, so the same object runs in-process, in a process pool or on a cluster, and the
counters of many workers merge with :meth:`StageStats.merge`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class StageStats:
    """Rows in and out of a stage, and per key (language or direction) what came in and was
    dropped."""

    name: str
    level: str
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    by_key: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, key: str, rows_in: int, dropped: int) -> None:
        entry = self.by_key.setdefault(key, {"in": 0, "dropped": 0})
        entry["in"] += rows_in
        entry["dropped"] += dropped

    def count_by(self, keys: pa.Array, dropped: pa.Array) -> None:
        """Count rows per key value, with ``dropped`` a boolean mask of the rows removed."""
        if len(keys) == 0:
            return
        table = pa.table({"key": keys, "dropped": pc.cast(dropped, pa.int64())})
        grouped = table.group_by("key").aggregate([("dropped", "count"), ("dropped", "sum")])
        for key, rows_in, n_dropped in zip(
            grouped["key"].to_pylist(),
            grouped["dropped_count"].to_pylist(),
            grouped["dropped_sum"].to_pylist(),
            strict=True,
        ):
            self.count(key, rows_in, n_dropped)

    def merge(self, other: StageStats) -> None:
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.seconds += other.seconds
        for key, entry in other.by_key.items():
            self.count(key, entry["in"], entry["dropped"])

    @property
    def dropped(self) -> int:
        return sum(entry["dropped"] for entry in self.by_key.values())

    def to_dict(self) -> dict[str, object]:
        """The funnel entry kept in the manifest (no timings: manifests stay reproducible)."""
        return {
            "name": self.name,
            "level": self.level,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "by_key": {
                key: {**entry, "out": entry["in"] - entry["dropped"]}
                for key, entry in sorted(self.by_key.items())
            },
        }


class Stage(ABC):
    """A batch-to-batch step. Subclasses implement :meth:`process`, may override :meth:`setup`."""

    name: str = "stage"
    level: str = "segment"  # what the stage counts in: "segment" sides or "instruction" rows

    def __init__(self) -> None:
        self.stats = StageStats(self.name, self.level)
        self._ready = False

    def setup(self) -> None:  # noqa: B027 - optional hook, most stages need no setup
        """Load heavy objects (models, tokenizers). Called once before the first batch."""

    @abstractmethod
    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Transform one batch."""

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self._ready:
            self.setup()
            self._ready = True
        started = time.perf_counter()
        result = self.process(batch)
        self.stats.seconds += time.perf_counter() - started
        self.stats.rows_in += batch.num_rows
        self.stats.rows_out += result.num_rows
        return result
