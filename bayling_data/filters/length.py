"""Length bounds on each segment side, in characters, words or tokens."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from bayling_data.config import StrictModel
from bayling_data.filters.base import SegmentFilter
from bayling_data.filters.units import LengthUnit, measure


class LengthConfig(StrictModel):
    """Keep segment sides whose length lies in [min, max], in the unit chosen."""

    type: Literal["length"]
    unit: LengthUnit = Field(
        default="chars",
        description="chars, words, auto (characters for Han/Kana/Thai-like scripts, words "
        "elsewhere) or tokens (needs `tokenizer`).",
    )
    min: int = Field(default=1, ge=0, description="Shortest side kept.")
    max: int = Field(default=2000, ge=1, description="Longest side kept.")
    tokenizer: str | None = Field(
        default=None,
        description="For unit tokens: a SentencePiece .model file or a transformers tokenizer.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> LengthConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        if (self.unit == "tokens") != (self.tokenizer is not None):
            raise ValueError("`tokenizer` is needed with unit tokens, and only then")
        return self


class LengthFilter(SegmentFilter):
    """Keep sides whose length lies in ``[min, max]``; the score is the length."""

    name = "length"

    def __init__(
        self,
        min: int = 1,
        max: int = 2000,
        unit: LengthUnit = "chars",
        tokenizer: str | None = None,
    ):
        super().__init__()
        if min > max:
            raise ValueError(f"min ({min}) is above max ({max})")
        self.min, self.max, self.unit, self.tokenizer = min, max, unit, tokenizer

    def score(self, texts: pa.Array, lang: str) -> pa.Array:
        return measure(texts, lang, self.unit, self.tokenizer)

    def accept(self, scores: pa.Array, lang: str) -> pa.Array:
        return pc.and_(pc.greater_equal(scores, self.min), pc.less_equal(scores, self.max))

    def reject_reasons(self, scores: pa.Array, lang: str) -> pa.Array:
        return pc.if_else(
            pc.less(scores, self.min),
            pa.scalar("too short"),
            pc.if_else(
                pc.greater(scores, self.max), pa.scalar("too long"), pa.scalar(None, pa.string())
            ),
        )

    @classmethod
    def from_config(cls, config: LengthConfig) -> LengthFilter:
        return cls(config.min, config.max, config.unit, config.tokenizer)
