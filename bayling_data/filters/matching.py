"""Text keys for matching: the same sentence up to case, width, punctuation and spacing."""

from __future__ import annotations

from functools import cache

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
    """A 64-bit xxh3 key per row over one or more string columns (nulls hash as empty)."""
    values = [pc.fill_null(column, "").to_pylist() for column in columns]
    if len(values) == 1:
        return np.fromiter(
            (xxhash.xxh3_64_intdigest(v.encode("utf-8")) for v in values[0]),
            dtype=np.uint64,
            count=len(values[0]),
        )
    return np.fromiter(
        (
            xxhash.xxh3_64_intdigest("\x1f".join(row).encode("utf-8"))
            for row in zip(*values, strict=True)
        ),
        dtype=np.uint64,
        count=len(values[0]),
    )
