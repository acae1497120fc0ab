"""Length ratio between the two sides of a pair, in units that suit each side's script."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from bayling_data.config import StrictModel
from bayling_data.filters.base import InstructionFilter
from bayling_data.filters.units import LengthUnit, measure, word_equivalents


class RatioConfig(StrictModel):
    """Drop pairs whose longer side is more than `max_ratio` times the shorter one."""

    type: Literal["ratio"]
    max_ratio: float = Field(default=3.0, gt=1.0, description="Largest allowed length ratio.")
    unit: LengthUnit = Field(
        default="auto",
        description="auto: words, or for Han/Kana/Thai-like scripts characters over the "
        "characters one word takes; or chars, words, tokens.",
    )
    tokenizer: str | None = Field(default=None, description="For unit tokens.")


class RatioFilter(InstructionFilter):
    """Compares ``src_text`` and ``tgt_text`` of each row; rows without both are kept.

    With ``unit: auto`` an English side counts words and a Chinese side characters divided by the
    two characters a word takes (Khmer: 7.2, Japanese: 2.6; see ``units.CHARS_PER_WORD``), so a
    faithful pair has a ratio near 1 whatever the scripts.
    """

    name = "ratio"

    def __init__(
        self, max_ratio: float = 3.0, unit: LengthUnit = "auto", tokenizer: str | None = None
    ):
        super().__init__()
        self.max_ratio, self.unit, self.tokenizer = max_ratio, unit, tokenizer

    def _lengths(self, batch: pa.RecordBatch, text_column: str, lang_column: str) -> pa.Array:
        texts, langs = batch.column(text_column), batch.column(lang_column)
        out = pa.nulls(batch.num_rows, pa.float64())
        for lang in pc.unique(langs).to_pylist():
            rows = pc.equal(langs, lang)
            subset = texts.filter(rows)
            lengths = (
                word_equivalents(subset, lang)
                if self.unit == "auto"
                else measure(subset, lang, self.unit, self.tokenizer)
            )
            out = pc.replace_with_mask(out, rows, pc.cast(lengths, pa.float64()))
        return out

    def score(self, batch: pa.RecordBatch) -> pa.Array:
        src = self._lengths(batch, "src_text", "src_lang")
        tgt = self._lengths(batch, "tgt_text", "tgt_lang")
        longer, shorter = pc.max_element_wise(src, tgt), pc.min_element_wise(src, tgt)
        return pc.divide(longer, pc.max_element_wise(shorter, 1.0))

    def accept(self, scores: pa.Array) -> pa.Array:
        return pc.fill_null(pc.less_equal(scores, self.max_ratio), True)

    def reject_reasons(self, scores: pa.Array, batch: pa.RecordBatch) -> pa.Array:
        return pc.if_else(
            self.accept(scores),
            pa.scalar(None, pa.string()),
            pa.scalar(f"length ratio above {self.max_ratio:g}"),
        )

    @classmethod
    def from_config(cls, config: RatioConfig) -> RatioFilter:
        return cls(config.max_ratio, config.unit, config.tokenizer)
