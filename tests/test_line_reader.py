"""The block line reader (Moses and other bulk line files) gives exactly what the line-at-a-time
reader gives, across block boundaries: CRLF split between blocks, BOMs, over-long lines, no
final newline, gzip."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

import bayling_data.sources.files as files
from bayling_data.errors import CorpusError


def _line_at_a_time(file: files.CorpusFile, chunk: int) -> list[list[str]]:
    with files.open_binary(file) as stream:
        lines = [raw.decode("utf-8") for raw in files.iter_raw_lines(file, stream)]
    return [lines[i : i + chunk] for i in range(0, len(lines), chunk)]


def _outcome(read, file: files.CorpusFile, chunk: int) -> object:
    try:
        return read(file, chunk)
    except CorpusError as err:
        return ("error", str(err))


def test_block_reader_matches_line_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "READ_BLOCK_BYTES", 37)  # many blocks a file: every boundary
    monkeypatch.setattr(files, "MAX_LINE_BYTES", 50)
    rng = random.Random(0)
    alphabet = ["a", "b", "\r", "\n", "\r\n", "é", "\ufeff", " ", "中"]
    errors = 0
    for case in range(600):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        if rng.random() < 0.3:
            text = "\ufeff" + text
        if rng.random() < 0.1:
            text += "x" * rng.randint(40, 120)
        data = text.encode("utf-8")
        path = tmp_path / ("case.txt.gz" if case % 2 else "case.txt")
        path.write_bytes(gzip.compress(data) if case % 2 else data)
        file = files.CorpusFile(path)
        chunk = rng.choice([1, 2, 3, 7, 100])

        def by_blocks(file: files.CorpusFile, chunk: int) -> list[list[str]]:
            return [part.to_pylist() for part in files.read_line_chunks(file, chunk)]

        expected = _outcome(_line_at_a_time, file, chunk)
        assert _outcome(by_blocks, file, chunk) == expected, (case, text, chunk)
        errors += isinstance(expected, tuple)
    assert errors > 10  # the over-long lines were met, and named the same line
