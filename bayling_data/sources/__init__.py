"""Loaders: each reads one corpus format into aligned segment batches.

Every loader is usable alone from a notebook::

    from bayling_data.sources import FloresSource
    table = FloresSource("flores200_dataset", languages=["swh", "zh"]).to_table()
"""

from __future__ import annotations

from bayling_data.sources.base import Source
from bayling_data.sources.flores import FloresSource

__all__ = ["FloresSource", "Source", "build_source"]


def build_source(config: object, languages: list[str] | None) -> Source:
    """The loader a recipe's source entry asks for, reading ``languages`` (None: all present)."""
    from bayling_data.recipe import FloresSourceConfig, resolve_source_path

    if isinstance(config, FloresSourceConfig):
        wanted = config.languages if config.languages is not None else languages
        return FloresSource(
            resolve_source_path(config.path),
            languages=wanted,
            splits=config.splits,
            corpus=config.corpus,
        )
    raise TypeError(f"no loader for {type(config).__name__}")
