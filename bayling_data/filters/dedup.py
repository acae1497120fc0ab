"""Exact deduplication of segments, pairs and instructions, global across batches and sources.

Keys are 64-bit xxh3 hashes of the text after :func:`normalize_for_matching` (case, width,
punctuation and spacing ignored), or of the exact text with ``normalize: false``. The first
occurrence in the build's deterministic order is kept, so the same recipe keeps the same rows.
Memory is one 64-bit key per distinct item (in a Python set: about 60 bytes each).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from bayling_data.config import StrictModel
from bayling_data.filters.base import InstructionFilter, SegmentFilter
from bayling_data.filters.matching import hash_texts, normalize_for_matching
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
    fresh = np.empty(len(keys), dtype=bool)
    for index, key in enumerate(keys.tolist()):
        fresh[index] = key not in seen
        seen.add(key)
    return fresh


def _reasons(fresh: np.ndarray, reason: str) -> pa.Array:
    return pc.if_else(pa.array(fresh), pa.scalar(None, pa.string()), pa.scalar(reason))


class SegmentDedup(SegmentFilter):
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


class RowDedup(SegmentFilter):
    """A segment whose sides, all languages together, repeat an earlier segment's is removed.

    For a bilingual corpus this is pair dedup before templating: cheap, and it spares every later
    filter (language ID above all) the duplicates.
    """

    name = "dedup_row"

    def __init__(self, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self._seen: set[int] = set()

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        languages = segment_languages(batch)
        if batch.num_rows == 0 or not languages:
            return batch
        texts = [batch.column(code) for code in languages]
        if self.normalize:
            texts = [normalize_for_matching(column) for column in texts]
        fresh = _first_seen(hash_texts(*texts), self._seen)
        reasons = _reasons(fresh, "duplicate row")
        for code in languages:
            present = pc.is_valid(batch.column(code))
            self.stats.count_by(
                pa.array([code] * (pc.sum(pc.cast(present, pa.int64())).as_py() or 0), pa.string()),
                reasons.filter(present),
            )
        return batch.filter(pa.array(fresh))


class PairDedup(InstructionFilter):
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

    def reject_reasons(self, scores: pa.Array, batch: pa.RecordBatch) -> pa.Array:
        # Rows without a source and target text (general instructions, some QA rows) are no
        # translation pair: they are left to instruction-level dedup.
        no_pair = pc.and_(
            pc.fill_null(pc.equal(pc.utf8_length(batch.column("src_text")), 0), True),
            pc.fill_null(pc.equal(pc.utf8_length(batch.column("tgt_text")), 0), True),
        )
        keys = scores.to_numpy()
        fresh = np.ones(len(keys), dtype=bool)
        pairs = np.flatnonzero(~no_pair.to_numpy(zero_copy_only=False))
        fresh[pairs] = _first_seen(keys[pairs], self._seen)
        return _reasons(fresh, "duplicate pair")


class InstructionDedup(InstructionFilter):
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


def build_dedup(config: DedupConfig) -> SegmentDedup | RowDedup | PairDedup | InstructionDedup:
    kinds = {
        "segment": SegmentDedup,
        "row": RowDedup,
        "pair": PairDedup,
        "instruction": InstructionDedup,
    }
    return kinds[config.level](config.normalize)
