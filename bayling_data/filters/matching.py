"""Text keys for matching: the same sentence up to case, width, punctuation and spacing.

Two families:

* :func:`normalize_for_matching` (exact dedup, near dedup): punctuation becomes a space, and the
  caller says whether the text's language is unspaced.
* :func:`match_words`, :func:`match_key`, :func:`script_counts` (benchmark decontamination): keys
  that depend on the text alone, never on the column (language) it sits in, so that a Chinese
  sentence in an English column, or hyphens and apostrophes dropped, give the same key.
"""

from __future__ import annotations

from functools import cache
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from bayling_data.errors import BaylingError
from bayling_data.filters.units import UNSPACED_SCRIPTS
from bayling_data.languages import registry

# Lower-casing is Arrow's; these are the full case folds (str.casefold) it does not do.
_CASEFOLD_EXTRA = (("ß", "ss"), ("ς", "σ"))


def normalize_for_matching(texts: pa.Array, *, unspaced: bool = False) -> pa.Array:
    """Texts as compared for "same sentence": NFKC, case-folded, punctuation and symbols turned
    into spaces, invisible format characters removed, whitespace collapsed and trimmed.

    Column-wise (Arrow kernels, no Python loop); null stays null. ``unspaced`` also drops the
    remaining spaces, for scripts that do not separate words (spacing there is a typing habit,
    not content: ``上午 9:30`` and ``上午9:30`` are the same sentence).
    """
    texts = pc.utf8_normalize(texts, "NFKC")
    texts = pc.utf8_lower(texts)
    for found, folded in _CASEFOLD_EXTRA:
        texts = pc.replace_substring(texts, found, folded)
    texts = pc.replace_substring_regex(texts, r"\p{Cf}+", "")
    texts = pc.replace_substring_regex(texts, r"[\p{P}\p{S}\p{Z}\p{Cc}\s]+", " ")
    if unspaced:
        return pc.replace_substring(texts, " ", "")
    return pc.utf8_trim_whitespace(texts)


# Marks that join the parts of one word: deleted, not turned into a space, so that "well-known",
# "wellknown", "don't" and "dont" give the same words. (U+2011 becomes U+2010 under NFKC;
# U+02BC and U+02BB are letters, written for the apostrophe and the okina.)
_WORD_JOINERS = "'\u2018\u2019\u02bc\u02bb\u00b7\u2010\\-"
_DELETED = f"[\\p{{Cf}}{_WORD_JOINERS}]+"  # with the invisible format characters
# Scripts written without spaces between words, as Unicode script classes (RE2 syntax): Han and
# Kana (a few characters a word), and the Brahmic scripts of South-East Asia and Tibet (several
# code points a syllable).
HAN_KANA_CLASS = r"[\p{Han}\p{Hiragana}\p{Katakana}]"
SEA_CLASS = r"[\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}]"
UNSPACED_CLASS = HAN_KANA_CLASS[:-1] + SEA_CLASS[1:]


def match_words(texts: pa.Array) -> pa.Array:
    """Texts as words for language-independent matching: NFKC, case-folded, invisible format
    characters and word-joining hyphens and apostrophes removed, every other punctuation mark,
    symbol and white space a single space, trimmed.

    Unlike :func:`normalize_for_matching` the result does not depend on a language: the caller
    never says which column the text came from. Column-wise; null stays null.
    """
    texts = pc.utf8_normalize(texts, "NFKC")
    texts = pc.utf8_lower(texts)
    for found, folded in _CASEFOLD_EXTRA:
        texts = pc.replace_substring(texts, found, folded)
    texts = pc.replace_substring_regex(texts, _DELETED, "")
    texts = pc.replace_substring_regex(texts, r"[\p{P}\p{S}\p{Z}\p{Cc}\s]+", " ")
    return pc.utf8_trim_whitespace(texts)


def match_key(texts: pa.Array, *, words: pa.Array | None = None) -> pa.Array:
    """The exact-match key: :func:`match_words` with every space removed too, so that spacing
    (``well known``/``wellknown``, ``上午 9:30``/``上午9:30``) and the column's language do not
    matter. Pass ``words`` when :func:`match_words` of the same texts is at hand."""
    return pc.replace_substring(match_words(texts) if words is None else words, " ", "")


def script_counts(
    texts: pa.Array, *, keys: pa.Array | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per text, code points of Han/Kana, of the South-East Asian and Tibetan scripts, and of
    letters and marks of any script (null counts 0): what decides the text's own n-gram unit.
    Pass ``keys`` when :func:`match_key` of the same texts is at hand."""

    def count(pattern: str, of: pa.Array) -> np.ndarray:
        counts = pc.fill_null(pc.count_substring_regex(of, pattern), 0)
        return counts.to_numpy(zero_copy_only=False).astype(np.int64)

    keys = match_key(texts) if keys is None else keys
    # A key holds letters, marks and digits only (and rare unassigned or private-use code
    # points): letters are what is left without the digits, far quicker than matching each.
    length = pc.fill_null(pc.utf8_length(keys), 0).to_numpy(zero_copy_only=False)
    letters = length.astype(np.int64) - count(r"\p{N}", keys)
    unspaced = count(UNSPACED_CLASS, keys)
    han = np.zeros(len(keys), np.int64)
    some = np.flatnonzero(unspaced)  # Han/Kana are counted apart only where there is any
    if len(some):
        han[some] = count(HAN_KANA_CLASS, keys.take(pa.array(some)))
    return han, unspaced - han, letters


@cache
def is_unspaced(lang: str | None) -> bool:
    """Whether a language's script is written without spaces between words (Han, Kana, Thai...)."""
    if not lang:
        return False
    try:
        return registry().get(lang).script in UNSPACED_SCRIPTS
    except BaylingError:
        return False


def hash_texts(*columns: pa.Array) -> np.ndarray:
    """A 64-bit xxh3 key per row over one or more string columns (nulls hash as empty), of the
    columns' UTF-8 joined by U+001F. Arrow joins them; each row is hashed from a view of Arrow's
    buffer, with no string object made for it."""
    texts = [pc.fill_null(column, "") for column in columns]
    joined = texts[0] if len(texts) == 1 else pc.binary_join_element_wise(*texts, "\x1f")
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    joined = joined.cast(pa.large_string())  # one offsets type, however long the batch
    n = len(joined)
    offsets = np.frombuffer(joined.buffers()[1], np.int64, n + 1, joined.offset * 8).tolist()
    data = joined.buffers()[2]
    view = memoryview(data if data is not None else b"")
    digest = xxhash.xxh3_64_intdigest
    return np.fromiter(
        (digest(view[start:end]) for start, end in pairwise(offsets)),
        dtype=np.uint64,
        count=n,
    )
