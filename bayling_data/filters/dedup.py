"""Exact deduplication of segments, pairs and instructions, global across batches and sources.

Keys are 64-bit xxh3 hashes of the text after :func:`normalize_for_matching` (case, width,
punctuation and spacing ignored), or of the exact text with ``normalize: false``. The first
occurrence in the build's deterministic order is kept, so the same recipe keeps the same rows.
Called batch by batch in one process, each keeps a set of keys (about 60 bytes per distinct
item). A sharded build runs them as shard-level steps instead (see
:mod:`~bayling_data.filters.global_filter`): keys into hash partitions, a verdict per partition,
then the drops applied per shard; the rows kept are the same.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from bayling_data.config import StrictModel
from bayling_data.filters.base import InstructionFilter, SegmentFilter
from bayling_data.filters.global_filter import GlobalFilter, key_table, reasons_from_mask
from bayling_data.filters.matching import hash_texts, normalize_for_matching
from bayling_data.hashing import stable_hash
from bayling_data.schema import segment_languages

DedupLevel = Literal["segment", "row", "pair", "instruction"]


class DedupConfig(StrictModel):
    """Drop repeats of a segment side, a translation pair, or a whole instruction."""

    type: Literal["dedup"]
    level: DedupLevel = Field(
        default="instruction",
        description="segment: each language side (before templating); row: a whole segment "
        "(all its sides; for a bilingual corpus, the pair) before templating; pair: the same "
        "source and target in the same direction; instruction: the same messages.",
    )
    normalize: bool = Field(
        default=True, description="Match up to case, width, punctuation and spacing."
    )


def _first_seen(keys: np.ndarray, seen: set[int]) -> np.ndarray:
    """True for each key not seen before (in ``seen`` or earlier in ``keys``); updates ``seen``."""
    # Each distinct key of the batch looked up once, at its first position (np.unique keeps
    # the first index of each): the set is asked per distinct key, not per row.
    distinct, first = np.unique(keys, return_index=True)
    fresh = np.zeros(len(keys), dtype=bool)
    values = distinct.tolist()
    fresh[first[[key not in seen for key in values]]] = True
    seen.update(values)
    return fresh


def _reasons(fresh: np.ndarray, reason: str) -> pa.Array:
    return pc.if_else(pa.array(fresh), pa.scalar(None, pa.string()), pa.scalar(reason))


class SegmentDedup(SegmentFilter, GlobalFilter):
    """A side repeating an earlier side of the same language becomes null."""

    name = "dedup_segment"

    def __init__(self, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self._seen: dict[str, set[int]] = {}

    def score(self, texts: pa.Array, lang: str) -> pa.Array:
        return pa.array(hash_texts(normalize_for_matching(texts) if self.normalize else texts))

    def reject_reasons(self, scores: pa.Array, lang: str) -> pa.Array:
        return _reasons(
            _first_seen(scores.to_numpy(), self._seen.setdefault(lang, set())), "duplicate"
        )

    def keys(self, batch: pa.RecordBatch) -> pa.Table:
        """One key per present side: its text's hash salted with its language; the slot is the
        language's column."""
        tables = []
        languages = set(segment_languages(batch))
        for slot, code in enumerate(batch.schema.names):
            if code not in languages:
                continue
            column = batch.column(slot)
            rows = np.flatnonzero(pc.is_valid(column).to_numpy(zero_copy_only=False))
            if not rows.size:
                continue
            hashes = self.score(column.take(pa.array(rows)), code).to_numpy()
            tables.append(key_table(hashes ^ np.uint64(stable_hash("lang", code)), rows, slot))
        return pa.concat_tables(tables) if tables else key_table(np.zeros(0), np.zeros(0))

    def apply(self, batch: pa.RecordBatch, masks: dict[int, np.ndarray]) -> pa.RecordBatch:
        columns = list(batch.columns)
        languages = set(segment_languages(batch))
        for slot, code in enumerate(batch.schema.names):
            if code not in languages:
                continue
            present = pc.is_valid(columns[slot])
            reasons = reasons_from_mask(masks.get(slot), batch.num_rows, "duplicate")
            columns[slot] = self.drop_sides(columns[slot], code, present, reasons.filter(present))
        return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


class RowDedup(SegmentFilter, GlobalFilter):
    """A segment whose sides, all languages together, repeat an earlier segment's is removed.

    For a bilingual corpus this is pair dedup before templating: cheap, and it spares every later
    filter (language ID above all) the duplicates.
    """

    name = "dedup_row"

    def __init__(self, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self._seen: set[int] = set()

    def _row_keys(self, batch: pa.RecordBatch) -> np.ndarray:
        texts = [batch.column(code) for code in segment_languages(batch)]
        if self.normalize:
            texts = [normalize_for_matching(column) for column in texts]
        return hash_texts(*texts)

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if batch.num_rows == 0 or not segment_languages(batch):
            return batch
        return self._drop(batch, _first_seen(self._row_keys(batch), self._seen))

    def keys(self, batch: pa.RecordBatch) -> pa.Table:
        if batch.num_rows == 0 or not segment_languages(batch):
            return key_table(np.zeros(0), np.zeros(0))
        return key_table(self._row_keys(batch), np.arange(batch.num_rows))

    def apply(self, batch: pa.RecordBatch, masks: dict[int, np.ndarray]) -> pa.RecordBatch:
        repeated = masks.get(0)
        return self._drop(batch, np.ones(batch.num_rows, bool) if repeated is None else ~repeated)

    def _drop(self, batch: pa.RecordBatch, fresh: np.ndarray) -> pa.RecordBatch:
        repeated = ~fresh
        for code in segment_languages(batch):
            present = batch.column(code).is_valid().to_numpy(zero_copy_only=False)
            sides = int(np.count_nonzero(present))
            if sides:
                dropped = int(np.count_nonzero(repeated & present))
                self.stats.count(code, sides, dropped, {"duplicate row": dropped})
        return batch.filter(pa.array(fresh))


class PairDedup(InstructionFilter, GlobalFilter):
    """A row whose (direction, source, target) repeats an earlier row's is dropped."""

    name = "dedup_pair"

    def __init__(self, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self._seen: set[int] = set()

    def score(self, batch: pa.RecordBatch) -> pa.Array:
        src, tgt = batch.column("src_text"), batch.column("tgt_text")
        if self.normalize:
            src, tgt = normalize_for_matching(src), normalize_for_matching(tgt)
        return pa.array(hash_texts(batch.column("direction"), src, tgt))

    @staticmethod
    def _pairs(batch: pa.RecordBatch) -> np.ndarray:
        """Rows with a source or target text. The others (general instructions, some QA rows)
        are no translation pair: they are left to instruction-level dedup."""
        no_pair = pc.and_(
            pc.fill_null(pc.equal(pc.utf8_length(batch.column("src_text")), 0), True),
            pc.fill_null(pc.equal(pc.utf8_length(batch.column("tgt_text")), 0), True),
        )
        return np.flatnonzero(~no_pair.to_numpy(zero_copy_only=False))

    def reject_reasons(self, scores: pa.Array, batch: pa.RecordBatch) -> pa.Array:
        keys = scores.to_numpy()
        fresh = np.ones(len(keys), dtype=bool)
        pairs = self._pairs(batch)
        fresh[pairs] = _first_seen(keys[pairs], self._seen)
        return _reasons(fresh, "duplicate pair")

    def keys(self, batch: pa.RecordBatch) -> pa.Table:
        pairs = self._pairs(batch)
        return key_table(self.score(batch).to_numpy()[pairs], pairs)

    def apply(self, batch: pa.RecordBatch, masks: dict[int, np.ndarray]) -> pa.RecordBatch:
        return self.drop_rows(
            batch, reasons_from_mask(masks.get(0), batch.num_rows, "duplicate pair")
        )


class InstructionDedup(InstructionFilter, GlobalFilter):
    """A row whose messages repeat an earlier row's is dropped."""

    name = "dedup"

    def __init__(self, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self._seen: set[int] = set()

    def score(self, batch: pa.RecordBatch) -> pa.Array:
        contents = pc.list_flatten(batch.column("messages"))
        joined = pc.binary_join(
            pa.ListArray.from_arrays(
                batch.column("messages").offsets, pc.struct_field(contents, "content")
            ),
            "\x1e",
        )
        return pa.array(hash_texts(normalize_for_matching(joined) if self.normalize else joined))

    def reject_reasons(self, scores: pa.Array, batch: pa.RecordBatch) -> pa.Array:
        return _reasons(_first_seen(scores.to_numpy(), self._seen), "duplicate instruction")

    def keys(self, batch: pa.RecordBatch) -> pa.Table:
        return key_table(self.score(batch).to_numpy(), np.arange(batch.num_rows))

    def apply(self, batch: pa.RecordBatch, masks: dict[int, np.ndarray]) -> pa.RecordBatch:
        reasons = reasons_from_mask(masks.get(0), batch.num_rows, "duplicate instruction")
        return self.drop_rows(batch, reasons)


def build_dedup(config: DedupConfig) -> SegmentDedup | RowDedup | PairDedup | InstructionDedup:
    kinds = {
        "segment": SegmentDedup,
        "row": RowDedup,
        "pair": PairDedup,
        "instruction": InstructionDedup,
    }
    return kinds[config.level](config.normalize)
