"""Filters whose verdict on a row depends on other rows of the build: exact and near dedup.

Called a batch at a time in one process (a notebook), they keep their own index. A sharded build
runs them as three shard-level steps instead, so that no machine ever holds the whole build:

1. **keys**, per work shard: each row's keys (:meth:`GlobalFilter.keys`), written into hash
   partitions on disk;
2. **decide**, per partition: which ``(shard, row, slot)`` entries repeat an earlier one
   (:meth:`GlobalFilter.decide`); "earlier" is the build's order, ``(shard, row)``, which is the
   order one process reading the sources would see, so the verdicts do not depend on workers;
3. **apply**, per work shard: drop what was decided, counted like any other drop
   (:meth:`GlobalFilter.apply`).

A filter whose decision cannot be split by key (near dedup: a row is judged against the kept rows
before it) sets ``partitioned = False`` and decides in one pass over the shards in order; it still
reads only keys, never text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEY_SCHEMA = pa.schema([("key", pa.uint64()), ("row", pa.uint32()), ("slot", pa.uint16())])
ENTRY_SCHEMA = pa.schema([("shard", pa.uint32()), ("row", pa.uint32()), ("slot", pa.uint16())])


def key_table(keys: np.ndarray, rows: np.ndarray, slot: int | np.ndarray = 0) -> pa.Table:
    """A :data:`KEY_SCHEMA` table from parallel arrays."""
    slots = np.broadcast_to(np.asarray(slot, dtype=np.uint16), keys.shape)
    return pa.table(
        [
            pa.array(keys.astype(np.uint64, copy=False)),
            pa.array(rows.astype(np.uint32, copy=False)),
            pa.array(np.ascontiguousarray(slots)),
        ],
        schema=KEY_SCHEMA,
    )


def first_occurrences(entries: pa.Table) -> pa.Table:
    """The entries (``key, shard, row, slot``) that repeat an earlier entry's key: all but the
    first of each key in ``(shard, row, slot)`` order."""
    if entries.num_rows == 0:
        return pa.table({name: [] for name in ENTRY_SCHEMA.names}, schema=ENTRY_SCHEMA)
    ordered = entries.sort_by([("key", "ascending"), ("shard", "ascending"), ("row", "ascending"),
                               ("slot", "ascending")])  # fmt: skip
    keys = ordered.column("key").to_numpy()
    repeat = np.zeros(len(keys), dtype=bool)
    repeat[1:] = keys[1:] == keys[:-1]
    return ordered.filter(pa.array(repeat)).select(ENTRY_SCHEMA.names).cast(ENTRY_SCHEMA)


def slot_masks(drops: pa.Table, num_rows: int, offset: int = 0) -> dict[int, np.ndarray]:
    """Decided drops (``row, slot`` of one shard) as one boolean mask per slot over a batch that
    starts at row ``offset`` of its shard."""
    masks: dict[int, np.ndarray] = {}
    if drops.num_rows == 0:
        return masks
    rows = drops.column("row").to_numpy().astype(np.int64) - offset
    slots = drops.column("slot").to_numpy()
    inside = (rows >= 0) & (rows < num_rows)
    for slot in np.unique(slots[inside]).tolist():
        mask = np.zeros(num_rows, dtype=bool)
        mask[rows[inside & (slots == slot)]] = True
        masks[int(slot)] = mask
    return masks


def reasons_from_mask(mask: np.ndarray | None, num_rows: int, reason: str) -> pa.Array:
    if mask is None:
        return pa.nulls(num_rows, pa.string())
    return pc.if_else(pa.array(mask), pa.scalar(reason), pa.scalar(None, pa.string()))


class GlobalFilter(ABC):
    """The shard-level contract of a filter that needs the whole build to decide."""

    #: True when entries with different keys never affect each other's verdicts.
    partitioned: bool = True

    @abstractmethod
    def keys(self, batch: pa.RecordBatch) -> pa.Table:
        """:data:`KEY_SCHEMA` rows for one batch (``row`` counts from the batch's first row)."""

    def decide(self, shards: Iterator[tuple[int, pa.Table]]) -> pa.Table:
        """The repeated entries among ``(shard, keys)`` tables (one partition, any shard order):
        a :data:`ENTRY_SCHEMA` table. Exact dedup's rule: all but the first of each key."""
        tables = [
            keys.append_column("shard", pa.array(np.full(keys.num_rows, shard, np.uint32)))
            for shard, keys in shards
        ]
        if not tables:
            return ENTRY_SCHEMA.empty_table()
        return first_occurrences(pa.concat_tables(tables))

    @abstractmethod
    def apply(self, batch: pa.RecordBatch, masks: dict[int, np.ndarray]) -> pa.RecordBatch:
        """Drop the decided entries of one batch (``masks``: slot -> rows to drop) and count."""
