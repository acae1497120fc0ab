"""Normalization of segment text: encoding repair, Unicode form, white space, control characters,
Moses punctuation, and a guard against Chinese text in the wrong script.

Column-wise with Arrow kernels where the operation allows it. The expensive repairs (ftfy,
sacremoses) run only on the texts a cheap vectorized check picks out: most text is clean.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from bayling_data.config import StrictModel
from bayling_data.errors import BaylingError
from bayling_data.filters.base import SegmentFilter
from bayling_data.filters.units import unit_for
from bayling_data.languages import registry

# C0/C1 control characters other than tab and newline, and the byte-order mark. Zero-width
# characters are kept: Khmer, Thai and Persian text uses them.
_CONTROL = r"[\x{0}-\x{8}\x{b}\x{c}\x{e}-\x{1f}\x{7f}-\x{9f}\x{feff}]"
# Runs of any white space, including no-break and ideographic spaces, become one ASCII space.
_SPACES = r"[\s\p{Zs}\x{2028}\x{2029}]+"
# The texts that _SPACES changes: two white-space characters in a row, or one that is not the
# ASCII space (RE2's \s is [\t\n\f\r ]; [^\P{Zs} ] is a Zs space other than " "). Checked
# equal to "the replace changes the text" over U+0000-U+30FF in tests/test_filters.py.
_SPACES_HINT = r"[\s\p{Zs}\x{2028}\x{2029}]{2}|[\t\n\f\r\x{2028}\x{2029}]|[^\P{Zs} ]"
# Characters that appear when UTF-8 was decoded as Latin-1 / cp1252 (mojibake), or the
# replacement character: only texts holding one go through ftfy's own (slower) check.
_MOJIBAKE_HINT = r"[\x{c2}\x{c3}\x{c5}\x{c6}\x{e2}\x{20ac}\x{2122}\x{fffd}]"
# Punctuation that Moses' normalizer rewrites; texts without any are left alone.
_MOSES_HINT = r"[\"'`´‘’‚“”„«»–—…\x{a0}]|\s[,.!?;:]|  "


def replace_where(texts: pa.Array, hint: str, pattern: str, replacement: str) -> pa.Array:
    """``replace_substring_regex`` on the texts ``hint`` matches only: matching is several times
    cheaper than replacing (white space: 35 ms against 410 ms on 124k bible lines, most of which
    hold single spaces only), and most texts need no change."""
    rows = pc.fill_null(pc.match_substring_regex(texts, hint), False)
    count = pc.sum(rows).as_py() or 0
    if count == 0:
        return texts
    if count == len(texts) - texts.null_count:
        return pc.replace_substring_regex(texts, pattern=pattern, replacement=replacement)
    fixed = pc.replace_substring_regex(texts.filter(rows), pattern=pattern, replacement=replacement)
    return pc.replace_with_mask(texts, rows, fixed)


def unicode_normalize(texts: pa.Array, form: str) -> pa.Array:
    """``utf8_normalize`` on the texts that are not in the form already: not pure ASCII (ASCII
    is in every form; about half of an English-German corpus is), and not passed by Python's
    quick check, which answers most texts without normalizing them (half the time of Arrow
    normalizing every non-ASCII German bible line)."""
    rows = pc.invert(pc.fill_null(pc.string_is_ascii(texts), True))
    if not pc.any(rows).as_py():
        return texts
    where = np.flatnonzero(rows.to_numpy(zero_copy_only=False))
    candidates = texts.take(pa.array(where)).to_pylist()
    changed = where[[not unicodedata.is_normalized(form, text) for text in candidates]]
    if not len(changed):
        return texts
    mask = np.zeros(len(texts), dtype=bool)
    mask[changed] = True
    fixed = pc.utf8_normalize(texts.take(pa.array(changed)), form=form)
    return pc.replace_with_mask(texts, pa.array(mask), fixed)


class NormalizeConfig(StrictModel):
    """Repair and normalize every segment side before templating."""

    type: Literal["normalize"]
    unicode: Literal["NFC", "NFKC", "none"] = Field(
        default="NFC", description="NFKC also folds full-width forms, changing Chinese punctuation."
    )
    fix_encoding: bool = Field(default=True, description="Repair mojibake with ftfy.")
    collapse_whitespace: bool = True
    remove_control: bool = True
    moses_punctuation: bool = Field(
        default=False, description="sacremoses punctuation normalization, per language."
    )
    chinese_script: Literal["check", "off"] = Field(
        default="check",
        description="Drop zho_Hans sides written in Traditional characters and vice versa.",
    )


@cache
def _ftfy_config():
    import ftfy

    # Keep full-width CJK punctuation and curly quotes; Unicode forms are our own step.
    return ftfy, ftfy.TextFixerConfig(
        fix_character_width=False, uncurl_quotes=False, normalization=None, explain=False
    )


def fix_mojibake(texts: pa.Array) -> pa.Array:
    """ftfy's repair, only where a cheap check and then ftfy's own badness test find mojibake."""
    hint = pc.fill_null(pc.match_substring_regex(texts, _MOJIBAKE_HINT), False)
    if not pc.any(hint).as_py():
        return texts
    ftfy, config = _ftfy_config()
    from ftfy.badness import is_bad

    values = texts.to_pylist()
    for index in pc.indices_nonzero(hint).to_pylist():
        text = values[index]
        if is_bad(text) or "\ufffd" in text:
            values[index] = ftfy.fix_text(text, config)
    return pa.array(values, pa.string())


@cache
def _moses(lang: str):
    try:
        from sacremoses import MosesPunctNormalizer
    except ImportError:
        raise BaylingError("normalize: moses_punctuation needs `pip install sacremoses`") from None
    code = registry().get(lang).iso639_1 or "en"
    return MosesPunctNormalizer(lang=code, pre_replace_unicode_punct=False)


def moses_punctuation(texts: pa.Array, lang: str) -> pa.Array:
    hint = pc.fill_null(pc.match_substring_regex(texts, _MOSES_HINT), False)
    if not pc.any(hint).as_py():
        return texts
    normalizer = _moses(lang)
    values = texts.to_pylist()
    for index in pc.indices_nonzero(hint).to_pylist():
        values[index] = normalizer.normalize(values[index])
    return pa.array(values, pa.string())


def chinese_script_mismatch(texts: pa.Array, lang: str) -> pa.Array:
    """True where a zho_Hans side is Traditional or a zho_Hant side Simplified."""
    expected = {"zho_Hans": "simplified", "zho_Hant": "traditional"}.get(lang)
    if expected is None:
        return pa.nulls(len(texts), pa.bool_())
    import hanzidentifier

    wrong = hanzidentifier.TRADITIONAL if expected == "simplified" else hanzidentifier.SIMPLIFIED
    return pa.array(
        [
            None if text is None else hanzidentifier.identify(text) == wrong
            for text in texts.to_pylist()
        ],
        pa.bool_(),
    )


class Normalize(SegmentFilter):
    """Repair, normalize and fold white space; drop sides left empty or in the wrong Chinese script.

    The score of a side is its length after normalization and whether it is Chinese in the wrong
    script, so that "empty" and "wrong Chinese script" are counted apart.
    """

    name = "normalize"

    def __init__(
        self,
        unicode: str = "NFC",
        collapse_whitespace: bool = True,
        remove_control: bool = True,
        *,
        fix_encoding: bool = True,
        moses_punctuation: bool = False,
        chinese_script: str = "check",
    ):
        super().__init__()
        if unicode not in ("NFC", "NFKC", "none"):
            raise ValueError(f"unicode must be NFC, NFKC or none, not {unicode!r}")
        self.unicode = unicode
        self.collapse_whitespace = collapse_whitespace
        self.remove_control = remove_control
        self.fix_encoding = fix_encoding
        self.moses = moses_punctuation
        self.chinese_script = chinese_script

    def transform(self, texts: pa.Array, lang: str) -> pa.Array:
        hints = [
            hint
            for hint, wanted in (
                (_MOJIBAKE_HINT, self.fix_encoding),
                (_CONTROL, self.remove_control),
                (_SPACES_HINT, self.collapse_whitespace),
            )
            if wanted
        ]
        # One scan for the repairs' three hints, which costs what one of them does (14 ms
        # each on 62k bible lines): the texts no hint matches only need their Unicode form,
        # and NFC makes no such text one that a hint matches (a canonical decomposition holds
        # no control character or space; tests/test_filters.py checks every code point). NFKC
        # can (U+00A8 is a space and a diaeresis), so it takes every step on every text.
        if hints and self.unicode != "NFKC":
            pattern = "|".join(f"(?:{hint})" for hint in hints)
            dirty = pc.fill_null(pc.match_substring_regex(texts, pattern), False)
            count = pc.sum(dirty).as_py() or 0
            if count < len(texts) - texts.null_count:
                clean = texts if self.unicode == "none" else unicode_normalize(texts, self.unicode)
                if count:
                    fixed = self._repaired(texts.filter(dirty))
                    clean = pc.replace_with_mask(clean, dirty, fixed)
                texts = pc.utf8_trim_whitespace(clean)
            else:
                texts = self._repaired(texts)
        else:
            texts = self._repaired(texts)
        if self.moses and unit_for(lang, "auto") == "words":
            # Moses' rules are written for space-separated scripts; CJK punctuation is left as is.
            texts = moses_punctuation(texts, lang)
        return texts

    def _repaired(self, texts: pa.Array) -> pa.Array:
        """Every step but Moses' on every text (each runs where its own hint matches)."""
        if self.fix_encoding:
            texts = fix_mojibake(texts)
        if self.unicode != "none":
            texts = unicode_normalize(texts, self.unicode)
        if self.remove_control:
            texts = replace_where(texts, _CONTROL, _CONTROL, "")
        if self.collapse_whitespace:
            texts = replace_where(texts, _SPACES_HINT, _SPACES, " ")
        return pc.utf8_trim_whitespace(texts)

    def score(self, texts: pa.Array, lang: str) -> pa.Array:
        wrong_script = (
            chinese_script_mismatch(texts, lang)
            if self.chinese_script == "check"
            else pa.nulls(len(texts), pa.bool_())
        )
        return pa.StructArray.from_arrays(
            [pc.utf8_length(texts), wrong_script], names=["length", "wrong_script"]
        )

    def accept(self, scores: pa.Array, lang: str) -> pa.Array:
        return pc.is_null(self.reject_reasons(scores, lang))

    def reject_reasons(self, scores: pa.Array, lang: str) -> pa.Array:
        empty = pc.fill_null(pc.equal(pc.struct_field(scores, "length"), 0), False)
        wrong = pc.fill_null(pc.struct_field(scores, "wrong_script"), False)
        return pc.if_else(
            empty,
            pa.scalar("empty after normalization"),
            pc.if_else(wrong, pa.scalar("wrong Chinese script"), pa.scalar(None, pa.string())),
        )

    @classmethod
    def from_config(cls, config: NormalizeConfig) -> Normalize:
        return cls(
            config.unicode,
            config.collapse_whitespace,
            config.remove_control,
            fix_encoding=config.fix_encoding,
            moses_punctuation=config.moses_punctuation,
            chinese_script=config.chinese_script,
        )
