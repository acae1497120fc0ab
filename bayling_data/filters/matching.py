"""Text keys for matching: the same sentence up to case, width, punctuation and spacing."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

_PUNCTUATION_AND_SPACE = r"[\p{P}\p{S}\s\p{Zs}]+"


def normalize_for_matching(texts: pa.Array) -> pa.Array:
    """NFKC, case-folded, punctuation and symbols removed, white space folded; column-wise."""
    texts = pc.utf8_normalize(texts, form="NFKC")
    texts = pc.utf8_lower(texts)
    texts = pc.replace_substring_regex(texts, pattern=_PUNCTUATION_AND_SPACE, replacement=" ")
    return pc.utf8_trim_whitespace(texts)


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
