"""OPUS Moses format: a line-aligned pair of plain-text files, one sentence per line.

Accepted as published::

    bible-uedin-v1.de-en.de  +  bible-uedin-v1.de-en.en          path: bible-uedin-v1.de-en
    corpus.de-en.de.gz       +  corpus.de-en.en.gz  (.xz, .bz2)   path: corpus.de-en
    de-en.txt.zip  (members bible-uedin.de-en.de, ...en)         path: de-en.txt.zip
    data/*.de-en                                                 path: a glob of any of these

The language codes are the file suffixes (``de``, ``en``, ``pt_BR``, ``zh_CN``), resolved through
the registry; without ``languages`` they are read from the ``xx-yy`` part of the name.
"""

from __future__ import annotations

import itertools
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from bayling_data.config import StrictModel
from bayling_data.errors import CorpusError, UnknownLanguageError
from bayling_data.languages import LanguageRegistry, registry
from bayling_data.schema import segment_schema
from bayling_data.sources.base import DEFAULT_BATCH_ROWS, Source
from bayling_data.sources.files import (
    COMPRESSED_SUFFIXES,
    CorpusFile,
    count_lines,
    expand_paths,
    read_line_chunks,
    strip_compression,
)

_CHUNK_LINES = 8192  # lines read per side at a time

_PAIR_IN_NAME = re.compile(
    r"(?:^|[._])([A-Za-z]{2,3}(?:_[A-Za-z0-9]+)?)-([A-Za-z]{2,3}(?:_[A-Za-z0-9]+)?)(?:\.|$)"
)


class MosesConfig(StrictModel):
    """A line-aligned pair of files (OPUS Moses download)."""

    type: Literal["moses"]
    path: str = Field(
        description="Prefix (corpus.de-en), one side's file, an OPUS .zip, or a glob."
    )
    languages: list[str] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="The two file suffixes as written (de, en); default: from the name.",
    )
    corpus: str | None = Field(default=None, description="Corpus name; default: the file prefix.")
    split: str = Field(default="train", description="Split name recorded in provenance.")

    @field_validator("languages")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and value[0] == value[1]:
            raise ValueError("the two languages must differ")
        return value


def languages_in_name(name: str) -> tuple[str, str] | None:
    """The ``xx-yy`` language pair in an OPUS file name (``bible-uedin.de-en.de`` -> de, en)."""
    matches = _PAIR_IN_NAME.findall(name)
    return matches[-1] if matches else None


class MosesSource(Source):
    """Line-aligned pairs of files read in lockstep, streaming (memory does not grow with size).

    >>> MosesSource("bible-uedin-v1.de-en").to_table()  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        *,
        languages: tuple[str, str] | list[str] | None = None,
        corpus: str | None = None,
        split: str = "train",
        lang_registry: LanguageRegistry | None = None,
    ):
        super().__init__()
        self._registry = lang_registry or registry()
        self.split = split
        self._corpus = corpus
        self.pairs: list[tuple[str, CorpusFile, CorpusFile, str, str]] = []
        for found in self._expand(str(path)):
            self.pairs.extend(self._pairs_at(found, languages))
        if not self.pairs:
            raise CorpusError(
                f"{path}: no Moses file pair found (expected PREFIX.xx and PREFIX.yy)"
            )
        self.corpus = corpus or self.pairs[0][0]

    # -- discovery ---------------------------------------------------------------------------------

    @staticmethod
    def _expand(path: str) -> list[Path]:
        plain = Path(path).expanduser()
        if not any(ch in path for ch in "*?[") and not plain.exists():
            # A prefix: its sides are PREFIX.xx[.gz]; let _pairs_at find them.
            if plain.parent.is_dir() and any(plain.parent.glob(glob_escape(plain.name) + ".*")):
                return [plain]
            raise CorpusError(f"{path}: no such file, and no files {path}.xx to pair")
        return expand_paths(path)

    def _pairs_at(
        self, path: Path, languages: tuple[str, str] | list[str] | None
    ) -> list[tuple[str, CorpusFile, CorpusFile, str, str]]:
        if path.suffix == ".zip":
            return self._pairs_in_zip(path, languages)
        if path.is_file():
            # One side given (corpus.de-en.de.gz): its prefix names the pair.
            stem = strip_compression(path.name)
            prefix = path.with_name(stem.rsplit(".", 1)[0]) if "." in stem else path
        else:
            prefix = path
        pair = tuple(languages) if languages else languages_in_name(prefix.name)
        if pair is None:
            raise CorpusError(
                f"{prefix}: cannot tell the languages from the name; give `languages: [xx, yy]`"
            )
        sides = [self._side_file(prefix, code) for code in pair]
        codes = [self._resolve(code, side) for code, side in zip(pair, sides, strict=True)]
        return [(prefix.name, sides[0], sides[1], codes[0], codes[1])]

    def _side_file(self, prefix: Path, code: str) -> CorpusFile:
        for suffix in ("", *COMPRESSED_SUFFIXES):
            candidate = prefix.with_name(f"{prefix.name}.{code}{suffix}")
            if candidate.is_file():
                return CorpusFile(candidate)
        raise CorpusError(f"{prefix}.{code}: no such file (also tried .gz, .xz, .bz2)")

    def _pairs_in_zip(
        self, archive: Path, languages: tuple[str, str] | list[str] | None
    ) -> list[tuple[str, CorpusFile, CorpusFile, str, str]]:
        try:
            with zipfile.ZipFile(archive) as handle:
                members = [m for m in handle.namelist() if not m.endswith("/")]
        except (OSError, zipfile.BadZipFile) as err:
            raise CorpusError(f"{archive}: not a readable zip archive ({err})") from None
        pair = tuple(languages) if languages else languages_in_name(archive.name)
        if pair is None:
            raise CorpusError(
                f"{archive}: cannot tell the languages from the name; give `languages: [xx, yy]`"
            )
        by_name = {strip_compression(member): member for member in members}
        pairs = []
        for name, member in sorted(by_name.items()):
            if not name.endswith(f".{pair[0]}"):
                continue
            prefix = name[: -len(pair[0]) - 1]
            other = by_name.get(f"{prefix}.{pair[1]}")
            if other is None:
                continue
            first, second = CorpusFile(archive, member), CorpusFile(archive, other)
            codes = [self._resolve(pair[0], first), self._resolve(pair[1], second)]
            pairs.append((Path(prefix).name, first, second, codes[0], codes[1]))
        if not pairs:
            raise CorpusError(
                f"{archive}: no member pair NAME.{pair[0]} / NAME.{pair[1]} in the archive"
            )
        return pairs

    def _resolve(self, code: str, where: CorpusFile) -> str:
        try:
            return self._registry.resolve(code).code
        except UnknownLanguageError as err:
            raise CorpusError(f"{where}: language code {code!r}: {err}") from None

    # -- reading -----------------------------------------------------------------------------------

    @property
    def languages(self) -> list[str]:
        return sorted({code for pair in self.pairs for code in pair[3:]})

    def describe(self) -> dict[str, object]:
        return {
            "type": "moses",
            "corpus": self.corpus,
            "files": [[str(first), str(second)] for _, first, second, _, _ in self.pairs],
            "languages": self.languages,
            "skipped": dict(self.skipped),
        }

    def _iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Column-wise: both sides are read a chunk of lines at a time into Arrow arrays, blank
        pairs dropped with a mask; batches hold exactly ``batch_rows`` pairs (the last fewer)."""
        schema = segment_schema(self.languages)
        several = len(self.pairs) > 1
        pending: list[pa.Table] = []
        pending_rows = 0
        for name, first, second, code_a, code_b in self.pairs:
            line_no = 0
            chunks = itertools.zip_longest(
                read_line_chunks(first, _CHUNK_LINES), read_line_chunks(second, _CHUNK_LINES)
            )
            for side_a, side_b in chunks:
                if side_a is None or side_b is None or len(side_a) != len(side_b):
                    raise CorpusError(
                        f"{first} has {count_lines(first)} lines but {second} has "
                        f"{count_lines(second)}: a Moses pair must be line-aligned"
                    )
                table = self._chunk_table(schema, side_a, side_b, code_a, code_b, line_no)
                line_no += len(side_a)
                if several:
                    ids = pc.binary_join_element_wise(f"{name}:", table["segment_id"], "")
                    table = table.set_column(2, schema.field("segment_id"), ids)
                pending.append(table)
                pending_rows += table.num_rows
                while pending_rows >= batch_rows:
                    whole = pa.concat_tables(pending)
                    yield whole.slice(0, batch_rows).combine_chunks().to_batches()[0]
                    rest = whole.slice(batch_rows)
                    pending, pending_rows = [rest], rest.num_rows
        if pending_rows:
            yield pa.concat_tables(pending).combine_chunks().to_batches()[0]

    def _chunk_table(
        self,
        schema: pa.Schema,
        side_a: pa.StringArray,
        side_b: pa.StringArray,
        code_a: str,
        code_b: str,
        line_no: int,
    ) -> pa.Table:
        """One chunk of line pairs as segment rows; pairs with a blank side are skipped and
        counted (under the first blank side's language)."""
        # Blank: empty or all white space (utf8_is_space is false for ""): the same sides as an
        # empty utf8_trim_whitespace over every code point, without making the trimmed copies.
        blank_a = pc.or_(pc.equal(pc.binary_length(side_a), 0), pc.utf8_is_space(side_a))
        blank_b = pc.or_(pc.equal(pc.binary_length(side_b), 0), pc.utf8_is_space(side_b))
        skipped_a = pc.sum(blank_a).as_py() or 0
        skipped_b = pc.sum(pc.and_not(blank_b, blank_a)).as_py() or 0
        if skipped_a:
            self.skipped[f"blank {code_a}"] += skipped_a
        if skipped_b:
            self.skipped[f"blank {code_b}"] += skipped_b
        keep = pc.invert(pc.or_(blank_a, blank_b))
        numbers = pa.array(np.arange(line_no + 1, line_no + len(side_a) + 1)).filter(keep)
        n = len(numbers)
        columns = {
            "corpus": pa.repeat(pa.scalar(self.corpus, pa.string()), n),
            "split": pa.repeat(pa.scalar(self.split, pa.string()), n),
            "segment_id": numbers.cast(pa.string()),
            "doc_id": pa.nulls(n, pa.string()),
        }
        texts = {code_a: side_a.filter(keep), code_b: side_b.filter(keep)}
        for code in self.languages:
            columns[code] = texts.get(code, pa.nulls(n, pa.string()))
        return pa.table(columns, schema=schema)

    @classmethod
    def from_config(cls, config: MosesConfig, languages: list[str] | None) -> MosesSource:
        return cls(
            config.path, languages=config.languages, corpus=config.corpus, split=config.split
        )


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)
