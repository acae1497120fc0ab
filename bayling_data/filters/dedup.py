"""Exact deduplication of instructions, global across batches and sources."""

from __future__ import annotations

import pyarrow as pa

from bayling_data.filters.base import InstructionFilter


class ExactDedup(InstructionFilter):
    """Drop an instruction whose content hash (its ``id``) was already seen; the first one stays.

    "First" is the build's deterministic generation order, so the same recipe keeps the same rows.
    This is a global step: its memory is one 64-bit integer per distinct instruction.
    """

    name = "dedup"

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[int] = set()

    def score(self, batch: pa.RecordBatch) -> pa.Array:
        # ids are hex content hashes: their first 16 hex digits are a well-mixed 64-bit key.
        return pa.array(
            [int(value[:16], 16) for value in batch.column("id").to_pylist()], pa.uint64()
        )

    def accept(self, scores: pa.Array) -> pa.Array:
        keep = []
        for key in scores.to_pylist():
            keep.append(key not in self._seen)
            self._seen.add(key)
        return pa.array(keep, pa.bool_())
