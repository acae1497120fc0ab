"""Tab-separated sentence pairs: Tatoeba (manythings.org), the Tatoeba Challenge, any TSV.

Layouts read::

    Go.<TAB>Va !<TAB>CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 ...
        layout: columns (default), columns: {en: 0, fr: 1}; extra columns are ignored
    eng<TAB>fra<TAB>Go.<TAB>Va !
        layout: tatoeba-challenge, languages: [en, fr]; each row names its own languages

Fields are split on tabs only, with no quoting (Tatoeba sentences contain quotes). Files may be
plain, ``.gz``, ``.xz`` or ``.bz2``; ``path`` may be a glob.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from bayling_data.config import StrictModel, resolve_code, resolve_distinct_codes
from bayling_data.errors import CorpusError, UnknownLanguageError
from bayling_data.languages import LanguageRegistry, registry
from bayling_data.sources.base import DEFAULT_BATCH_ROWS, BatchBuilder, Source
from bayling_data.sources.files import CorpusFile, expand_paths, read_lines, strip_compression

TsvLayout = Literal["columns", "tatoeba-challenge"]
UnknownCodes = Literal["error", "skip"]

# Tatoeba Challenge codes the registry does not know under that name: Mandarin is `cmn`
# (Flores: zho_Hans / zho_Hant), and Japanese rows are labelled by the script the sentence
# happens to use (Hani, Hira, Kana), all written as jpn_Jpan in Flores.
_CODE_ALIASES = {"cmn": "zho"}
_JAPANESE_SCRIPTS = {"Hani", "Hira", "Kana", "Hrkt", "Jpan"}
_TATOEBA_CHALLENGE_COLUMNS = 4  # srclang, tgtlang, source text, target text


class TsvConfig(StrictModel):
    """Tab-separated pairs: fixed language columns, or the Tatoeba Challenge layout."""

    type: Literal["tsv"]
    path: str = Field(description="A .tsv/.txt file (plain, .gz, .xz, .bz2) or a glob.")
    layout: TsvLayout = Field(
        default="columns",
        description="`columns`: languages fixed by `columns`; `tatoeba-challenge`: "
        "srclang, tgtlang, source, target on each row.",
    )
    columns: dict[str, int] | None = Field(
        default=None, description="Language -> 0-based column ({en: 0, fr: 1}); layout columns."
    )
    languages: list[str] | None = Field(
        default=None,
        min_length=2,
        description="Languages kept (the output columns); required for tatoeba-challenge.",
    )
    header: bool = Field(default=False, description="Skip the first line of each file.")
    unknown_codes: UnknownCodes = Field(
        default="error",
        description="tatoeba-challenge: a row code the registry does not know is an error, "
        "or (skip) the row is skipped and counted.",
    )
    corpus: str | None = Field(
        default=None,
        description="Corpus name; default: the file's stem (fra.txt -> fra), or tatoeba-challenge.",
    )
    split: str = Field(default="train", description="Split name recorded in provenance.")

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        return None if value is None else check_columns(value, resolve_code)

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str] | None:
        return resolve_distinct_codes(value)

    @model_validator(mode="after")
    def _layout_keys(self) -> TsvConfig:
        if self.layout == "columns":
            if self.columns is None:
                raise ValueError("layout columns needs `columns: {en: 0, fr: 1}`")
            if self.languages is not None:
                raise ValueError(
                    "`languages` is for layout tatoeba-challenge; `columns` names them"
                )
        else:
            if self.languages is None:
                raise ValueError("layout tatoeba-challenge needs `languages: [en, fr]`")
            if self.columns is not None:
                raise ValueError("layout tatoeba-challenge has fixed columns; drop `columns`")
        return self


def check_columns(columns: dict[str, int], resolve: Callable[[str], str]) -> dict[str, int]:
    """Language -> column with the codes resolved; two at least, no index or code twice."""
    if len(columns) < 2:
        raise ValueError("give at least two language columns ({en: 0, fr: 1})")
    resolved: dict[str, int] = {}
    for key, index in columns.items():
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"{key}: a column is a 0-based index, got {index!r}")
        code = resolve(key)
        if code in resolved:
            raise ValueError(f"{key}: {code} has two columns")
        resolved[code] = index
    if len(set(resolved.values())) != len(resolved):
        raise ValueError("two languages share a column index")
    return resolved


class TsvSource(Source):
    """Tab-separated sentence pairs, streamed line by line.

    >>> TsvSource("fra.txt", columns={"en": 0, "fr": 1}).to_table()  # doctest: +SKIP
    >>> TsvSource("eng-zho/test.txt", layout="tatoeba-challenge",
    ...           languages=["en", "zh"]).to_table()  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        *,
        columns: dict[str, int] | None = None,
        layout: TsvLayout = "columns",
        languages: list[str] | None = None,
        header: bool = False,
        unknown_codes: UnknownCodes = "error",
        corpus: str | None = None,
        split: str = "train",
        lang_registry: LanguageRegistry | None = None,
    ):
        super().__init__()
        self._registry = lang_registry or registry()
        self.layout = layout
        self.header = header
        self.split = split
        self.unknown_codes = unknown_codes
        self._code_cache: dict[str, str | None] = {}
        if layout == "columns":
            if columns is None or languages is not None:
                raise CorpusError(
                    f"{path}: layout columns takes columns={{'en': 0, 'fr': 1}} (not languages=)"
                )
            try:
                self.columns = check_columns(columns, lambda c: self._registry.resolve(c).code)
            except ValueError as err:
                raise CorpusError(f"{path}: columns: {err}") from None
            self.min_fields = max(self.columns.values()) + 1
            self._languages = sorted(self.columns)
        elif layout == "tatoeba-challenge":
            if languages is None or columns is not None:
                raise CorpusError(
                    f"{path}: layout tatoeba-challenge takes languages=[...] (not columns=)"
                )
            codes = [self._registry.resolve(code).code for code in languages]
            if len(codes) < 2 or len(set(codes)) != len(codes):
                raise CorpusError(f"{path}: languages: give two or more distinct languages")
            self.columns = {}
            self.min_fields = _TATOEBA_CHALLENGE_COLUMNS
            self._languages = sorted(codes)
        else:
            raise CorpusError(f"{path}: layout: expected columns or tatoeba-challenge")
        if unknown_codes not in ("error", "skip"):
            raise CorpusError(f"unknown_codes: expected error or skip, got {unknown_codes!r}")
        paths = expand_paths(path)
        folders = [p for p in paths if not p.is_file()]
        if folders:
            raise CorpusError(f"{folders[0]}: a folder; `path` is a TSV file or a glob of files")
        archives = [p for p in paths if p.suffix == ".zip"]
        if archives:
            raise CorpusError(f"{archives[0]}: zip archives are not read; unzip the .txt first")
        self.files = [CorpusFile(p) for p in paths]
        self.labels = _file_labels(paths)
        self.corpus = corpus or (
            "tatoeba-challenge" if layout == "tatoeba-challenge" else self._default_corpus(paths)
        )
        for file in self.files:
            self._check_first_row(file)

    @staticmethod
    def _default_corpus(paths: list[Path]) -> str:
        if len(paths) > 1:
            return Path(os.path.commonpath([p.resolve().parent for p in paths])).name
        return _stem(paths[0])

    def _check_first_row(self, file: CorpusFile) -> None:
        """Fail before a build writes anything when the layout is clearly wrong."""
        for line_no, fields in self._rows(file):
            self._check_fields(file, line_no, fields)
            if self.layout == "tatoeba-challenge":
                self._resolve_row_code(fields[0], file, line_no)
                self._resolve_row_code(fields[1], file, line_no)
            return

    def _rows(self, file: CorpusFile) -> Iterator[tuple[int, list[str]]]:
        """Non-blank data lines split on tabs (header and blank lines counted, not yielded)."""
        for line_no, line in read_lines(file):
            if line_no == 1:
                line = line.removeprefix("\ufeff")
                if self.header:
                    continue
            if not line.strip():
                self.skipped["blank line"] += 1
                continue
            yield line_no, line.split("\t")

    def _check_fields(self, file: CorpusFile, line_no: int, fields: list[str]) -> None:
        if len(fields) < self.min_fields:
            expected = (
                "srclang, tgtlang, source, target"
                if self.layout == "tatoeba-challenge"
                else f"columns {', '.join(f'{c}={i}' for c, i in self.columns.items())}"
            )
            raise CorpusError(
                f"{file}:{line_no}: {len(fields)} tab-separated fields, expected at least "
                f"{self.min_fields} ({expected})"
            )

    def _resolve_row_code(self, code: str, file: CorpusFile, line_no: int) -> str | None:
        if code in self._code_cache:
            return self._code_cache[code]
        resolved = resolve_tatoeba_code(code, self._registry)
        if resolved is None and self.unknown_codes == "error":
            raise CorpusError(
                f"{file}:{line_no}: unknown language code {code!r} "
                "(set `unknown_codes: skip` to skip rows in languages the registry lacks)"
            )
        self._code_cache[code] = resolved
        return resolved

    # -- reading -----------------------------------------------------------------------------------

    @property
    def languages(self) -> list[str]:
        return list(self._languages)

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {
            "type": "tsv",
            "corpus": self.corpus,
            "layout": self.layout,
            "files": [str(file) for file in self.files],
            "languages": self.languages,
            "skipped": dict(self.skipped),
        }
        if self.layout == "columns":
            described["columns"] = dict(self.columns)
        return described

    def _iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        builder = BatchBuilder(self.corpus, self.languages, batch_rows)
        several = len(self.files) > 1
        kept = set(self._languages)
        for file, label in zip(self.files, self.labels, strict=True):
            for line_no, fields in self._rows(file):
                self._check_fields(file, line_no, fields)
                if self.layout == "columns":
                    texts = {code: fields[index] for code, index in self.columns.items()}
                else:
                    first = self._resolve_row_code(fields[0], file, line_no)
                    second = self._resolve_row_code(fields[1], file, line_no)
                    if first is None or second is None:
                        unknown = fields[0] if first is None else fields[1]
                        self.skipped[f"unknown language {unknown}"] += 1
                        continue
                    if first == second:
                        self.skipped[f"same language {first}"] += 1
                        continue
                    outside = [code for code in (first, second) if code not in kept]
                    if outside:
                        self.skipped[f"other language {outside[0]}"] += 1
                        continue
                    texts = {first: fields[2], second: fields[3]}
                blank = [code for code, text in texts.items() if not text.strip()]
                if blank:
                    self.skipped[f"blank {blank[0]}"] += 1
                    continue
                segment_id = f"{label}:{line_no}" if several else str(line_no)
                batch = builder.add(self.split, segment_id, None, texts)
                if batch is not None:
                    yield batch
        batch = builder.flush()
        if batch is not None:
            yield batch

    @classmethod
    def from_config(cls, config: TsvConfig, languages: list[str] | None) -> TsvSource:
        return cls(
            config.path,
            columns=dict(config.columns) if config.columns is not None else None,
            layout=config.layout,
            languages=list(config.languages) if config.languages is not None else None,
            header=config.header,
            unknown_codes=config.unknown_codes,
            corpus=config.corpus,
            split=config.split,
        )


def resolve_tatoeba_code(code: str, lang_registry: LanguageRegistry) -> str | None:
    """A Tatoeba (ISO 639-3, optional script) code as Flores-200, or None when unknown.

    ``eng`` -> eng_Latn, ``zho_Hant`` -> zho_Hant, ``cmn_Hans`` -> zho_Hans, ``jpn_Hira`` ->
    jpn_Jpan; a known language in a script Flores lacks (``srp_Latn``) is unknown.
    """
    code = code.strip()
    try:
        return lang_registry.resolve(code).code
    except UnknownLanguageError:
        pass
    base, _, script = code.partition("_")
    alias = _CODE_ALIASES.get(base.lower())
    if alias is not None:
        try:
            return lang_registry.resolve(f"{alias}_{script}" if script else alias).code
        except UnknownLanguageError:
            return None
    if script in _JAPANESE_SCRIPTS:
        try:
            language = lang_registry.resolve(base)
        except UnknownLanguageError:
            return None
        return language.code if language.script == "Jpan" else None
    return None


def _stem(path: Path) -> str:
    """``fra.txt`` -> ``fra``, ``pairs.tsv.gz`` -> ``pairs``."""
    name = strip_compression(path.name)
    return name.rsplit(".", 1)[0] if "." in name else name


def _file_labels(paths: list[Path]) -> list[str]:
    """Per-file segment-id prefixes: the stem, or the path below the common folder if stems clash
    (``eng-fra/test``, ``eng-deu/test``)."""
    stems = [_stem(p) for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    root = Path(os.path.commonpath([p.resolve().parent for p in paths]))
    below = [(p.resolve().parent.relative_to(root) / _stem(p)).as_posix() for p in paths]
    if len(set(below)) == len(below):
        return below
    return [p.resolve().relative_to(root).as_posix() for p in paths]
