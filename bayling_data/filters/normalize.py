"""Unicode and whitespace normalization of segment text, column-wise with Arrow kernels."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from bayling_data.filters.base import SegmentFilter

# C0/C1 control characters other than tab and newline, and the byte-order mark. Zero-width
# characters are kept: Khmer, Thai and Persian text uses them.
_CONTROL = r"[\x{0}-\x{8}\x{b}\x{c}\x{e}-\x{1f}\x{7f}-\x{9f}\x{feff}]"
# Runs of any white space, including no-break and ideographic spaces, become one ASCII space.
_SPACES = r"[\s\p{Zs}\x{2028}\x{2029}]+"


class Normalize(SegmentFilter):
    """Unicode normalization (NFC or NFKC), control-character removal and white-space folding.

    A side that is empty after normalization is dropped and counted.
    """

    name = "normalize"

    def __init__(
        self, unicode: str = "NFC", collapse_whitespace: bool = True, remove_control: bool = True
    ):
        super().__init__()
        if unicode not in ("NFC", "NFKC", "none"):
            raise ValueError(f"unicode must be NFC, NFKC or none, not {unicode!r}")
        self.unicode = unicode
        self.collapse_whitespace = collapse_whitespace
        self.remove_control = remove_control

    def transform(self, texts: pa.Array) -> pa.Array:
        if self.unicode != "none":
            texts = pc.utf8_normalize(texts, form=self.unicode)
        if self.remove_control:
            texts = pc.replace_substring_regex(texts, pattern=_CONTROL, replacement="")
        if self.collapse_whitespace:
            texts = pc.replace_substring_regex(texts, pattern=_SPACES, replacement=" ")
        return pc.utf8_trim_whitespace(texts)

    def score(self, texts: pa.Array) -> pa.Array:
        return pc.utf8_length(texts)

    def accept(self, scores: pa.Array) -> pa.Array:
        return pc.greater(scores, 0)
