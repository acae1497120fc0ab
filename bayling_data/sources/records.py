"""Row-oriented corpora: JSON Lines, Parquet, and Hugging Face Hub data sets.

Two row shapes are read, named by recipe keys:

* nested, as in Hub translation data sets: ``{"translation": {"de": "...", "en": "..."}}``
  (``translation_field``, and ``languages`` for the keys to take, default all);
* flat columns: ``{"src": "...", "tgt": "..."}`` with ``columns: {de: src, en: tgt}``.

Each chunk of rows becomes an Arrow table and is turned into a segment batch with column
operations; only JSON parsing is done row by row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from bayling_data.config import StrictModel
from bayling_data.errors import CorpusError, UnknownLanguageError
from bayling_data.languages import registry
from bayling_data.schema import segment_schema
from bayling_data.sources.base import DEFAULT_BATCH_ROWS, Source
from bayling_data.sources.files import CorpusFile, expand_paths, read_lines, strip_compression


class _RowFields(StrictModel):
    translation_field: str | None = Field(
        default=None, description="Field holding {lang: text}; default `translation`."
    )
    columns: dict[str, str] | None = Field(
        default=None, description="Flat layout: language -> field name."
    )
    languages: list[str] | None = Field(
        default=None, description="Keys of the translation field to take; default: all."
    )
    id_field: str | None = Field(default=None, description="Field holding a segment id.")
    corpus: str | None = None
    split: str = "train"

    @model_validator(mode="after")
    def _one_layout(self) -> _RowFields:
        if self.columns is not None and (self.translation_field or self.languages):
            raise ValueError(
                "use either `columns` (flat fields) or `translation_field`/`languages`, not both"
            )
        if self.columns is not None and len(self.columns) < 2:
            raise ValueError("`columns` needs at least two languages")
        return self


class JsonlConfig(_RowFields):
    """JSON Lines files, one object a line (plain, .gz, .xz, .bz2; a glob of many)."""

    type: Literal["jsonl"]
    path: str


class ParquetConfig(_RowFields):
    """Parquet files (a glob of many), read a row group at a time."""

    type: Literal["parquet"]
    path: str


class HubConfig(_RowFields):
    """A Hugging Face Hub data set (streamed) or a local data set folder."""

    type: Literal["hub"]
    dataset: str = Field(description="Hub id (ORG/NAME) or a local folder of data files.")
    config: str | None = Field(default=None, description="The data set's configuration name.")
    hub_split: str = Field(default="train", description="Which split of the data set to read.")
    revision: str | None = None


class RowMapping:
    """Turns tables of rows into segment batches, per the recipe's field names."""

    def __init__(self, fields: _RowFields, where: str):
        self.where = where
        self.fields = fields
        self.translation_field = (
            None if fields.columns else (fields.translation_field or "translation")
        )
        self._written_to_code: dict[str, str] = {}
        wanted = fields.columns.keys() if fields.columns else (fields.languages or [])
        for written in wanted:
            self._written_to_code[written] = self._resolve(written)

    def _resolve(self, written: str) -> str:
        try:
            return registry().resolve(written).code
        except UnknownLanguageError as err:
            raise CorpusError(f"{self.where}: language {written!r}: {err}") from None

    def learn_languages(self, schema: pa.Schema) -> None:
        """Without `languages`, take every key of the translation field's struct."""
        if self._written_to_code or self.translation_field is None:
            return
        if self.translation_field not in schema.names:
            raise CorpusError(f"{self.where}: no field {self.translation_field!r} in the rows")
        field_type = schema.field(self.translation_field).type
        if not pa.types.is_struct(field_type):
            raise CorpusError(
                f"{self.where}: field {self.translation_field!r} should map languages to texts"
            )
        for index in range(field_type.num_fields):
            written = field_type.field(index).name
            self._written_to_code[written] = self._resolve(written)

    @property
    def languages(self) -> list[str]:
        return sorted(set(self._written_to_code.values()))

    def to_segments(
        self, table: pa.Table, corpus: str, split: str, first_row: int, skipped: dict[str, int]
    ) -> pa.RecordBatch:
        """Rows ``first_row``.. of a table as a segment batch; rows missing a side are counted."""
        self.learn_languages(table.schema)
        texts: dict[str, pa.Array] = {}
        for written, code in self._written_to_code.items():
            if self.translation_field is not None:
                if self.translation_field not in table.schema.names:
                    raise CorpusError(
                        f"{self.where}: no field {self.translation_field!r} in the rows"
                    )
                column = table.column(self.translation_field).combine_chunks()
                names = [column.type.field(i).name for i in range(column.type.num_fields)]
                values = (
                    pc.struct_field(column, written)
                    if written in names
                    else pa.nulls(table.num_rows, pa.string())
                )
            else:
                name = self.fields.columns[written]  # type: ignore[index]
                if name not in table.schema.names:
                    raise CorpusError(f"{self.where}: no field {name!r} in the rows")
                values = table.column(name).combine_chunks()
            texts[code] = pc.cast(values, pa.string())
        keep = pa.array([True] * table.num_rows)
        for code, values in texts.items():
            # Null, empty or white space only: the row cannot make a pair with this language.
            blank = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0), True)
            missing = pc.sum(pc.cast(pc.and_(keep, blank), pa.int64())).as_py() or 0
            if missing:
                skipped[f"blank {code}"] = skipped.get(f"blank {code}", 0) + missing
            keep = pc.and_(keep, pc.invert(blank))
        if self.fields.id_field:
            if self.fields.id_field not in table.schema.names:
                raise CorpusError(f"{self.where}: no field {self.fields.id_field!r} in the rows")
            ids = pc.cast(table.column(self.fields.id_field).combine_chunks(), pa.string())
        else:
            ids = pa.array([str(first_row + i) for i in range(table.num_rows)], pa.string())
        n = table.num_rows
        batch = pa.RecordBatch.from_pydict(
            {
                "corpus": pa.array([corpus] * n, pa.string()),
                "split": pa.array([split] * n, pa.string()),
                "segment_id": ids,
                "doc_id": pa.nulls(n, pa.string()),
                **{code: texts[code] for code in self.languages},
            },
            schema=segment_schema(self.languages),
        )
        return batch.filter(keep)


class _RowSource(Source):
    def __init__(self, fields: _RowFields, where: str, default_corpus: str):
        super().__init__()
        self.mapping = RowMapping(fields, where)
        self.corpus = fields.corpus or default_corpus
        self.split = fields.split

    @property
    def languages(self) -> list[str]:
        return self.mapping.languages

    def _emit(self, table: pa.Table, first_row: int) -> pa.RecordBatch | None:
        batch = self.mapping.to_segments(table, self.corpus, self.split, first_row, self.skipped)
        return batch if batch.num_rows else None


class JsonlSource(_RowSource):
    """JSON Lines rows, parsed line by line (errors name the file and line)."""

    def __init__(self, path: str | Path, fields: _RowFields | None = None):
        self.files = [CorpusFile(p) for p in expand_paths(path)]
        fields = fields or _RowFields()
        name = strip_compression(self.files[0].name).removesuffix(".jsonl").removesuffix(".json")
        super().__init__(fields, str(path), name)
        if not self.mapping.languages:
            self.mapping.learn_languages(self._first_rows_schema())

    def _first_rows_schema(self) -> pa.Schema:
        for file in self.files:
            rows = [row for _, row in zip(range(100), self._rows(file), strict=False)]
            if rows:
                return pa.Table.from_pylist([r for _, r in rows]).schema
        raise CorpusError(f"{self.files[0]}: no rows to learn the languages from; give `languages`")

    def _rows(self, file: CorpusFile) -> Iterator[tuple[int, dict[str, Any]]]:
        for line_no, text in read_lines(file):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise CorpusError(f"{file}:{line_no}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise CorpusError(f"{file}:{line_no}: expected a JSON object per line")
            yield line_no, row

    def _iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        for file in self.files:
            chunk: list[dict[str, Any]] = []
            first = 1
            for line_no, row in self._rows(file):
                if not chunk:
                    first = line_no
                chunk.append(row)
                if len(chunk) == batch_rows:
                    batch = self._emit_rows(chunk, first, file)
                    chunk = []
                    if batch is not None:
                        yield batch
            if chunk:
                batch = self._emit_rows(chunk, first, file)
                if batch is not None:
                    yield batch

    def _emit_rows(self, rows: list[dict[str, Any]], first: int, file: CorpusFile):
        try:
            table = pa.Table.from_pylist(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise CorpusError(
                f"{file}: rows from line {first} on do not share one shape ({err})"
            ) from None
        return self._emit(table, first)

    def describe(self) -> dict[str, object]:
        return {
            "type": "jsonl",
            "corpus": self.corpus,
            "files": [str(f) for f in self.files],
            "languages": self.languages,
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_config(cls, config: JsonlConfig, languages: list[str] | None) -> JsonlSource:
        return cls(config.path, config)


class ParquetSource(_RowSource):
    """Parquet files, streamed a row group at a time; all column operations."""

    def __init__(self, path: str | Path, fields: _RowFields | None = None):
        import pyarrow.parquet as pq

        self.files = expand_paths(path)
        fields = fields or _RowFields()
        super().__init__(fields, str(path), self.files[0].name.removesuffix(".parquet"))
        try:
            schema = pq.read_schema(self.files[0])
        except (OSError, pa.ArrowInvalid) as err:
            raise CorpusError(f"{self.files[0]}: not a readable Parquet file ({err})") from None
        self.mapping.learn_languages(schema)

    def _iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        for path in self.files:
            try:
                reader = pq.ParquetFile(path)
                first = 1
                for record_batch in reader.iter_batches(batch_size=batch_rows):
                    table = pa.Table.from_batches([record_batch])
                    batch = self._emit(table, first)
                    first += table.num_rows
                    if batch is not None:
                        yield batch
            except (OSError, pa.ArrowInvalid) as err:
                raise CorpusError(f"{path}: not a readable Parquet file ({err})") from None

    def describe(self) -> dict[str, object]:
        return {
            "type": "parquet",
            "corpus": self.corpus,
            "files": [str(f) for f in self.files],
            "languages": self.languages,
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_config(cls, config: ParquetConfig, languages: list[str] | None) -> ParquetSource:
        return cls(config.path, config)


def _offline() -> bool:
    return any(
        os.environ.get(name, "") in ("1", "true", "TRUE", "ON")
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


class HubSource(_RowSource):
    """A Hugging Face data set read through ``datasets`` in streaming mode.

    ``dataset`` is a Hub id (ORG/NAME), fetched when online, or a local folder of JSON Lines /
    Parquet files, read offline the same way.
    """

    def __init__(self, dataset: str, fields: HubConfig | None = None):
        fields = fields or HubConfig(type="hub", dataset=dataset)
        super().__init__(fields, f"hub:{dataset}", dataset.rstrip("/").split("/")[-1])
        self.dataset_id = dataset
        local = Path(dataset).expanduser().exists()
        advice = (
            "download it where you are online (`huggingface-cli download --repo-type dataset "
            f"{dataset} --local-dir DIR`) and use `dataset: DIR`, or a `jsonl` / `parquet` source"
        )
        if not local and _offline():
            raise CorpusError(f"hub:{dataset}: the Hub is switched off (HF_HUB_OFFLINE); {advice}")
        import datasets

        try:
            self._stream = datasets.load_dataset(
                str(Path(dataset).expanduser()) if local else dataset,
                name=fields.config,
                split=fields.hub_split,
                revision=fields.revision,
                streaming=True,
            )
            schema = self._stream.features.arrow_schema if self._stream.features else None
        except Exception as err:  # datasets raises many types for "cannot reach / not found"
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CorpusError(f"hub:{dataset}: cannot load it ({reason}); {advice}") from None
        if schema is not None:
            self.mapping.learn_languages(schema)

    def _iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        first = 1
        for chunk in self._stream.iter(batch_size=batch_rows):
            table = pa.Table.from_pydict(chunk)
            batch = self._emit(table, first)
            first += table.num_rows
            if batch is not None:
                yield batch

    def describe(self) -> dict[str, object]:
        return {
            "type": "hub",
            "corpus": self.corpus,
            "dataset": self.dataset_id,
            "languages": self.languages,
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_config(cls, config: HubConfig, languages: list[str] | None) -> HubSource:
        return cls(config.dataset, config)
