"""Opening corpus files as published: plain, ``.gz``, ``.xz``, ``.bz2``, or a member of a ``.zip``.

Corpus files come from the internet and are untrusted. Archives are read member by member as
streams, never extracted to disk; a truncated compressed file or invalid UTF-8 is a
:class:`CorpusError` that names the file (and line), never a silently shortened corpus.

Line-based readers (Moses, Flores, WMT text and SGML, TSV) read a line at most
:data:`MAX_LINE_BYTES` long: a longer one (a file with no newlines, a binary file given by mistake)
is refused as it streams, after at most that many bytes are held, not after buffering gigabytes.
A UTF-8 byte order mark at the start of a file is dropped (Windows editors write one).
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from bayling_data.errors import CorpusError

try:  # ISA-L's gzip reader: 3.3x the gzip module's on the bible pair, the same bytes and errors
    from isal import igzip as gzip_reader
    from isal.igzip_lib import IsalError
except ImportError:  # a platform without its wheel: the standard library's
    gzip_reader = gzip  # type: ignore[assignment]
    IsalError = zlib.error  # type: ignore[assignment, misc]

COMPRESSED_SUFFIXES = (".gz", ".xz", ".bz2")
DECOMPRESSION_ERRORS = (
    EOFError,
    OSError,
    lzma.LZMAError,
    zlib.error,
    IsalError,
    zipfile.BadZipFile,
)
# The longest line a line-based reader accepts, in bytes without its line end. The longest real
# segments (whole paragraphs, documents on one line) are tens of KB; 1 MiB leaves a wide margin.
MAX_LINE_BYTES = 1 << 20
READ_BLOCK_BYTES = 1 << 20  # bytes read at a time by the block line reader
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class CorpusFile:
    """A file on disk, or a member of a zip archive (``archive.zip`` + ``member``)."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        """The file's own name, without the archive (``corpus.de-en.de``)."""
        return Path(self.member).name if self.member else self.path.name

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def exists(self) -> bool:
        if self.member is None:
            return self.path.is_file()
        try:
            with zipfile.ZipFile(self.path) as archive:
                return self.member in archive.namelist()
        except (OSError, zipfile.BadZipFile):
            return False


def decompressing(raw: BinaryIO, name: str) -> BinaryIO:
    if name.endswith(".gz"):
        return gzip_reader.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    if name.endswith(".bz2"):
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    return raw


@contextmanager
def open_binary(file: CorpusFile) -> Iterator[BinaryIO]:
    """A binary stream of the file's decompressed bytes."""
    try:
        if file.member is None:
            raw: BinaryIO = open(file.path, "rb")  # noqa: SIM115 - closed below
            archive = None
        else:
            archive = zipfile.ZipFile(file.path)
            raw = archive.open(file.member, "r")  # type: ignore[assignment]
    except FileNotFoundError:
        raise CorpusError(f"{file}: no such file") from None
    except KeyError:
        raise CorpusError(f"{file.path}: the archive has no member {file.member!r}") from None
    except (OSError, zipfile.BadZipFile) as err:
        raise CorpusError(f"{file}: cannot open ({err})") from None
    stream = decompressing(raw, file.name)
    try:
        yield stream
    finally:
        stream.close()
        raw.close()
        if archive is not None:
            archive.close()


def iter_raw_lines(file: CorpusFile, stream: BinaryIO) -> Iterator[bytes]:
    """The stream's lines as bytes, line ends removed (``\\n``, and one ``\\r`` before it), the
    first line's UTF-8 BOM dropped; a line over :data:`MAX_LINE_BYTES` is a :class:`CorpusError`
    naming it, raised after reading at most that much of it."""
    line_no = 0
    while raw := stream.readline(MAX_LINE_BYTES + 2):
        line_no += 1
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > MAX_LINE_BYTES:
            raise _too_long(file, line_no)
        if line_no == 1 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM) :]
        yield raw


def read_lines(file: CorpusFile) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` with the line end removed; errors name the file and line.

    Lines are split on ``\\n`` only (a stray ``\\r`` or U+2028 inside a line cannot shift parallel
    files out of line); one ``\\r`` before the newline is dropped, and a first-line BOM.
    """
    line_no = 0
    with open_binary(file) as stream:
        try:
            for raw in iter_raw_lines(file, stream):
                line_no += 1
                try:
                    yield line_no, raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise CorpusError(
                        f"{file}:{line_no}: invalid UTF-8 ({err.reason} at byte {err.start})"
                    ) from None
        except DECOMPRESSION_ERRORS as err:
            raise CorpusError(
                f"{file}: the compressed data is truncated or corrupt after line {line_no} ({err})"
            ) from None


def _too_long(file: CorpusFile, line_no: int) -> CorpusError:
    return CorpusError(
        f"{file}:{line_no}: a line longer than {MAX_LINE_BYTES:,} bytes; expected one "
        "segment a line (is it the right file, with newlines?)"
    )


def iter_line_arrays(file: CorpusFile, stream: BinaryIO) -> Iterator[pa.LargeBinaryArray]:
    """The stream's lines as :func:`iter_raw_lines` gives them, an Arrow array per block of
    :data:`READ_BLOCK_BYTES` read: Arrow splits a block on its newlines, with no Python object
    per line (about 3x a ``bytes.split`` a block and an array made from its list, on a 2M-line
    Moses pair). Memory stays within a block plus one line of at most :data:`MAX_LINE_BYTES`,
    which is refused as soon as that much of it is read."""
    carry = b""
    line_no = 0
    while block := stream.read(READ_BLOCK_BYTES):
        data = carry + block if carry else block
        cut = data.rfind(b"\n")
        region, carry = (data[:cut], data[cut + 1 :]) if cut >= 0 else (b"", data)
        complete = region.count(b"\n") + 1 if cut >= 0 else 0
        if len(carry) > MAX_LINE_BYTES + 1:  # + 1: a "\r" the newline would remove
            raise _too_long(file, line_no + complete + 1)
        if complete:
            yield _line_array(file, region, line_no)
            line_no += complete
    if carry:
        yield _line_array(file, carry, line_no)


def _line_array(file: CorpusFile, region: bytes, before: int) -> pa.LargeBinaryArray:
    """The lines of a region (whole lines, its last newline removed) with their ``\r`` dropped,
    the file's BOM removed, lengths checked."""
    if before == 0 and region.startswith(UTF8_BOM):
        region = region[len(UTF8_BOM) :]
    lines = pc.split_pattern(pa.array([region], pa.large_binary()), pattern="\n").flatten()
    if b"\r" in region:
        lines = pc.if_else(pc.ends_with(lines, "\r"), pc.binary_slice(lines, 0, -1), lines)
    lengths = pc.binary_length(lines)
    if pc.max(lengths).as_py() > MAX_LINE_BYTES:
        first = pc.index(pc.greater(lengths, MAX_LINE_BYTES), True).as_py()
        raise _too_long(file, before + first + 1)
    return lines


def read_line_chunks(file: CorpusFile, lines: int) -> Iterator[pa.StringArray]:
    """The file's lines as string arrays of up to ``lines`` each, line ends removed as in
    :func:`read_lines`; UTF-8 is checked a chunk at a time by Arrow, and an error names the line.
    """
    line_no = 0
    pending: list[pa.Array] = []
    pending_rows = 0
    with open_binary(file) as stream:
        try:
            for block in iter_line_arrays(file, stream):
                pending.append(block)
                pending_rows += len(block)
                while pending_rows >= lines:
                    joined = pa.concat_arrays(pending) if len(pending) > 1 else pending[0]
                    yield _decoded(file, joined.slice(0, lines), line_no)
                    line_no += lines
                    pending = [joined.slice(lines)]
                    pending_rows -= lines
            if pending_rows:
                joined = pa.concat_arrays(pending) if len(pending) > 1 else pending[0]
                yield _decoded(file, joined, line_no)
        except DECOMPRESSION_ERRORS as err:
            raise CorpusError(
                f"{file}: the compressed data is truncated or corrupt after line {line_no} ({err})"
            ) from None


def _decoded(file: CorpusFile, raw: pa.Array, before: int) -> pa.StringArray:
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:
        for offset, line in enumerate(raw.to_pylist(), start=before + 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise CorpusError(
                    f"{file}:{offset}: invalid UTF-8 ({err.reason} at byte {err.start})"
                ) from None
        raise


def count_lines(file: CorpusFile) -> int:
    """Lines in a file (a last line without a newline counts), reading it as a stream."""
    lines = 0
    last = b"\n"
    with open_binary(file) as stream:
        try:
            while chunk := stream.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        except DECOMPRESSION_ERRORS as err:
            raise CorpusError(
                f"{file}: the compressed data is truncated or corrupt ({err})"
            ) from None
    return lines + (last != b"\n")


def expand_paths(pattern: str | Path, key: str = "path") -> list[Path]:
    """A path or a glob pattern, expanded and sorted; nothing found is an error naming it."""
    text = os.path.expanduser(str(pattern))
    if glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True))
        if not found:
            raise CorpusError(f"{key}: no file matches {text}")
        return found
    path = Path(text)
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder")
    return [path]


def strip_compression(name: str) -> str:
    """``corpus.de-en.de.gz`` -> ``corpus.de-en.de``."""
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
