"""Filter bases in the OpusFilter spirit: ``score`` a whole batch, then ``accept`` on the scores.

Scoring is kept apart from deciding so that thresholds can be tuned on saved scores. Both work on
Arrow arrays, a column at a time, never a row loop in Python where a compute kernel exists. A
filter that drops for several reasons overrides ``reject_reasons``; the funnel keeps every reason.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bayling_data.schema import SEGMENT_META_COLUMNS
from bayling_data.stage import Stage

_NO_REASON = pa.scalar(None, pa.string())


def _count_true(mask: pa.Array) -> int:
    return pc.sum(pc.cast(mask, pa.int64())).as_py() or 0


class SegmentFilter(Stage):
    """Judges each language side of a segment batch on its own; a rejected side becomes null.

    Counting is per language: a Swahili side dropped for length does not drop the English side of
    the same segment, which other directions can still use.
    """

    level = "segment"

    def transform(self, texts: pa.Array, lang: str) -> pa.Array:
        """Rewrite the texts before scoring (normalizers); the default keeps them."""
        return texts

    def score(self, texts: pa.Array, lang: str) -> pa.Array:
        raise NotImplementedError

    def accept(self, scores: pa.Array, lang: str) -> pa.Array:
        raise NotImplementedError

    def reject_reasons(self, scores: pa.Array, lang: str) -> pa.Array:
        """Why each side is dropped (a string), or null to keep it."""
        keep = pc.fill_null(self.accept(scores, lang), False)
        return pc.if_else(keep, _NO_REASON, pa.scalar(self.name, pa.string()))

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = []
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if name in SEGMENT_META_COLUMNS:
                columns.append(column)
                continue
            present = pc.is_valid(column)
            n_present = _count_true(present)
            if n_present == 0:
                columns.append(column)
                continue
            texts = self.transform(column, name)
            # Only present sides are scored: a filter never sees (or counts) an absent side.
            reasons = self.reject_reasons(self.score(texts.filter(present), name), name)
            columns.append(self.drop_sides(texts, name, present, reasons))
        return pa.RecordBatch.from_arrays(columns, schema=batch.schema)

    def drop_sides(
        self, texts: pa.Array, lang: str, present: pa.Array, reasons: pa.Array
    ) -> pa.Array:
        """Count the present sides' reasons (null: kept) and null the dropped sides."""
        self.stats.count_reasons(lang, reasons)
        dropped = pc.replace_with_mask(
            pa.array(np.zeros(len(texts), dtype=bool)), present, pc.is_valid(reasons)
        )
        return pc.if_else(pc.and_not(present, dropped), texts, _NO_REASON)


class InstructionFilter(Stage):
    """Keeps or drops whole instruction rows; counts per direction (``src_lang-tgt_lang``)."""

    level = "instruction"

    def score(self, batch: pa.RecordBatch) -> pa.Array:
        raise NotImplementedError

    def accept(self, scores: pa.Array) -> pa.Array:
        raise NotImplementedError

    def reject_reasons(self, scores: pa.Array, batch: pa.RecordBatch) -> pa.Array:
        """Why each row is dropped (a string), or null to keep it."""
        keep = pc.fill_null(self.accept(scores), False)
        return pc.if_else(keep, _NO_REASON, pa.scalar(self.name, pa.string()))

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if batch.num_rows == 0:
            return batch
        return self.drop_rows(batch, self.reject_reasons(self.score(batch), batch))

    def drop_rows(self, batch: pa.RecordBatch, reasons: pa.Array) -> pa.RecordBatch:
        """Count each row's reason (null: kept) per direction and drop the rows that have one."""
        self.stats.count_by(batch.column("direction"), reasons)
        return batch.filter(pc.is_null(reasons))
