"""Filters: segment filters judge each language side before templating, instruction filters
judge whole rows after it. Each has a vectorized ``score`` and an ``accept`` rule."""

from __future__ import annotations

from bayling_data.filters.base import InstructionFilter, SegmentFilter
from bayling_data.filters.dedup import ExactDedup
from bayling_data.filters.length import LengthFilter
from bayling_data.filters.normalize import Normalize

__all__ = [
    "ExactDedup",
    "InstructionFilter",
    "LengthFilter",
    "Normalize",
    "SegmentFilter",
    "build_filter",
]


def build_filter(config: object) -> SegmentFilter | InstructionFilter:
    """The filter a recipe's ``filters`` entry asks for."""
    from bayling_data.recipe import DedupConfig, LengthConfig, NormalizeConfig

    if isinstance(config, NormalizeConfig):
        return Normalize(config.unicode, config.collapse_whitespace, config.remove_control)
    if isinstance(config, LengthConfig):
        return LengthFilter(config.min_chars, config.max_chars)
    if isinstance(config, DedupConfig):
        return ExactDedup()
    raise TypeError(f"no filter for {type(config).__name__}")
