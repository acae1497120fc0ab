"""Secure, streaming XML for corpus files (TMX, XCES): untrusted input from the internet.

``defusedxml`` refuses entity declarations (expansion bombs) and external references; parsing is
incremental and prunes finished elements, so memory stays flat on a 1 GB file.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import BinaryIO
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse as defused_iterparse

from bayling_data.errors import CorpusError
from bayling_data.sources.files import DECOMPRESSION_ERRORS, CorpusFile, open_binary


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
    events = defused_iterparse(
        stream,
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
