"""What every loader gives: a stream of aligned segment batches (see :mod:`bayling_data.schema`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa

from bayling_data.schema import segment_schema

DEFAULT_BATCH_ROWS = 2048


class Source(ABC):
    """A corpus read as aligned segment batches.

    Construction checks everything that can be checked without reading the whole corpus (paths,
    layout, language codes, line counts), so that a build fails before it writes anything.
    Reading counts what it skips (blank segments, units missing a language, empty links) in
    :attr:`skipped`, which the manifest keeps.
    """

    corpus: str

    def __init__(self) -> None:
        self.skipped: Counter[str] = Counter()

    @property
    @abstractmethod
    def languages(self) -> list[str]:
        """Flores-200 codes of the language columns this source yields."""

    @property
    def num_segments(self) -> int | None:
        """Segments the source will yield, when known without reading it (for progress bars)."""
        return None

    def iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream the corpus; memory stays bounded by ``batch_rows``."""
        self.skipped = Counter()
        yield from self._iter_batches(batch_rows)

    @abstractmethod
    def _iter_batches(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """The loader's reading loop."""

    def to_table(self) -> pa.Table:
        """The whole source as one table (for notebooks and small corpora)."""
        return pa.Table.from_batches(
            list(self.iter_batches()), schema=segment_schema(self.languages)
        )

    def describe(self) -> dict[str, object]:
        """What the manifest records about this source."""
        return {"corpus": self.corpus, "languages": self.languages, "skipped": dict(self.skipped)}


class BatchBuilder:
    """Collects segments row by row and hands out full record batches of a fixed schema."""

    def __init__(self, corpus: str, languages: list[str], batch_rows: int = DEFAULT_BATCH_ROWS):
        self.corpus = corpus
        self.languages = list(languages)
        self.schema = segment_schema(self.languages)
        self.batch_rows = batch_rows
        self._reset()

    def _reset(self) -> None:
        self._split: list[str] = []
        self._segment: list[str] = []
        self._doc: list[str | None] = []
        self._texts: dict[str, list[str | None]] = {code: [] for code in self.languages}

    def add(
        self, split: str, segment_id: str, doc_id: str | None, texts: dict[str, str | None]
    ) -> pa.RecordBatch | None:
        """Add one segment; returns the gathered batch once ``batch_rows`` segments are in and
        this segment starts a new document, so that a document is never split across batches
        (document-level tasks see each document whole)."""
        batch = None
        if len(self._segment) >= self.batch_rows and (doc_id is None or doc_id != self._doc[-1]):
            batch = self.flush()
        self._split.append(split)
        self._segment.append(segment_id)
        self._doc.append(doc_id)
        for code, column in self._texts.items():
            column.append(texts.get(code))
        return batch

    def flush(self) -> pa.RecordBatch | None:
        """The segments gathered so far as a batch, or None when there are none."""
        if not self._segment:
            return None
        n = len(self._segment)
        batch = pa.RecordBatch.from_pydict(
            {
                "corpus": [self.corpus] * n,
                "split": self._split,
                "segment_id": self._segment,
                "doc_id": self._doc,
                **self._texts,
            },
            schema=self.schema,
        )
        self._reset()
        return batch
