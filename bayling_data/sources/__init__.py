"""Loaders: each reads one corpus format, as published, into aligned segment batches.

| type      | format                                                         | module       |
|-----------|----------------------------------------------------------------|--------------|
| flores    | Flores-200 / Flores-101 folders (multi-way)                    | flores.py    |
| moses     | OPUS Moses line-aligned pairs, plain/.gz/.xz/.bz2/.zip         | moses.py     |
| tmx       | TMX 1.4 translation memories                                   | tmx.py       |
| xces      | OPUS XCES cesAlign + per-language XML documents                | xces.py      |
| wmt       | WMT test sets, plain text or SGML                              | wmt.py       |
| tsv       | tab-separated pairs, manythings.org Tatoeba, Tatoeba Challenge | tsv.py       |
| jsonl     | JSON Lines rows (nested translation field or flat columns)     | records.py   |
| parquet   | Parquet rows, same layouts                                     | records.py   |
| hub       | Hugging Face Hub data sets (streamed) or local data set folders | records.py   |

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
from bayling_data.sources.tmx import TmxConfig, TmxSource
from bayling_data.sources.tsv import TsvConfig, TsvSource
from bayling_data.sources.wmt import WmtConfig, WmtSource
from bayling_data.sources.xces import XcesConfig, XcesSource

SOURCE_TYPES: dict[str, tuple[type, type[Source]]] = {
    "flores": (FloresConfig, FloresSource),
    "moses": (MosesConfig, MosesSource),
    "jsonl": (JsonlConfig, JsonlSource),
    "parquet": (ParquetConfig, ParquetSource),
    "hub": (HubConfig, HubSource),
    "wmt": (WmtConfig, WmtSource),
    "tsv": (TsvConfig, TsvSource),
    "tmx": (TmxConfig, TmxSource),
    "xces": (XcesConfig, XcesSource),
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
    "TmxSource",
    "TsvSource",
    "WmtSource",
    "XcesSource",
    "build_source",
]


def build_source(config: object, languages: list[str] | None) -> Source:
    """The loader a recipe's source entry asks for; ``languages`` are the recipe's (None: all)."""
    _, loader = SOURCE_TYPES[config.type]  # type: ignore[attr-defined]
    return loader.from_config(config, languages)  # type: ignore[attr-defined]
