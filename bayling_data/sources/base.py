"""What every loader gives: a stream of aligned segment batches (see :mod:`bayling_data.schema`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import pyarrow as pa

DEFAULT_BATCH_ROWS = 2048


class Source(ABC):
    """A corpus read as aligned segment batches.

    Construction checks everything that can be checked without reading the whole corpus (paths,
    layout, language codes, line counts), so that a build fails before it writes anything.
    """

    corpus: str

    @property
    @abstractmethod
    def languages(self) -> list[str]:
        """Flores-200 codes of the language columns this source yields."""

    @property
    def num_segments(self) -> int | None:
        """Segments the source will yield, when known without reading it (for progress bars)."""
        return None

    @abstractmethod
    def iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream the corpus; memory stays bounded by ``batch_rows``."""

    def to_table(self) -> pa.Table:
        """The whole source as one table (for notebooks and small corpora)."""
        from bayling_data.schema import segment_schema

        return pa.Table.from_batches(
            list(self.iter_batches()), schema=segment_schema(self.languages)
        )

    def describe(self) -> dict[str, object]:
        """What the manifest records about this source."""
        return {"corpus": self.corpus, "languages": self.languages}
