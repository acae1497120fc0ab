"""Length bounds on each segment side, in characters."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from bayling_data.filters.base import SegmentFilter


class LengthFilter(SegmentFilter):
    """Keep sides whose length in characters lies in ``[min_chars, max_chars]``.

    The score is the length, so a threshold can be tuned on saved scores.
    """

    name = "length"

    def __init__(self, min_chars: int = 1, max_chars: int = 2000):
        super().__init__()
        if min_chars > max_chars:
            raise ValueError(f"min_chars ({min_chars}) is above max_chars ({max_chars})")
        self.min_chars = min_chars
        self.max_chars = max_chars

    def score(self, texts: pa.Array) -> pa.Array:
        return pc.utf8_length(texts)

    def accept(self, scores: pa.Array) -> pa.Array:
        return pc.and_(
            pc.greater_equal(scores, self.min_chars), pc.less_equal(scores, self.max_chars)
        )
