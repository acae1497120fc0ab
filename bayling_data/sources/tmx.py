"""TMX translation memories (TMX 1.4, and 1.1's ``lang`` attribute): ``<tu>`` units of ``<tuv>``.

Accepted as published::

    all.en-fr.tmx   en-fr.tmx.gz (.xz, .bz2)   en-fr.tmx.zip (members *.tmx)   data/*.tmx   (a glob)

``<tuv xml:lang>`` codes come in any case and region form (``en``, ``EN-US``, ``pt-BR``,
``es-419``) and are resolved through the registry. Inline codes inside ``<seg>`` (``<bpt>``,
``<ept>``, ``<ph>``, ``<it>``, ``<ut>``) hold the source document's own markup, so their content
is dropped and only the text around them kept; ``<hi>`` is text and stays.

Corpus files are untrusted: XML is parsed with :mod:`defusedxml`, so a file that declares entities
(entity expansion bombs, external entities) is refused, and streamed with ``iterparse``, so memory
stays flat for a file of any size. :func:`iter_xml` is shared with the XCES loader.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from xml.etree.ElementTree import Element

import pyarrow as pa
from pydantic import Field, field_validator

from bayling_data.config import StrictModel, resolve_distinct_codes
from bayling_data.errors import CorpusError, UnknownLanguageError
from bayling_data.languages import LanguageRegistry, registry
from bayling_data.sources.base import DEFAULT_BATCH_ROWS, BatchBuilder, Source
from bayling_data.sources.files import CorpusFile, expand_paths, strip_compression
from bayling_data.sources.moses import languages_in_name
from bayling_data.sources.safexml import element_text, iter_xml, local_name

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Elements holding the source document's native codes (RTF, HTML tags): not sentence text.
_NATIVE_CODE_ELEMENTS = frozenset({"bpt", "ept", "ph", "it", "ut", "sub"})


# -- TMX -------------------------------------------------------------------------------------------


class TmxConfig(StrictModel):
    """A TMX translation memory (``all.en-fr.tmx``, ``.tmx.gz``, a ``.zip`` of ``.tmx``)."""

    type: Literal["tmx"]
    path: str = Field(
        description="A .tmx file (.gz, .xz, .bz2), a .zip holding .tmx members, or a glob."
    )
    languages: list[str] | None = Field(
        default=None,
        min_length=2,
        description="Languages to keep (any code form); default: the xx-yy pair in the file name.",
    )
    corpus: str | None = Field(
        default=None, description="Corpus name; default: the first file's name without .tmx."
    )
    split: str = Field(default="train", description="Split name recorded in provenance.")

    @field_validator("languages")
    @classmethod
    def _codes(cls, value: list[str] | None) -> list[str] | None:
        return resolve_distinct_codes(value)


def seg_text(seg: Element) -> str:
    """The text of a ``<seg>``: ``<hi>`` kept, native-code elements reduced to their tails."""
    return element_text(seg, skip=_NATIVE_CODE_ELEMENTS)


class TmxSource(Source):
    """The ``<tu>`` units of TMX files that hold every requested language, streaming.

    >>> TmxSource("all.en-fr.tmx").to_table()  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        *,
        languages: list[str] | tuple[str, ...] | None = None,
        corpus: str | None = None,
        split: str = "train",
        lang_registry: LanguageRegistry | None = None,
    ):
        super().__init__()
        self._registry = lang_registry or registry()
        self._codes: dict[str, str] = {}  # code as written in a file -> Flores-200 code
        self.split = split
        requested = None if languages is None else self._requested(languages, path)
        # Each file with the languages to keep from it.
        self.files: list[tuple[CorpusFile, tuple[str, ...]]] = []
        for found in expand_paths(path):
            for file in self._tmx_files(found):
                self.files.append((file, requested or self._languages_from_name(file)))
        if not self.files:
            raise CorpusError(f"{path}: no TMX file found")
        self.corpus = corpus or tmx_stem(self.files[0][0].name)

    def _requested(
        self, languages: list[str] | tuple[str, ...], path: str | Path
    ) -> tuple[str, ...]:
        codes = []
        for code in languages:
            try:
                codes.append(self._registry.resolve(code).code)
            except UnknownLanguageError as err:
                raise CorpusError(f"{path}: languages: {err}") from None
        if len(set(codes)) < 2 or len(set(codes)) != len(codes):
            raise CorpusError(f"{path}: languages: give at least two different languages")
        return tuple(codes)

    @staticmethod
    def _tmx_files(found: Path) -> list[CorpusFile]:
        if found.is_dir():
            raise CorpusError(
                f"{found}: a folder; give a .tmx file or a glob such as {found}/*.tmx"
            )
        if found.suffix.lower() != ".zip":
            return [CorpusFile(found)]
        try:
            with zipfile.ZipFile(found) as archive:
                members = [
                    name
                    for name in archive.namelist()
                    if strip_compression(name).lower().endswith(".tmx")
                ]
        except (OSError, zipfile.BadZipFile) as err:
            raise CorpusError(f"{found}: not a readable zip archive ({err})") from None
        if not members:
            raise CorpusError(f"{found}: the archive holds no .tmx member")
        return [CorpusFile(found, member) for member in sorted(members)]

    def _languages_from_name(self, file: CorpusFile) -> tuple[str, ...]:
        pair = languages_in_name(file.name) or languages_in_name(file.path.name)
        if pair is None:
            raise CorpusError(
                f"{file}: cannot tell the languages from the name (no xx-yy in it); "
                "give `languages: [xx, yy]`"
            )
        return tuple(self._resolve(code, file) for code in pair)

    def _resolve(self, code: str, file: CorpusFile) -> str:
        if code not in self._codes:
            try:
                self._codes[code] = self._registry.resolve(code).code
            except UnknownLanguageError as err:
                raise CorpusError(f"{file}: language code {code!r}: {err}") from None
        return self._codes[code]

    # -- reading -----------------------------------------------------------------------------------

    @property
    def languages(self) -> list[str]:
        return sorted({code for _, codes in self.files for code in codes})

    def describe(self) -> dict[str, object]:
        return {
            "type": "tmx",
            "corpus": self.corpus,
            "files": [str(file) for file, _ in self.files],
            "languages": self.languages,
            "skipped": dict(self.skipped),
        }

    def _iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        builder = BatchBuilder(self.corpus, self.languages, batch_rows)
        several = len(self.files) > 1
        for file, wanted in self.files:
            for index, (_, unit, _) in enumerate(iter_xml(file, ends={"tu"}, root="tmx"), 1):
                unit_id = unit.get("tuid") or str(index)
                texts = self._unit_texts(unit, unit_id, file, wanted)
                if texts is None:
                    continue
                segment_id = f"{file.name}:{unit_id}" if several else unit_id
                batch = builder.add(self.split, segment_id, None, texts)
                if batch is not None:
                    yield batch
        batch = builder.flush()
        if batch is not None:
            yield batch

    def _unit_texts(
        self, unit: Element, unit_id: str, file: CorpusFile, wanted: tuple[str, ...]
    ) -> dict[str, str | None] | None:
        """The unit's text in each wanted language, or None (counted) when one is absent."""
        texts: dict[str, str | None] = {}
        for variant in unit:
            if local_name(variant.tag) != "tuv":
                continue
            written = variant.get(XML_LANG) or variant.get("lang")
            if not written:
                raise CorpusError(f"{file}: unit {unit_id}: a <tuv> has no xml:lang attribute")
            code = self._resolve(written, file)
            if code in wanted and code not in texts:  # several variants: the first counts
                seg = next((c for c in variant if local_name(c.tag) == "seg"), None)
                texts[code] = None if seg is None else seg_text(seg)
        missing = [code for code in wanted if code not in texts]
        if missing:
            self.skipped[f"unit missing {', '.join(missing)}"] += 1
            return None
        blank = [code for code in wanted if not (texts[code] or "").strip()]
        if blank:
            self.skipped[f"blank {', '.join(blank)}"] += 1
            return None
        return texts

    @classmethod
    def from_config(cls, config: TmxConfig, languages: list[str] | None) -> TmxSource:
        """The recipe's languages do not apply: a TMX keeps its own pair (or ``languages``)."""
        return cls(
            config.path, languages=config.languages, corpus=config.corpus, split=config.split
        )


def tmx_stem(name: str) -> str:
    """``all.en-fr.tmx.gz`` -> ``all.en-fr``: the default corpus name."""
    stem = strip_compression(name)
    return stem[: -len(".tmx")] if stem.lower().endswith(".tmx") else stem
