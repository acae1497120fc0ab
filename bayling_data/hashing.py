"""Deterministic per-record choices and content ids.

Every random-looking decision in a build (prompt language, template, validation split, sampling,
shuffling) is a hash of the seed and the record's identity, never a draw from a shared random
stream, so results do not depend on batch size, worker count or processing order.
"""

from __future__ import annotations

from collections.abc import Sequence

import xxhash

_SEP = "\x1f"
_TWO_64 = float(1 << 64)


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of the parts, the same on every machine and Python version."""
    # A list with str() only where needed: a build hashes several times a row (measured ~20%
    # faster than a generator over str()).
    text = _SEP.join([part if type(part) is str else str(part) for part in parts])
    return xxhash.xxh3_64_intdigest(text.encode("utf-8"))


def unit_interval(*parts: object) -> float:
    """A number in [0, 1) determined by the parts."""
    return stable_hash(*parts) / _TWO_64


def weighted_choice(options: Sequence[tuple[str, float]], u: float) -> str:
    """Pick an option with probability proportional to its weight, given u in [0, 1)."""
    total = sum(weight for _, weight in options)
    threshold = u * total
    running = 0.0
    for option, weight in options:
        running += weight
        if threshold < running:
            return option
    return next(option for option, weight in reversed(options) if weight > 0)


def content_id(*parts: str) -> str:
    """A stable 128-bit hex id derived from content."""
    return xxhash.xxh3_128_hexdigest(_SEP.join(parts).encode("utf-8"))
