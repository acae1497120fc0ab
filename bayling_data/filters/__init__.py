"""Filters: segment filters judge each language side before templating (each sentence once),
instruction filters judge whole rows after it. Each has a vectorized ``score`` and an ``accept``
rule, and counts rows in, dropped and why, per language or direction.

| type          | level                          | module              |
|---------------|--------------------------------|---------------------|
| normalize     | segment                        | normalize.py        |
| length        | segment                        | length.py           |
| lid           | segment                        | lid/ (backends, calibration, filter) |
| dedup         | segment, row, pair, instruction | dedup.py           |
| ratio         | instruction (pair)             | ratio.py            |
| near_dedup    | instruction (pair or messages) | near_dedup.py       |
| decontaminate | segment (whole rows)           | decontaminate.py    |
| not_text      | segment                        | not_text.py         |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

from bayling_data.filters.base import InstructionFilter, SegmentFilter
from bayling_data.filters.decontaminate import Decontaminate, DecontaminateConfig
from bayling_data.filters.dedup import (
    DedupConfig,
    InstructionDedup,
    PairDedup,
    RowDedup,
    SegmentDedup,
    build_dedup,
)
from bayling_data.filters.length import LengthConfig, LengthFilter
from bayling_data.filters.lid import LanguageIdFilter, LidConfig
from bayling_data.filters.near_dedup import NearDedup, NearDedupConfig
from bayling_data.filters.normalize import Normalize, NormalizeConfig
from bayling_data.filters.not_text import NotTextConfig, NotTextFilter
from bayling_data.filters.ratio import RatioConfig, RatioFilter

Filter = Union[SegmentFilter, InstructionFilter]  # noqa: UP007

FILTER_TYPES: dict[str, tuple[type, Callable[..., Filter]]] = {
    "normalize": (NormalizeConfig, Normalize.from_config),
    "length": (LengthConfig, LengthFilter.from_config),
    "lid": (LidConfig, LanguageIdFilter.from_config),
    "dedup": (DedupConfig, build_dedup),
    "ratio": (RatioConfig, RatioFilter.from_config),
    "near_dedup": (NearDedupConfig, NearDedup.from_config),
    "decontaminate": (DecontaminateConfig, Decontaminate.from_config),
    "not_text": (NotTextConfig, NotTextFilter.from_config),
}

# The recipe's `filters` entries validate against this union, discriminated by `type`.
FILTER_CONFIG_UNION = Union[tuple(config for config, _ in FILTER_TYPES.values())]  # noqa: UP007

__all__ = [
    "FILTER_TYPES",
    "Decontaminate",
    "InstructionDedup",
    "InstructionFilter",
    "LanguageIdFilter",
    "LengthFilter",
    "NearDedup",
    "Normalize",
    "NotTextFilter",
    "PairDedup",
    "RatioFilter",
    "RowDedup",
    "SegmentDedup",
    "SegmentFilter",
    "build_filter",
]


# Filters whose factory also takes the recipe's source entries (decontaminate's `source_splits`).
NEEDS_RECIPE_SOURCES = frozenset({"decontaminate"})


def build_filter(config: object, recipe_sources: Sequence[object] = ()) -> Filter:
    """The filter a recipe's ``filters`` entry asks for; ``recipe_sources`` are the recipe's
    ``sources`` entries, handed to the filters that read them (:data:`NEEDS_RECIPE_SOURCES`)."""
    _, factory = FILTER_TYPES[config.type]  # type: ignore[attr-defined]
    if config.type in NEEDS_RECIPE_SOURCES:  # type: ignore[attr-defined]
        return factory(config, recipe_sources)
    return factory(config)
