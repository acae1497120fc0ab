"""Filter bases in the OpusFilter spirit: ``score`` a whole batch, then ``accept`` on the scores.

Scoring is kept apart from deciding so that thresholds can be tuned on saved scores. Both work on
Arrow arrays, a column at a time, never a row loop in Python where a compute kernel exists.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from bayling_data.schema import SEGMENT_META_COLUMNS
from bayling_data.stage import Stage


class SegmentFilter(Stage):
    """Judges each language side of a segment batch on its own; a rejected side becomes null.

    Counting is per language: a Swahili side dropped for length does not drop the English side of
    the same segment, which other directions can still use.
    """

    level = "segment"

    def transform(self, texts: pa.Array) -> pa.Array:
        """Rewrite the texts before scoring (normalizers); the default keeps them."""
        return texts

    def score(self, texts: pa.Array) -> pa.Array:
        raise NotImplementedError

    def accept(self, scores: pa.Array) -> pa.Array:
        raise NotImplementedError

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = []
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if name in SEGMENT_META_COLUMNS:
                columns.append(column)
                continue
            present = pc.is_valid(column)
            n_present = pc.sum(pc.cast(present, pa.int64())).as_py() or 0
            if n_present == 0:
                columns.append(column)
                continue
            texts = self.transform(column)
            keep = pc.and_(present, pc.fill_null(self.accept(self.score(texts)), False))
            kept = pc.sum(pc.cast(keep, pa.int64())).as_py() or 0
            self.stats.count(name, n_present, n_present - kept)
            columns.append(pc.if_else(keep, texts, pa.scalar(None, pa.string())))
        return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


class InstructionFilter(Stage):
    """Keeps or drops whole instruction rows; counts per direction (``src_lang-tgt_lang``)."""

    level = "instruction"

    def score(self, batch: pa.RecordBatch) -> pa.Array:
        raise NotImplementedError

    def accept(self, scores: pa.Array) -> pa.Array:
        raise NotImplementedError

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if batch.num_rows == 0:
            return batch
        keep = pc.fill_null(self.accept(self.score(batch)), False)
        self.stats.count_by(batch.column("direction"), pc.invert(keep))
        return batch.filter(keep)
