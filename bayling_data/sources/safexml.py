"""Secure, streaming XML for corpus files (TMX, XCES): untrusted input from the internet.

``defusedxml`` refuses entity declarations (expansion bombs) and external references; parsing is
incremental and prunes finished elements, so memory stays flat on a 1 GB file.

Expat reads only UTF-8, UTF-16, ISO-8859-1 and ASCII itself, and refuses multi-byte legacy
encodings; legacy translation memories often declare ``encoding="GB2312"`` or ``"Big5"``. Those
files are transcoded to UTF-8 as they stream (their declaration rewritten to say so); an encoding
Python does not know is refused in one line.
"""

from __future__ import annotations

import codecs
import itertools
import re
from collections.abc import Collection, Iterable, Iterator
from typing import BinaryIO
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse as defused_iterparse

from bayling_data.errors import CorpusError
from bayling_data.sources.files import DECOMPRESSION_ERRORS, CorpusFile, open_binary

_CHUNK_BYTES = 1 << 16
# Where the XML declaration must be (the start of the file), and its encoding pseudo-attribute.
_DECLARATION = re.compile(
    rb"""\A(?:\xef\xbb\xbf)?<\?xml\s[^<>]*?\bencoding\s*=\s*(["'])([^"'<>]*)\1"""
)
# Codec names (as :func:`codecs.lookup` spells them) that expat decodes itself.
_EXPAT_NATIVE = frozenset({"utf-8", "utf-16", "utf-16-le", "utf-16-be", "ascii", "latin-1"})
# Legacy files labelled GB2312 or GBK routinely hold characters of their superset GB18030 (as
# browsers assume); it decodes every valid GB2312/GBK byte sequence to the same text.
_SUPERSET = {"gb2312": "gb18030", "gbk": "gb18030"}


class _ChunkReader:
    """A minimal binary ``read()`` over an iterator of byte chunks, as ``iterparse`` needs."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _transcoded(
    head: bytes, rest: Iterator[bytes], codec: str, declared: str, name: str
) -> Iterator[bytes]:
    """The file as UTF-8, decoded a chunk at a time; an undecodable byte names its line."""
    decoder = codecs.getincrementaldecoder(codec)()
    lines = 0
    first = True
    for chunk in itertools.chain([head], rest, [b""]):
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as err:
            # err.object may hold a few pending bytes of one character (never a newline).
            line = lines + err.object[: err.start].count(b"\n") + 1
            raise CorpusError(
                f"{name}:{line}: invalid {declared} (the encoding the XML declares): {err.reason}"
            ) from None
        if first:
            text = re.sub(
                r"""\A(\ufeff?<\?xml\s[^<>]*?\bencoding\s*=\s*)(["'])[^"'<>]*\2""",
                r"\1\2UTF-8\2",
                text,
                count=1,
            )
            first = False
        lines += text.count("\n")
        yield text.encode("utf-8")


def utf8_xml(stream: BinaryIO, name: str) -> BinaryIO:
    """``stream`` in an encoding expat reads: as it is when expat knows its declared encoding,
    else transcoded to UTF-8; an encoding unknown to Python is a :class:`CorpusError`."""
    head = stream.read(_CHUNK_BYTES)
    rest = iter(lambda: stream.read(_CHUNK_BYTES), b"")
    match = _DECLARATION.match(head)
    declared = match.group(2).decode("ascii", "replace").strip() if match else ""
    codec = None
    if declared:
        try:
            info = codecs.lookup(declared)
        except LookupError:
            info = None
        if info is None or not getattr(info, "_is_text_encoding", True):
            raise CorpusError(
                f"{name}:1: the XML declares encoding {declared!r}, which is not a known text "
                "encoding; re-save the file as UTF-8"
            )
        codec = info.name
    if codec is None or codec in _EXPAT_NATIVE:
        return _ChunkReader(itertools.chain([head], rest))  # type: ignore[return-value]
    codec = _SUPERSET.get(codec, codec)
    return _ChunkReader(_transcoded(head, rest, codec, declared, name))  # type: ignore[return-value]


def local_name(tag: object) -> str:
    """``{namespace}seg`` -> ``seg``, so namespaced and plain files read alike."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def iter_xml(
    file: CorpusFile,
    ends: Collection[str],
    starts: Collection[str] = (),
    root: str | None = None,
) -> Iterator[tuple[str, Element, Element | None]]:
    """:func:`iter_xml_stream` over a corpus file (plain, compressed or a zip member)."""
    with open_binary(file) as stream:
        yield from iter_xml_stream(stream, str(file), ends, starts, root)


def iter_xml_stream(
    stream: BinaryIO,
    name: str,
    ends: Collection[str],
    starts: Collection[str] = (),
    root: str | None = None,
) -> Iterator[tuple[str, Element, Element | None]]:
    """Yield ``(event, element, parent)`` for each element named in ``starts`` (when it opens,
    attributes only) or ``ends`` (when it closes, with its whole subtree).

    Everything not inside an open ``ends`` element is dropped from the tree once it closes, so
    memory holds only the current element and its ancestors. ``root``, when given, is the local
    name the document element must have. Entity declarations, malformed XML and corrupt
    compressed data are a :class:`CorpusError` naming the file (``name``) and line and column.
    """
    try:
        source = utf8_xml(stream, name)
    except DECOMPRESSION_ERRORS as err:
        raise CorpusError(f"{name}: the compressed data is truncated or corrupt ({err})") from None
    events = defused_iterparse(
        source,
        events=("start", "end"),
        forbid_dtd=False,  # XCES files start with a harmless <!DOCTYPE cesAlign ...>
        forbid_entities=True,
        forbid_external=True,
    )
    ancestors: list[Element] = []
    open_wanted = 0  # how many open ancestors are `ends` elements (kept whole until they close)
    local_names: dict[str, str] = {}  # a cache: this loop runs for every element of the file
    try:
        for event, element in events:
            tag = local_names.get(element.tag)
            if tag is None:
                tag = local_names[element.tag] = local_name(element.tag)
            if event == "start":
                if not ancestors and root is not None and tag != root:
                    raise CorpusError(f"{name}: expected a <{root}> document, found <{tag}>")
                parent = ancestors[-1] if ancestors else None
                ancestors.append(element)
                if tag in ends:
                    open_wanted += 1
                if tag in starts:
                    yield "start", element, parent
                continue
            ancestors.pop()
            parent = ancestors[-1] if ancestors else None
            if tag in ends:
                open_wanted -= 1
                yield "end", element, parent
            if open_wanted == 0 and parent is not None:
                del parent[:]  # this element and its finished siblings
    except ParseError as err:
        line, column = err.position
        reason = str(err).split(":")[0]
        raise CorpusError(
            f"{name}: malformed XML at line {line}, column {column} ({reason})"
        ) from None
    except DefusedXmlException as err:
        declared = getattr(err, "name", None)
        what = f"the entity {declared!r}" if declared else "an external reference"
        raise CorpusError(
            f"{name}: refused: the XML declares {what}; entity declarations (expansion bombs, "
            "external files) are not accepted in corpus files"
        ) from None
    except DECOMPRESSION_ERRORS as err:
        raise CorpusError(f"{name}: the compressed data is truncated or corrupt ({err})") from None


def element_text(element: Element, skip: Collection[str] = ()) -> str:
    """All text inside ``element`` in document order; elements named in ``skip`` give only their
    tails. Iterative, so a maliciously deep file cannot exhaust the stack."""
    parts = [element.text or ""]
    pending: list[Element | str] = list(reversed(element))
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            parts.append(item)
        elif local_name(item.tag) in skip:
            parts.append(item.tail or "")
        else:
            parts.append(item.text or "")
            pending.append(item.tail or "")
            pending.extend(reversed(item))
    return "".join(parts)
