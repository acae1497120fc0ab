"""WMT test sets: one source file and one or more reference translations, plain text or SGML.

Accepted as published::

    generaltest2022.zh-en.src.zh  +  generaltest2022.zh-en.ref.A.en [.ref.B.en]
                                                          path: generaltest2022.zh-en
    newstest2014-deen-src.de.sgm  +  newstest2014-deen-ref.en.sgm
                                                          path: newstest2014-deen
    any source file  +  reference files or globs          source: FILE, references: [FILE, ...]

Plain-text files (also ``.gz``, ``.xz``, ``.bz2``) are line-aligned. SGML files (``.sgm``, told by
the extension) are paired by ``(docid, seg id)``; each test set is a few thousand segments, so the
pairing holds one test set in memory. With several references a segment gives one row per
reference, its id suffixed with the reference name (``17#A``, ``17#B``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from bayling_data.config import StrictModel, resolve_code
from bayling_data.errors import CorpusError, UnknownLanguageError
from bayling_data.languages import LanguageRegistry, registry
from bayling_data.sources.base import DEFAULT_BATCH_ROWS, BatchBuilder, Source
from bayling_data.sources.files import (
    CorpusFile,
    count_lines,
    expand_paths,
    read_lines,
    strip_compression,
)
from bayling_data.sources.moses import glob_escape, languages_in_name

ReferencesUsed = Literal["all", "first"]

# generaltest2022.zh-en.src.zh / .ref.A.en / .ref.en; newstest2014-deen-src.de.sgm / -ref.en.sgm
_TEXT_SOURCE_NAME = re.compile(r"\.src\.([^.]+)$")
_TEXT_REFERENCE_NAME = re.compile(r"\.ref\.(?:([^.]+)\.)?([^.]+)$")
_SGML_SIDE_NAME = re.compile(r"[-.](src|ref)\.(?:([^.]+)\.)?([^.]+)\.sgm$")
_TRAILING_CODE = re.compile(r"\.([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)?)$")
_CORPUS_IN_NAME = re.compile(r"^[^.\-]+")

# SGML is not XML (bare `&`, unquoted attributes, no root element): read it line by line.
_ATTRIBUTE = re.compile(r"""([A-Za-z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
# Tags are matched without crossing a `<`, and a line's <seg> tags are paired in one pass, so
# reading is linear in the line's length (a lazy `<seg>(.*?)</seg>` rescans the rest of the line
# for each unclosed <seg>: 59 s for one 360 KB line of them).
_SET_OPEN = re.compile(r"<\s*(srcset|refset|tstset)\b([^<>]*)>", re.IGNORECASE)
_DOC_OPEN = re.compile(r"<\s*doc\b([^<>]*)>", re.IGNORECASE)
_DOC_CLOSE = re.compile(r"<\s*/\s*doc\s*>", re.IGNORECASE)
_SEG_TAG = re.compile(r"<\s*(/\s*)?seg(?:\s*>|\b([^<>]*)>)", re.IGNORECASE)
_SEG_OPEN = re.compile(r"<\s*seg\b", re.IGNORECASE)
_ENTITY = re.compile(r"&(amp|lt|gt|quot|apos);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


class WmtLanguages(StrictModel):
    """The test set's direction, when the file names do not say it."""

    source: str = Field(description="Language of the source file (any registry code).")
    target: str = Field(description="Language of the reference files (any registry code).")

    @field_validator("source", "target")
    @classmethod
    def _code(cls, value: str) -> str:
        return resolve_code(value)

    @model_validator(mode="after")
    def _distinct(self) -> WmtLanguages:
        if self.source == self.target:
            raise ValueError("the source and target languages must differ")
        return self


class WmtConfig(StrictModel):
    """A WMT test set: a source file and its references (plain text or SGML)."""

    type: Literal["wmt"]
    path: str | None = Field(
        default=None,
        description="File prefix (generaltest2022.zh-en, newstest2014-deen); finds src and refs.",
    )
    source: str | None = Field(default=None, description="The source file, instead of `path`.")
    references: list[str] | None = Field(
        default=None, min_length=1, description="Reference files or globs, with `source`."
    )
    languages: WmtLanguages | None = Field(
        default=None, description="{source: zh, target: en}; default: from the files."
    )
    references_used: ReferencesUsed = Field(
        default="all", description="`all`: one row per reference; `first`: the first only."
    )
    corpus: str | None = Field(
        default=None, description="Corpus name; default: the name's first part (newstest2014)."
    )
    split: str = Field(default="test", description="Split name recorded in provenance.")

    @model_validator(mode="after")
    def _path_or_files(self) -> WmtConfig:
        if (self.path is None) == (self.source is None):
            raise ValueError("give either `path` (the file prefix) or `source` with `references`")
        if self.source is not None and not self.references:
            raise ValueError("`source` needs `references` (at least one file or glob)")
        if self.path is not None and self.references is not None:
            raise ValueError("`references` goes with `source`; `path` finds PREFIX.ref.* itself")
        return self


@dataclass(frozen=True)
class WmtSide:
    """One file of a test set: its language (Flores-200) and, for a reference, its name."""

    file: CorpusFile
    code: str
    name: str


@dataclass(frozen=True)
class _SgmlSegment:
    line_no: int
    text: str


class WmtSource(Source):
    """A WMT test set read as (source, reference) segment pairs.

    >>> WmtSource("wmt22/generaltest2022.zh-en").to_table()  # doctest: +SKIP
    >>> WmtSource(source="newstest2014-deen-src.de.sgm",
    ...           references=["newstest2014-deen-ref.en.sgm"]).to_table()  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        source: str | Path | None = None,
        references: list[str | Path] | None = None,
        languages: tuple[str, str] | list[str] | None = None,
        references_used: ReferencesUsed = "all",
        corpus: str | None = None,
        split: str = "test",
        lang_registry: LanguageRegistry | None = None,
    ):
        super().__init__()
        self._registry = lang_registry or registry()
        self.split = split
        if references_used not in ("all", "first"):
            raise CorpusError(f"references_used: expected all or first, got {references_used!r}")
        wanted = None
        if languages is not None:
            if len(languages) != 2:
                raise CorpusError(f"languages: expected [source, target], got {languages!r}")
            wanted = (
                self._registry.resolve(languages[0]).code,
                self._registry.resolve(languages[1]).code,
            )
        if (path is None) == (source is None):
            raise CorpusError("give either a path (the file prefix) or source= with references=")
        if path is not None:
            if references is not None:
                raise CorpusError(f"{path}: references= goes with source=, not with a path prefix")
            source_path, reference_paths = self._find_by_prefix(Path(path).expanduser())
            name_for_pair = Path(path).name
        else:
            if not references:
                raise CorpusError(f"{source}: a source file needs references (files or globs)")
            source_path = Path(source).expanduser()
            if not source_path.is_file():
                raise CorpusError(f"{source_path}: no such source file")
            reference_paths = self._expand_references(references)
            name_for_pair = source_path.name
        self.format = self._format_of(source_path, reference_paths)
        pair = languages_in_name(name_for_pair)
        self.source_side = self._side(source_path, "src", wanted, pair)
        sides = self._name_references(reference_paths)
        if references_used == "first":
            sides = sides[:1]
        self.references = [self._side(p, name, wanted, pair) for p, name in sides]
        for reference in self.references:
            if reference.code == self.source_side.code:
                raise CorpusError(
                    f"{reference.file}: the reference is in {reference.code}, the source's "
                    f"language; give `languages: {{source: .., target: ..}}` if that is wrong"
                )
        targets = {reference.code for reference in self.references}
        if len(targets) > 1:
            raise CorpusError(
                f"{self.references[0].file}: the references are in different languages "
                f"({', '.join(sorted(targets))}); a test set has one target language"
            )
        self.corpus = corpus or self._corpus_from_name(source_path.name)
        # Test sets are small: check alignment now, so a build fails before it writes anything.
        if self.format == "sgml":
            self._read_sgml_pairs()
        else:
            self._check_line_counts()

    # -- discovery ---------------------------------------------------------------------------------

    @staticmethod
    def _find_by_prefix(prefix: Path) -> tuple[Path, list[Path]]:
        folder, name = prefix.parent, glob_escape(prefix.name)
        if prefix.is_file():
            raise CorpusError(
                f"{prefix}: `path` is the prefix (generaltest2022.zh-en, newstest2014-deen), "
                "not a file; for explicit files give `source` and `references`"
            )
        if not folder.is_dir():
            raise CorpusError(f"{folder}: no such folder")
        text_sources = [
            p for p in folder.glob(f"{name}.src.*") if _TEXT_SOURCE_NAME.search(_bare(p))
        ]
        if text_sources:
            sources = text_sources
            references = [
                p for p in folder.glob(f"{name}.ref.*") if _TEXT_REFERENCE_NAME.search(_bare(p))
            ]
            expected = f"{prefix}.ref.NAME.xx"
        else:
            sources = [p for p in folder.glob(f"{name}-src.*") if _bare(p).endswith(".sgm")]
            references = [p for p in folder.glob(f"{name}-ref.*") if _bare(p).endswith(".sgm")]
            expected = f"{prefix}-ref.xx.sgm"
        if not sources:
            raise CorpusError(
                f"{prefix}: no WMT source file (expected {prefix}.src.xx or {prefix}-src.xx.sgm)"
            )
        if len(sources) > 1:
            raise CorpusError(
                f"{prefix}: several source files ({', '.join(sorted(p.name for p in sources))}); "
                "give `source` and `references` explicitly"
            )
        if not references:
            raise CorpusError(f"{sources[0]}: no reference file next to it (expected {expected})")
        return sources[0], sorted(references)

    @staticmethod
    def _expand_references(patterns: list[str | Path]) -> list[Path]:
        found: list[Path] = []
        for pattern in patterns:
            for path in expand_paths(pattern, key="references"):
                if not path.is_file():
                    raise CorpusError(f"{path}: a reference must be a file, not a folder")
                if path not in found:
                    found.append(path)
        return found

    @staticmethod
    def _format_of(source: Path, references: list[Path]) -> Literal["text", "sgml"]:
        formats = {
            path: "sgml" if _bare(path).endswith(".sgm") else "text"
            for path in [source, *references]
        }
        if len(set(formats.values())) > 1:
            sgml = [str(path) for path, kind in formats.items() if kind == "sgml"]
            text = [str(path) for path, kind in formats.items() if kind == "text"]
            raise CorpusError(
                f"{text[0]} is plain text but {sgml[0]} is SGML: a test set's files must be "
                "all plain text or all .sgm"
            )
        return "sgml" if formats[source] == "sgml" else "text"

    @staticmethod
    def _name_references(paths: list[Path]) -> list[tuple[Path, str]]:
        """Names from ``.ref.A.en``; letters A, B, ... when the names do not tell them apart."""
        found: list[str | None] = []
        for path in paths:
            bare = _bare(path)
            text_match = _TEXT_REFERENCE_NAME.search(bare)
            sgml_match = _SGML_SIDE_NAME.search(bare)
            found.append(
                text_match.group(1) if text_match else sgml_match.group(2) if sgml_match else None
            )
        names = [name for name in found if name is not None]
        if len(names) != len(paths) or len(set(names)) != len(names):
            names = [_letter(index) for index in range(len(paths))]
        return list(zip(paths, names, strict=True))

    def _side(
        self,
        path: Path,
        name: str,
        wanted: tuple[str, str] | None,
        pair: tuple[str, str] | None,
    ) -> WmtSide:
        file = CorpusFile(path)
        is_source = name == "src"
        if wanted is not None:
            return WmtSide(file, wanted[0] if is_source else wanted[1], name)
        if self.format == "sgml":
            attribute, value = self._sgml_language_attribute(file)
            if value is not None:
                try:
                    return WmtSide(file, self._registry.resolve(value).code, name)
                except UnknownLanguageError:
                    pass  # srclang="any" (newstest sources): the file name tells the language
            match = _SGML_SIDE_NAME.search(_bare(path))
            if match is None:
                shown = f"{attribute}={value!r}" if value is not None else f"no {attribute}"
                raise CorpusError(
                    f"{file}: cannot tell the language ({shown}, and the name is not "
                    "NAME-src.xx.sgm / NAME-ref.xx.sgm); give `languages: {source: .., target: ..}`"
                )
            return WmtSide(file, self._resolve(match.group(3), file), name)
        if pair is not None:
            return WmtSide(file, self._resolve(pair[0] if is_source else pair[1], file), name)
        match = _TRAILING_CODE.search(_bare(path))
        if match is not None and match.group(1) in self._registry:
            return WmtSide(file, self._registry.resolve(match.group(1)).code, name)
        raise CorpusError(
            f"{file}: cannot tell the language from the name (expected NAME.xx-yy.src.xx); "
            "give `languages: {source: .., target: ..}`"
        )

    def _resolve(self, code: str, where: CorpusFile) -> str:
        try:
            return self._registry.resolve(code).code
        except UnknownLanguageError as err:
            raise CorpusError(f"{where}: language code {code!r}: {err}") from None

    @staticmethod
    def _corpus_from_name(name: str) -> str:
        match = _CORPUS_IN_NAME.match(name)
        return match.group(0) if match else name

    # -- plain text --------------------------------------------------------------------------------

    def _check_line_counts(self) -> None:
        expected = count_lines(self.source_side.file)
        for reference in self.references:
            found = count_lines(reference.file)
            if found != expected:
                raise CorpusError(
                    f"{reference.file} has {found} lines but {self.source_side.file} has "
                    f"{expected}: a reference must be line-aligned with its source"
                )

    def _text_rows(self) -> Iterator[tuple[str, str | None, str, list[str]]]:
        streams = [read_lines(side.file) for side in (self.source_side, *self.references)]
        try:
            for lines in zip(*streams, strict=True):
                line_no = lines[0][0]
                texts = [text for _, text in lines]  # read_lines drops a BOM
                yield str(line_no), None, texts[0], texts[1:]
        except ValueError as err:
            if "zip()" not in str(err):
                raise
            self._check_line_counts()  # the files changed while read: name the short one
            raise CorpusError(
                f"{self.source_side.file}: its references changed length while read"
            ) from None

    # -- SGML --------------------------------------------------------------------------------------

    @staticmethod
    def _sgml_language_attribute(file: CorpusFile) -> tuple[str, str | None]:
        """``srclang`` of a ``<srcset>``, ``trglang`` of a ``<refset>``, from the header line."""
        for line_no, line in read_lines(file):
            match = _SET_OPEN.search(line)
            if match is not None:
                attributes = _attributes(match.group(2))
                key = "srclang" if match.group(1).lower() == "srcset" else "trglang"
                return key, attributes.get(key)
            if _DOC_OPEN.search(line) or _SEG_OPEN.search(line):
                break
            if line_no > 50:
                break
        return "srclang/trglang", None

    @staticmethod
    def _read_sgml(file: CorpusFile) -> dict[tuple[str, str], _SgmlSegment]:
        segments: dict[tuple[str, str], _SgmlSegment] = {}
        docid: str | None = None
        for line_no, line in read_lines(file):
            opened = _DOC_OPEN.search(line)
            if opened is not None:
                docid = _attributes(opened.group(1)).get("docid")
                if not docid:
                    raise CorpusError(f"{file}:{line_no}: a <doc> without a docid attribute")
            found = _segments_in(line)
            if found is None or len(found) != len(_SEG_OPEN.findall(line)):
                raise CorpusError(
                    f"{file}:{line_no}: a <seg> not closed by </seg> on the same line"
                )
            for attributes, text in found:
                segid = _attributes(attributes).get("id")
                if not segid:
                    raise CorpusError(f"{file}:{line_no}: a <seg> without an id attribute")
                if docid is None:
                    raise CorpusError(f"{file}:{line_no}: <seg id={segid!r}> outside any <doc>")
                key = (docid, segid)
                if key in segments:
                    raise CorpusError(
                        f"{file}:{line_no}: segment docid={docid!r} id={segid!r} repeats line "
                        f"{segments[key].line_no}"
                    )
                segments[key] = _SgmlSegment(line_no, _unescape(text).strip())
            if _DOC_CLOSE.search(line):
                docid = None
        if not segments:
            raise CorpusError(f"{file}: no <seg id=..>...</seg> elements; is it WMT SGML?")
        return segments

    def _read_sgml_pairs(self) -> list[tuple[str, str, str, list[str]]]:
        source = self._read_sgml(self.source_side.file)
        texts: dict[tuple[str, str], list[str]] = {key: [] for key in source}
        for reference in self.references:
            segments = self._read_sgml(reference.file)
            unpaired = [key for key in segments if key not in source]
            if unpaired:
                docid, segid = unpaired[0]
                raise CorpusError(
                    f"{reference.file}:{segments[unpaired[0]].line_no}: segment docid={docid!r} "
                    f"id={segid!r} has no source segment in {self.source_side.file}"
                    + (f" (and {len(unpaired) - 1} more)" if len(unpaired) > 1 else "")
                )
            missing = [key for key in source if key not in segments]
            if missing:
                docid, segid = missing[0]
                raise CorpusError(
                    f"{self.source_side.file}:{source[missing[0]].line_no}: segment "
                    f"docid={docid!r} id={segid!r} has no reference in {reference.file}"
                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                )
            for key, segment in segments.items():
                texts[key].append(segment.text)
        return [
            (f"{docid}:{segid}", docid, segment.text, texts[(docid, segid)])
            for (docid, segid), segment in source.items()
        ]

    # -- reading -----------------------------------------------------------------------------------

    @property
    def languages(self) -> list[str]:
        return sorted({self.source_side.code, *(side.code for side in self.references)})

    def describe(self) -> dict[str, object]:
        return {
            "type": "wmt",
            "corpus": self.corpus,
            "format": self.format,
            "files": [str(side.file) for side in (self.source_side, *self.references)],
            "references": [side.name for side in self.references],
            "languages": self.languages,
            "skipped": dict(self.skipped),
        }

    def _iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        builder = BatchBuilder(self.corpus, self.languages, batch_rows)
        several = len(self.references) > 1
        source_code = self.source_side.code
        rows = self._read_sgml_pairs() if self.format == "sgml" else self._text_rows()
        for segment_id, doc_id, source_text, reference_texts in rows:
            for reference, reference_text in zip(self.references, reference_texts, strict=True):
                if not source_text.strip() or not reference_text.strip():
                    blank = source_code if not source_text.strip() else reference.code
                    self.skipped[f"blank {blank}"] += 1
                    continue
                batch = builder.add(
                    self.split,
                    f"{segment_id}#{reference.name}" if several else segment_id,
                    doc_id,
                    {source_code: source_text, reference.code: reference_text},
                )
                if batch is not None:
                    yield batch
        batch = builder.flush()
        if batch is not None:
            yield batch

    @classmethod
    def from_config(cls, config: WmtConfig, languages: list[str] | None) -> WmtSource:
        return cls(
            config.path,
            source=config.source,
            references=list(config.references) if config.references else None,
            languages=(
                (config.languages.source, config.languages.target) if config.languages else None
            ),
            references_used=config.references_used,
            corpus=config.corpus,
            split=config.split,
        )


def _bare(path: Path) -> str:
    """The file name without a compression suffix (``x.sgm.gz`` -> ``x.sgm``)."""
    return strip_compression(path.name)


def _segments_in(line: str) -> list[tuple[str, str]] | None:
    """``(attributes, text)`` of each ``<seg ...>text</seg>`` on a line, in one pass; None when a
    <seg> opens inside another (it was not closed). A stray ``</seg>`` is ignored."""
    found: list[tuple[str, str]] = []
    open_tag: re.Match[str] | None = None
    for tag in _SEG_TAG.finditer(line):
        if tag.group(1) is None:
            if open_tag is not None:
                return None
            open_tag = tag
        elif open_tag is not None:
            found.append((open_tag.group(2) or "", line[open_tag.end() : tag.start()]))
            open_tag = None
    return found


def _letter(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else str(index + 1)


def _attributes(text: str) -> dict[str, str]:
    """SGML attributes, quoted with ``"`` or ``'`` or bare; names lower-cased."""
    return {
        match.group(1).lower(): next(g for g in match.groups()[1:] if g is not None)
        for match in _ATTRIBUTE.finditer(text)
    }


def _unescape(text: str) -> str:
    """Only the five entities WMT writes; ``&amp;lt;`` stays ``&lt;`` (one pass)."""
    return _ENTITY.sub(lambda match: _ENTITIES[match.group(1)], text)
