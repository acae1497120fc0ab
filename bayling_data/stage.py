"""The unit of work: a stage is a function from an Arrow record batch to a record batch.

A stage loads heavy objects in :meth:`Stage.setup` (once per worker, not per batch) and keeps only
counters as state, so the same object runs in-process, in a process pool or on a cluster, and the
counters of many workers merge with :meth:`StageStats.merge`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class StageStats:
    """Rows in and out of a stage and, per key (a language for segment stages, a direction for
    instruction stages), what came in, what was dropped and why."""

    name: str
    level: str
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(
        self, key: str, rows_in: int, dropped: int, reasons: Mapping[str, int] | None = None
    ) -> None:
        entry = self.by_key.setdefault(key, {"in": 0, "dropped": 0, "reasons": {}})
        entry["in"] += rows_in
        entry["dropped"] += dropped
        for reason, n in (reasons or {}).items():
            if n:
                entry["reasons"][reason] = entry["reasons"].get(reason, 0) + n

    def count_by(self, keys: pa.Array, reasons: pa.Array) -> None:
        """Count rows per key value; ``reasons`` holds why each dropped row went (null: kept)."""
        if len(keys) == 0:
            return
        # Dictionary codes and one bincount: an Arrow group_by costs about a millisecond a call
        # to start, and filters count every batch (a tenth of a second of the bible pair build).
        key_codes = pc.dictionary_encode(keys, null_encoding="encode")
        reason_codes = pc.dictionary_encode(pc.fill_null(reasons, ""))
        width = len(reason_codes.dictionary)
        cells = key_codes.indices.to_numpy().astype(np.int64) * width
        cells += reason_codes.indices.to_numpy()
        counted = np.bincount(cells)
        key_names = key_codes.dictionary.to_pylist()
        reason_names = reason_codes.dictionary.to_pylist()
        for cell in np.flatnonzero(counted).tolist():
            key, reason, n = (
                key_names[cell // width],
                reason_names[cell % width],
                int(counted[cell]),
            )
            if reason:
                self.count(key, n, n, {reason: n})
            else:
                self.count(key, n, 0)

    def count_reasons(self, key: str, reasons: pa.Array) -> None:
        """As :meth:`count_by` for rows that all have one key (a segment filter's language):
        no key column to build and encode, which cost 0.3 ms of the 0.45 ms a 10k-row call."""
        if len(reasons) == 0:
            return
        reason_codes = pc.dictionary_encode(pc.fill_null(reasons, ""))
        counted = np.bincount(reason_codes.indices.to_numpy())
        reason_names = reason_codes.dictionary.to_pylist()
        for code in np.flatnonzero(counted).tolist():
            reason, n = reason_names[code], int(counted[code])
            if reason:
                self.count(key, n, n, {reason: n})
            else:
                self.count(key, n, 0)

    def merge(self, other: StageStats) -> None:
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.seconds += other.seconds
        for key, entry in other.by_key.items():
            self.count(key, entry["in"], entry["dropped"], entry["reasons"])

    def to_raw(self) -> dict[str, Any]:
        """Everything counted, as JSON (a work shard's report to the driver)."""
        return {
            "name": self.name,
            "level": self.level,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "seconds": self.seconds,
            "by_key": self.by_key,
        }

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> StageStats:
        stats = cls(raw["name"], raw["level"], raw["rows_in"], raw["rows_out"], raw["seconds"])
        for key, entry in raw["by_key"].items():
            stats.count(key, entry["in"], entry["dropped"], entry["reasons"])
        return stats

    @property
    def dropped(self) -> int:
        return sum(entry["dropped"] for entry in self.by_key.values())

    def by_language(self) -> dict[str, dict[str, Any]]:
        """For instruction stages: each direction's counts under both of its languages."""
        if self.level == "segment":
            return self.by_key
        merged = StageStats(self.name, self.level)
        for key, entry in self.by_key.items():
            for code in dict.fromkeys(key.split("-")):
                merged.count(code, entry["in"], entry["dropped"], entry["reasons"])
        return merged.by_key

    def to_dict(self) -> dict[str, object]:
        """The funnel entry kept in the manifest (no timings: manifests stay reproducible)."""

        def rows(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
            return {
                key: {
                    "in": entry["in"],
                    "dropped": entry["dropped"],
                    "out": entry["in"] - entry["dropped"],
                    "reasons": dict(sorted(entry["reasons"].items())),
                }
                for key, entry in sorted(table.items())
            }

        entry: dict[str, object] = {
            "name": self.name,
            "level": self.level,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "by_key": rows(self.by_key),
        }
        if self.level == "instruction":
            entry["by_language"] = rows(self.by_language())
        return entry


class Stage(ABC):
    """A batch-to-batch step. Subclasses implement :meth:`process`, may override :meth:`setup`."""

    name: str = "stage"
    level: str = "segment"  # what the stage counts in: "segment" sides or "instruction" rows

    def __init__(self) -> None:
        self.stats = StageStats(self.name, self.level)
        self._ready = False

    def setup(self) -> None:  # noqa: B027 - optional hook, most stages need no setup
        """Load heavy objects (models, tokenizers). Called once before the first batch."""

    def details(self) -> dict[str, Any] | None:
        """Stage-specific counters the manifest keeps beside the funnel entry (None: nothing)."""
        return None

    def reset_counters(self) -> None:
        """Start counting afresh (each work shard reports its own counts; the driver adds them).
        Stages with counters of their own beside :attr:`stats` extend this."""
        self.stats = StageStats(self.name, self.level)

    @abstractmethod
    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Transform one batch."""

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return self.timed(self.process, batch)

    def timed(self, step: Any, batch: pa.RecordBatch, *args: Any) -> pa.RecordBatch:
        """Run ``step(batch, *args)`` (after :meth:`setup`, once) and count rows and time."""
        if not self._ready:
            self.setup()
            self._ready = True
        started = time.perf_counter()
        result = step(batch, *args)
        self.stats.seconds += time.perf_counter() - started
        self.stats.rows_in += batch.num_rows
        self.stats.rows_out += result.num_rows
        return result
