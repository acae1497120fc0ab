"""OPUS XCES: a ``cesAlign`` sentence alignment plus one XML document per language and text.

Layout as published (an OPUS ``xml`` download)::

    de-en.xml.gz                  <linkGrp fromDoc="de/1988.xml.gz" toDoc="en/1988.xml.gz">
                                    <link xtargets="s4.1;s4.1 s4.2" id="SL7"/>
    de/1988.xml.gz  en/...        <s id="s4.1"><w>Die</w> <w>Regierung</w> ...</s>
    (or de.zip, en.zip holding Europarl/xml/de/1988.xml, ...)

A link joins the sentences on each side with a space (1:1, 1:n, n:1, n:m); a link with one side
empty has no translation and is skipped and counted. A document's language is the first folder of
its path in the alignment (``de/...``). Documents are read one pair at a time, and the alignment is
streamed, so memory does not grow with the corpus. XML is parsed as in :mod:`.tmx` (defusedxml).
"""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal
from xml.etree.ElementTree import Element

import pyarrow as pa
from pydantic import Field, field_validator

from bayling_data.config import StrictModel, resolve_distinct_codes
from bayling_data.errors import CorpusError, UnknownLanguageError
from bayling_data.languages import LanguageRegistry, registry
from bayling_data.sources.base import DEFAULT_BATCH_ROWS, BatchBuilder, Source
from bayling_data.sources.files import (
    COMPRESSED_SUFFIXES,
    CorpusFile,
    decompressing,
    expand_paths,
    open_binary,
    strip_compression,
)
from bayling_data.sources.moses import languages_in_name
from bayling_data.sources.safexml import element_text, iter_xml, iter_xml_stream, local_name


class XcesConfig(StrictModel):
    """An OPUS corpus in XCES layout: alignment file(s) plus per-language sentence documents."""

    type: Literal["xces"]
    path: str = Field(description="The cesAlign alignment file (de-en.xml, .xml.gz) or a glob.")
    documents: str | list[str] | None = Field(
        default=None,
        description="Folder(s) or .zip archive(s) holding the linked documents; "
        "default: the alignment file's folder.",
    )
    languages: list[str] | None = Field(
        default=None,
        min_length=2,
        description="Languages to keep (link groups between two of them); default: every "
        "language the alignment links, read from the document paths (de/...).",
    )
    corpus: str | None = Field(
        default=None, description="Corpus name; default: the alignment file's name (de-en)."
    )
    split: str = Field(default="train", description="Split name recorded in provenance.")

    @field_validator("languages")
    @classmethod
    def _codes(cls, value: list[str] | None) -> list[str] | None:
        return resolve_distinct_codes(value)


@dataclass(frozen=True)
class LinkGroup:
    """One ``<linkGrp>``: the two documents it links and their languages."""

    from_doc: str
    to_doc: str
    from_code: str
    to_code: str


def sentence_text(sentence: Element) -> str:
    """A ``<s>``'s text: its ``<w>`` tokens joined by spaces, else its whitespace-collapsed text."""
    words = [
        word.text.strip()
        for word in sentence.iter()
        if (word.tag == "w" or word.tag.endswith("}w")) and word.text and word.text.strip()
    ]
    if words:
        return " ".join(words)
    return " ".join(element_text(sentence).split())


class DocumentStore:
    """Finds and opens the documents an alignment links (``de/1988.xml.gz``) in folders or zips.

    OPUS zips hold the documents under a corpus prefix and uncompressed
    (``Europarl/xml/de/1988.xml`` for ``de/1988.xml.gz``), so a zip member matches when its path
    ends with the linked path, with or without the compression suffix. Zips stay open while a
    corpus is read instead of being reopened (and their directory re-read) for every document.
    """

    def __init__(self, roots: list[Path]):
        for root in roots:
            if not (root.is_dir() or (root.is_file() and zipfile.is_zipfile(root))):
                raise CorpusError(
                    f"{root}: documents: expected a folder or a .zip archive of XCES documents"
                )
        self.roots = roots
        self._members: dict[Path, dict[str, str]] = {}  # zip -> linked path -> member
        self._open: dict[Path, zipfile.ZipFile] = {}

    def find(self, ref: str) -> CorpusFile | None:
        """The document ``ref`` names, or None when no root holds it."""
        parts = PurePosixPath(ref).parts
        if not parts or parts[0] == "/" or ".." in parts:
            # The alignment is untrusted too: it must not reach files outside the documents.
            raise CorpusError(f"{ref!r}: a linked document must be a relative path below the root")
        wanted = strip_compression(ref)
        for root in self.roots:
            if root.is_dir():
                for name in dict.fromkeys(
                    (ref, wanted, *(wanted + s for s in COMPRESSED_SUFFIXES))
                ):
                    if (root / name).is_file():
                        return CorpusFile(root / name)
            else:
                member = self._index(root).get(wanted)
                if member is not None:
                    return CorpusFile(root, member)
        return None

    def _index(self, archive: Path) -> dict[str, str]:
        if archive not in self._members:
            index: dict[str, str] = {}
            try:
                with zipfile.ZipFile(archive) as handle:
                    names = [n for n in handle.namelist() if not n.endswith("/")]
            except (OSError, zipfile.BadZipFile) as err:
                raise CorpusError(f"{archive}: not a readable zip archive ({err})") from None
            # Every path suffix of every member; a whole member name wins over a suffix.
            for depth in range(max((n.count("/") for n in names), default=0) + 1):
                for name in names:
                    parts = PurePosixPath(strip_compression(name)).parts
                    if depth < len(parts):
                        index.setdefault("/".join(parts[depth:]), name)
            self._members[archive] = index
        return self._members[archive]

    @contextmanager
    def open(self, file: CorpusFile) -> Iterator[BinaryIO]:
        """The document's decompressed bytes; zip archives stay open until :meth:`close`."""
        if file.member is None:
            with open_binary(file) as stream:
                yield stream
            return
        if file.path not in self._open:
            try:
                self._open[file.path] = zipfile.ZipFile(file.path)
            except (OSError, zipfile.BadZipFile) as err:
                raise CorpusError(f"{file.path}: not a readable zip archive ({err})") from None
        raw = self._open[file.path].open(file.member, "r")
        stream = decompressing(raw, file.member)  # type: ignore[arg-type]
        try:
            yield stream
        finally:
            stream.close()
            raw.close()

    def close(self) -> None:
        for archive in self._open.values():
            archive.close()
        self._open.clear()


@dataclass
class _Alignment:
    """One alignment file, where its documents are, and what its segment ids start with."""

    file: CorpusFile
    store: DocumentStore
    groups: list[LinkGroup]
    id_prefix: str
    # fromDocs linked in more than one group of the file: their segment ids name the toDoc too.
    shared_from_docs: frozenset[str]


class XcesSource(Source):
    """Sentence pairs of an OPUS XCES corpus, one document pair in memory at a time.

    >>> XcesSource("de-en.xml.gz").to_table()  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        *,
        documents: str | Path | list[str | Path] | None = None,
        languages: list[str] | tuple[str, ...] | None = None,
        corpus: str | None = None,
        split: str = "train",
        lang_registry: LanguageRegistry | None = None,
    ):
        super().__init__()
        self._registry = lang_registry or registry()
        self._codes: dict[str, str | None] = {}  # folder name -> Flores-200 code (None: not one)
        self.split = split
        self._wanted = None if languages is None else self._requested(languages, path)
        found = expand_paths(path)
        for alignment in found:
            if alignment.is_dir():
                raise CorpusError(
                    f"{alignment}: a folder; give the alignment file (de-en.xml.gz) or a glob"
                )
        names = [alignment.name for alignment in found]
        shared_store = None
        if documents is not None:
            roots = documents if isinstance(documents, list) else [documents]
            shared_store = DocumentStore([Path(root).expanduser() for root in roots])
        stores: dict[Path, DocumentStore] = {}
        self.alignments: list[_Alignment] = []
        several = len(found) > 1
        for alignment in found:
            if shared_store is None and alignment.parent not in stores:
                stores[alignment.parent] = DocumentStore([alignment.parent])
            store = shared_store or stores[alignment.parent]
            file = CorpusFile(alignment)
            groups = self._scan(file)
            self._check_documents(file, groups, store)
            from_docs = Counter(group.from_doc for group in groups)
            # Two files of one glob may share a name (a/de-en.xml, b/de-en.xml): then the path.
            label = alignment.name if names.count(alignment.name) == 1 else str(alignment)
            self.alignments.append(
                _Alignment(
                    file,
                    store,
                    groups,
                    f"{label}:" if several else "",
                    frozenset(doc for doc, count in from_docs.items() if count > 1),
                )
            )
        self._languages = self._source_languages()
        self.corpus = corpus or alignment_stem(found[0].name)

    # -- discovery ---------------------------------------------------------------------------------

    def _requested(self, languages: list[str] | tuple[str, ...], path: str | Path) -> set[str]:
        codes = []
        for code in languages:
            try:
                codes.append(self._registry.resolve(code).code)
            except UnknownLanguageError as err:
                raise CorpusError(f"{path}: languages: {err}") from None
        if len(set(codes)) < 2 or len(set(codes)) != len(codes):
            raise CorpusError(f"{path}: languages: give at least two different languages")
        return set(codes)

    def _scan(self, file: CorpusFile) -> list[LinkGroup]:
        """The link groups of an alignment file, in order (one streaming pass, links dropped)."""
        groups: dict[tuple[str, str], LinkGroup] = {}
        for _, element, _ in iter_xml(file, ends=(), starts={"linkGrp"}, root="cesAlign"):
            group = self._group(file, element)
            groups.setdefault((group.from_doc, group.to_doc), group)
        return list(groups.values())

    def _group(self, file: CorpusFile, element: Element) -> LinkGroup:
        from_doc, to_doc = element.get("fromDoc"), element.get("toDoc")
        if not from_doc or not to_doc:
            raise CorpusError(f"{file}: a <linkGrp> lacks its fromDoc or toDoc attribute")
        group = LinkGroup(
            from_doc, to_doc, self._doc_language(file, from_doc), self._doc_language(file, to_doc)
        )
        if group.from_code == group.to_code:
            raise CorpusError(
                f"{file}: linkGrp {from_doc} -> {to_doc} links two {group.from_code} documents; "
                "a row holds one text per language"
            )
        return group

    def _doc_language(self, file: CorpusFile, ref: str) -> str:
        """The language of a linked document: its first folder (``de/1988.xml.gz``), or failing
        that its own folder (``Europarl/xml/de/ep-00-01-17.xml.gz``)."""
        folders = PurePosixPath(ref.replace("\\", "/")).parts[:-1]
        if not folders:
            raise CorpusError(
                f"{file}: cannot tell the language of document {ref!r} (no language folder)"
            )
        code = self._code(folders[0]) or self._code(folders[-1])
        if code is None:
            try:
                self._registry.resolve(folders[0])
                reason = "not a language"
            except UnknownLanguageError as err:
                reason = str(err)
            raise CorpusError(f"{file}: document {ref!r}: language code {folders[0]!r}: {reason}")
        return code

    def _code(self, written: str) -> str | None:
        """A folder name as a Flores-200 code, or None; cached, as a miss is slow to compute."""
        if written not in self._codes:
            try:
                self._codes[written] = self._registry.resolve(written).code
            except UnknownLanguageError:
                self._codes[written] = None
        return self._codes[written]

    def _selected(self, group: LinkGroup) -> bool:
        return self._wanted is None or {group.from_code, group.to_code} <= self._wanted

    def _check_documents(
        self, file: CorpusFile, groups: list[LinkGroup], store: DocumentStore
    ) -> None:
        for group in groups:
            if not self._selected(group):
                continue
            for ref in (group.from_doc, group.to_doc):
                if store.find(ref) is None:
                    raise CorpusError(self._missing_document(file, ref, store))

    @staticmethod
    def _missing_document(file: CorpusFile, ref: str, store: DocumentStore) -> str:
        where = " or ".join(
            str(root / ref) if root.is_dir() else f"{root}:{ref}" for root in store.roots
        )
        return f"{where}: no such document (linked from {file}; also tried .gz, .xz, .bz2)"

    def _source_languages(self) -> list[str]:
        groups = [group for alignment in self.alignments for group in alignment.groups]
        linked = {code for group in groups for code in (group.from_code, group.to_code)}
        if self._wanted is not None:
            absent = sorted(self._wanted - linked)
            if groups and absent:
                raise CorpusError(
                    f"{self.alignments[0].file}: languages: no link group has {', '.join(absent)} "
                    f"(linked: {', '.join(sorted(linked))})"
                )
            return sorted(self._wanted)
        if linked:
            return sorted(linked)
        # Alignments with no link group at all: the xx-yy pair in the name, if any.
        for alignment in self.alignments:
            pair = languages_in_name(strip_compression(alignment.file.name))
            if pair is not None:
                codes = [self._code(code) for code in pair]
                if None not in codes:
                    return sorted(code for code in codes if code is not None)
        return []

    # -- reading -----------------------------------------------------------------------------------

    @property
    def languages(self) -> list[str]:
        return list(self._languages)

    def describe(self) -> dict[str, object]:
        roots = dict.fromkeys(str(root) for a in self.alignments for root in a.store.roots)
        return {
            "type": "xces",
            "corpus": self.corpus,
            "files": [str(alignment.file) for alignment in self.alignments],
            "documents": list(roots),
            "languages": self.languages,
            "skipped": dict(self.skipped),
        }

    def _iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        builder = BatchBuilder(self.corpus, self.languages, batch_rows)
        with ExitStack() as cleanup:
            for alignment in self.alignments:
                cleanup.callback(alignment.store.close)
                for row in self._rows(alignment):
                    batch = builder.add(self.split, *row)
                    if batch is not None:
                        yield batch
        batch = builder.flush()
        if batch is not None:
            yield batch

    def _rows(self, alignment: _Alignment) -> Iterator[tuple[str, str, dict[str, str | None]]]:
        """``(segment_id, doc_id, texts)`` for each usable link of one alignment file."""
        file = alignment.file
        group: LinkGroup | None = None
        # The current group's documents: linked path -> (file, sentence id -> text).
        sentences: dict[str, tuple[CorpusFile, dict[str, str]]] = {}
        link_index = 0
        for event, element, parent in iter_xml(
            file, ends={"link"}, starts={"linkGrp"}, root="cesAlign"
        ):
            if event == "start":
                group = self._group(file, element)
                # Keep a document the new group links again (sv->de then sv->en); drop the rest.
                sentences = {
                    ref: sentences[ref]
                    for ref in (group.from_doc, group.to_doc)
                    if ref in sentences
                }
                continue
            link_index += 1
            link_name = element.get("id") or str(link_index)
            if group is None or parent is None or local_name(parent.tag) != "linkGrp":
                raise CorpusError(f"{file}: link {link_name} is outside a <linkGrp>")
            if not self._selected(group):
                self.skipped[f"link {group.from_code}-{group.to_code} (not in languages)"] += 1
                continue
            sides = (element.get("xtargets") or "").split(";")
            if len(sides) != 2:
                raise CorpusError(
                    f"{file}: link {link_name}: xtargets {element.get('xtargets')!r} "
                    "is not 'ids;ids'"
                )
            from_ids, to_ids = sides[0].split(), sides[1].split()
            if not from_ids or not to_ids:
                self.skipped["empty link"] += 1
                continue
            texts: dict[str, str | None] = {}
            for ref, code, ids in (
                (group.from_doc, group.from_code, from_ids),
                (group.to_doc, group.to_code, to_ids),
            ):
                if ref not in sentences:
                    sentences[ref] = self._load_sentences(alignment, ref)
                document, by_id = sentences[ref]
                try:
                    texts[code] = " ".join(by_id[sentence_id] for sentence_id in ids)
                except KeyError as err:
                    raise CorpusError(
                        f"{document}: no sentence with id {err.args[0]!r} "
                        f"(linked by {file}, link {link_name})"
                    ) from None
            blank = [code for code, text in texts.items() if not (text or "").strip()]
            if blank:
                self.skipped[f"blank {', '.join(blank)}"] += 1
                continue
            doc_key = group.from_doc
            if group.from_doc in alignment.shared_from_docs:
                doc_key = f"{group.from_doc}|{group.to_doc}"
            yield f"{alignment.id_prefix}{doc_key}:{link_name}", group.from_doc, texts

    def _load_sentences(self, alignment: _Alignment, ref: str) -> tuple[CorpusFile, dict[str, str]]:
        """Sentence id -> text of one linked document (the first of a repeated id counts)."""
        document = alignment.store.find(ref)
        if document is None:
            raise CorpusError(self._missing_document(alignment.file, ref, alignment.store))
        sentences: dict[str, str] = {}
        with alignment.store.open(document) as stream:
            for _, sentence, _ in iter_xml_stream(stream, str(document), ends={"s"}):
                sentence_id = sentence.get("id")
                if sentence_id is not None and sentence_id not in sentences:
                    sentences[sentence_id] = sentence_text(sentence)
        return document, sentences

    @classmethod
    def from_config(cls, config: XcesConfig, languages: list[str] | None) -> XcesSource:
        """The recipe's languages do not apply: the alignment's pairs (or ``languages``) do."""
        return cls(
            config.path,
            documents=config.documents,
            languages=config.languages,
            corpus=config.corpus,
            split=config.split,
        )


def alignment_stem(name: str) -> str:
    """``de-en.xml.gz`` -> ``de-en``: the default corpus name."""
    stem = strip_compression(name)
    return stem[: -len(".xml")] if stem.lower().endswith(".xml") else stem
