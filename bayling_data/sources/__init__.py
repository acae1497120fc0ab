"""Loaders: each reads one corpus format into aligned segment batches.

Every loader is usable alone from a notebook::

    from bayling_data.sources import FloresSource, MosesSource
    table = FloresSource("flores200_dataset", languages=["swh", "zh"]).to_table()
    for batch in MosesSource("bible-uedin-v1.de-en").iter_batches():
        ...

In a recipe, a source's ``type`` picks the loader; :data:`SOURCE_TYPES` maps each type to its
config model and loader class.
"""

from __future__ import annotations

from typing import Union

from bayling_data.sources.base import BatchBuilder, Source
from bayling_data.sources.flores import FloresConfig, FloresSource
from bayling_data.sources.moses import MosesConfig, MosesSource
from bayling_data.sources.records import (
    HubConfig,
    HubSource,
    JsonlConfig,
    JsonlSource,
    ParquetConfig,
    ParquetSource,
)

SOURCE_TYPES: dict[str, tuple[type, type[Source]]] = {
    "flores": (FloresConfig, FloresSource),
    "moses": (MosesConfig, MosesSource),
    "jsonl": (JsonlConfig, JsonlSource),
    "parquet": (ParquetConfig, ParquetSource),
    "hub": (HubConfig, HubSource),
}

# The recipe's `sources` entries validate against this union, discriminated by `type`.
SOURCE_CONFIG_UNION = Union[tuple(config for config, _ in SOURCE_TYPES.values())]  # noqa: UP007

__all__ = [
    "SOURCE_TYPES",
    "BatchBuilder",
    "FloresSource",
    "HubSource",
    "JsonlSource",
    "MosesSource",
    "ParquetSource",
    "Source",
    "build_source",
]


def build_source(config: object, languages: list[str] | None) -> Source:
    """The loader a recipe's source entry asks for; ``languages`` are the recipe's (None: all)."""
    _, loader = SOURCE_TYPES[config.type]  # type: ignore[attr-defined]
    return loader.from_config(config, languages)  # type: ignore[attr-defined]
