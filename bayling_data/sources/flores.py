"""Flores-200 and Flores-101: multi-way parallel files, line N the same sentence in every language.

Layouts read::

    flores200_dataset/dev/eng_Latn.dev      devtest/zho_Hans.devtest     (Flores-200)
    flores101_dataset/dev/eng.dev           devtest/zho_simpl.devtest    (Flores-101)
    metadata_dev.tsv                        (optional: URL, domain, topic per line)

The path may also be one split folder (``.../dev``). Segment ids are 1-based line numbers, so
``(corpus, split, segment_id)`` names the same sentence in every language, which later tasks and
benchmark decontamination rely on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import Field, field_validator

from bayling_data.config import StrictModel, resolve_codes
from bayling_data.errors import CorpusError
from bayling_data.languages import LanguageRegistry, registry
from bayling_data.schema import segment_languages, segment_schema
from bayling_data.sources.base import DEFAULT_BATCH_ROWS, BatchBuilder, Source
from bayling_data.sources.files import CorpusFile, count_lines, read_lines
from bayling_data.sources.samples import resolve_source_path

#: Splits published for evaluation: a recipe reads them only when it names them.
EVAL_SPLITS = ("devtest", "test")


class FloresConfig(StrictModel):
    """A Flores-200 or Flores-101 folder (``dev/eng_Latn.dev`` or ``dev/eng.dev``)."""

    type: Literal["flores"]
    path: str = Field(
        description="Folder holding dev/ and devtest/, or `sample:flores200` (bundled sample)."
    )
    splits: list[str] | None = Field(
        default=None,
        description="Splits to read; default: every split present except the evaluation splits "
        "(devtest): name devtest here to train on it.",
    )
    languages: list[str] | None = Field(
        default=None, description="Languages to read from this source; default: the recipe's."
    )
    corpus: str | None = Field(
        default=None, description="Corpus name in provenance; default: flores200 or flores101."
    )

    @field_validator("languages")
    @classmethod
    def _codes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else resolve_codes(value)

    @field_validator("splits")
    @classmethod
    def _splits(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError(
                "give at least one split, or leave the key out to read every training split"
            )
        return value


class FloresSource(Source):
    """A Flores-200 or Flores-101 folder, read as multi-way aligned segment batches.

    >>> source = FloresSource("flores200_dataset", languages=["swh", "zh"], splits=["dev"])
    >>> for batch in source.iter_batches():  # doctest: +SKIP
    ...     print(batch.num_rows, batch.schema.names)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        languages: list[str] | None = None,
        splits: list[str] | None = None,
        corpus: str | None = None,
        lang_registry: LanguageRegistry | None = None,
        skip_eval_splits: bool = False,
    ):
        """``splits``: the splits to read (default: every one present, or with
        ``skip_eval_splits`` every one but :data:`EVAL_SPLITS`, unless the folder holds nothing
        else: a path to a devtest folder names it)."""
        super().__init__()
        self.root = Path(path)
        self._registry = lang_registry or registry()
        if not self.root.is_dir():
            raise CorpusError(f"{self.root}: no such Flores folder")
        wanted = None if languages is None else [self._registry.resolve(c).code for c in languages]
        found = self._find_splits()
        if not found:
            raise CorpusError(
                f"{self.root}: no Flores split folders here "
                "(expected dev/eng_Latn.dev, devtest/zho_Hans.devtest or dev/eng.dev)"
            )
        if splits is not None:
            missing = [split for split in splits if split not in found]
            if missing:
                raise CorpusError(
                    f"{self.root}: no split {missing[0]!r} here; found: {', '.join(found)}"
                )
            found = {split: found[split] for split in splits}
        elif skip_eval_splits and set(found) - set(EVAL_SPLITS):
            found = {split: folder for split, folder in found.items() if split not in EVAL_SPLITS}
        layouts: set[str] = set()
        self._files: dict[str, dict[str, Path]] = {}
        for split, folder in found.items():
            files = self._language_files(folder, split, layouts)
            if wanted is not None:
                files = {code: files[code] for code in wanted if code in files}
            self._files[split] = dict(sorted(files.items()))
        self.layout = "flores101" if layouts == {"flores101"} else "flores200"
        self.corpus = corpus or self.layout
        self.line_counts = {split: self._check_line_counts(split) for split in self._files}
        self._metadata = {split: self._metadata_file(split) for split in self._files}

    @classmethod
    def from_config(cls, config: FloresConfig, languages: list[str] | None) -> FloresSource:
        return cls(
            resolve_source_path(config.path),
            languages=config.languages if config.languages is not None else languages,
            splits=config.splits,
            corpus=config.corpus,
            skip_eval_splits=True,
        )

    # -- discovery ---------------------------------------------------------------------------------

    def _find_splits(self) -> dict[str, Path]:
        def holds_split(folder: Path) -> bool:
            return any(folder.glob(f"*.{folder.name}"))

        if holds_split(self.root):
            return {self.root.name: self.root}
        return {
            child.name: child
            for child in sorted(self.root.iterdir())
            if child.is_dir() and holds_split(child)
        }

    def _language_files(self, folder: Path, split: str, layouts: set[str]) -> dict[str, Path]:
        files: dict[str, Path] = {}
        by_flores200 = {lang.flores200: lang for lang in self._registry}
        by_flores101 = {lang.flores101: lang for lang in self._registry if lang.flores101}
        for path in sorted(folder.glob(f"*.{split}")):
            stem = path.name[: -len(split) - 1]
            lang = by_flores200.get(stem)
            if lang is not None:
                layouts.add("flores200")
            elif stem in by_flores101:
                lang = by_flores101[stem]
                layouts.add("flores101")
            else:
                raise CorpusError(
                    f"{path}: {stem!r} is not a Flores-200 code (eng_Latn) "
                    "or a Flores-101 code (eng, zho_simpl)"
                )
            if lang.code in files:
                raise CorpusError(f"{path}: {lang.code} is also read from {files[lang.code]}")
            files[lang.code] = path
        return files

    def _check_line_counts(self, split: str) -> int:
        counts = {code: count_lines(CorpusFile(path)) for code, path in self._files[split].items()}
        if not counts:
            return 0
        expected, _ = Counter(counts.values()).most_common(1)[0]
        reference = next(code for code, n in counts.items() if n == expected)
        for code, n in counts.items():
            if n != expected:
                raise CorpusError(
                    f"{self._files[split][code]} has {n} lines, but "
                    f"{self._files[split][reference]} has {expected}: the files of a split "
                    "must be line-aligned"
                )
        return expected

    def _metadata_file(self, split: str) -> Path | None:
        # Beside the split folders, or one level up when the path is a split folder itself.
        candidates = [
            self.root / f"metadata_{split}.tsv",
            self.root.parent / f"metadata_{split}.tsv",
        ]
        path = next((p for p in candidates if p.is_file()), None)
        if path is not None and count_lines(CorpusFile(path)) - 1 != self.line_counts[split]:
            raise CorpusError(
                f"{path} has {count_lines(CorpusFile(path)) - 1} rows, but the {split} files have "
                f"{self.line_counts[split]} lines"
            )
        return path

    # -- reading -----------------------------------------------------------------------------------

    @property
    def languages(self) -> list[str]:
        codes = {code for files in self._files.values() for code in files}
        return sorted(codes)

    @property
    def num_segments(self) -> int:
        return sum(self.line_counts.values())

    @property
    def splits(self) -> list[str]:
        return list(self._files)

    def describe(self) -> dict[str, object]:
        return {
            "type": "flores",
            "corpus": self.corpus,
            "layout": self.layout,
            "path": str(self.root),
            "splits": {split: self.line_counts[split] for split in self._files},
            "languages": self.languages,
            "skipped": dict(self.skipped),
        }

    def _iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        schema = segment_schema(self.languages)
        for split, files in self._files.items():
            yield from self._read_split(split, files, schema, batch_rows)

    def _read_split(
        self, split: str, files: dict[str, Path], schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        doc_ids = self._doc_ids(split)
        codes = list(files)
        builder = BatchBuilder(self.corpus, segment_languages(schema), batch_rows)
        streams = [read_lines(CorpusFile(files[code])) for code in codes]
        for lines in zip(*streams, strict=True):
            line_no = lines[0][0]
            texts = {
                code: text if text.strip() else None
                for code, (_, text) in zip(codes, lines, strict=True)
            }
            for code, text in texts.items():
                if text is None:
                    self.skipped[f"blank {code}"] += 1
            doc_id = doc_ids[line_no - 1] if doc_ids else None
            batch = builder.add(split, str(line_no), doc_id, texts)
            if batch is not None:
                yield batch
        batch = builder.flush()
        if batch is not None:
            yield batch

    def _doc_ids(self, split: str) -> list[str] | None:
        path = self._metadata[split]
        if path is None:
            return None
        # read_lines, not csv: invalid UTF-8 or an overlong line is then one error naming the
        # line, a BOM is dropped, and rows split on "\n" as count_lines counts them.
        rows = (line.split("\t") for _, line in read_lines(CorpusFile(path)))
        header = next(rows, [])
        column = header.index("URL") if "URL" in header else 0
        return [row[column] if len(row) > column else "" for row in rows]
