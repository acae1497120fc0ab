"""``validate`` sees what ``build`` sees (issue 16): every input a build rejects, validate rejects
in the same one line, having read each source to the end; it counts each source's real segments,
and a source or language that yields nothing is a one-line warning, exit status 0.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import SAMPLE_RECIPE, SHARED_CORPORA

from bayling_data.cli import main
from bayling_data.sources.files import MAX_LINE_BYTES

TINY_FILTERS: list[dict[str, object]] = [{"type": "length", "unit": "chars", "min": 1}]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """The CLI in this process (a subprocess would pay Python's start-up on every case)."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def write_recipe(tmp_path: Path, source: dict[str, object], **more: object) -> Path:
    """The sample recipe reading ``source`` with one cheap filter, output under ``tmp_path``."""
    data = yaml.safe_load(SAMPLE_RECIPE.read_text("utf-8"))
    data.update(sources=[source], filters=TINY_FILTERS, **more)
    data["output"]["dir"] = str(tmp_path / "out")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return path


def lines(n: int, text: str = "A sentence of the corpus number {}.") -> str:
    return "".join(text.format(i) + "\n" for i in range(n))


def moses(folder: Path, de: bytes, en: bytes, suffix: str = "") -> dict[str, object]:
    (folder / f"talk.de-en.de{suffix}").write_bytes(de)
    (folder / f"talk.de-en.en{suffix}").write_bytes(en)
    return {"type": "moses", "path": str(folder / "talk.de-en")}


BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
)


def tmx(body: str, encoding: str = "utf-8", prolog: str | None = None) -> bytes:
    head = prolog if prolog is not None else f'<?xml version="1.0" encoding="{encoding}"?>\n'
    return (
        f'{head}<tmx version="1.4"><header srclang="en" datatype="plaintext"/><body>\n{body}'
        "</body></tmx>\n"
    ).encode()


def tu(en: str, de: str) -> str:
    return (
        f'<tu><tuv xml:lang="en"><seg>{en}</seg></tuv><tuv xml:lang="de"><seg>{de}</seg></tuv>'
        "</tu>\n"
    )


def tmx_source(folder: Path, data: bytes) -> dict[str, object]:
    (folder / "memory.de-en.tmx").write_bytes(data)
    return {"type": "tmx", "path": str(folder / "memory.de-en.tmx")}


def xces(folder: Path, de_doc: str, links: str) -> dict[str, object]:
    text = '<?xml version="1.0" encoding="utf-8"?>\n<text>\n{}</text>\n'
    en_doc = text.format("".join(f'<s id="s{i}">Sentence {i}.</s>\n' for i in range(1, 4)))
    for code, doc in (("de", de_doc), ("en", en_doc)):
        (folder / code).mkdir()
        (folder / code / "1.xml.gz").write_bytes(gzip.compress(doc.encode("utf-8")))
    (folder / "de-en.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<cesAlign version="1.0">\n'
        '<linkGrp targType="s" fromDoc="de/1.xml.gz" toDoc="en/1.xml.gz">\n'
        f"{links}</linkGrp>\n</cesAlign>\n",
        "utf-8",
    )
    return {"type": "xces", "path": str(folder / "de-en.xml")}


def de_doc(n: int = 3) -> str:
    body = "".join(f'<s id="s{i}">Satz {i}.</s>\n' for i in range(1, n + 1))
    return f'<?xml version="1.0" encoding="utf-8"?>\n<text>\n{body}</text>\n'


LINKS = "".join(f'<link xtargets="s{i};s{i}"/>\n' for i in range(1, 4))
GOOD = lines(40).encode()


def _moses_counts(tmp: Path) -> tuple[dict[str, object], str]:
    return moses(tmp, GOOD, lines(39).encode()), "talk.de-en.de has 40 lines"


def _corrupt_gzip(tmp: Path) -> tuple[dict[str, object], str]:
    whole = gzip.compress(lines(20_000).encode())
    return moses(tmp, whole[: len(whole) // 2], gzip.compress(lines(20_000).encode()), ".gz"), (
        "talk.de-en.de.gz: the compressed data is truncated or corrupt"
    )


def _invalid_utf8(tmp: Path) -> tuple[dict[str, object], str]:
    return moses(tmp, GOOD[:-20] + b"\xff\xfe bad\n", GOOD), "talk.de-en.de:40: invalid UTF-8"


def _overlong_line(tmp: Path) -> tuple[dict[str, object], str]:
    de = GOOD + b"x" * (MAX_LINE_BYTES + 1) + b"\n"
    return moses(tmp, de, GOOD + b"y\n"), f"talk.de-en.de:41: a line longer than {MAX_LINE_BYTES:,}"


def _tmx_bomb(tmp: Path) -> tuple[dict[str, object], str]:
    body = tu("Hello", "Hallo") * 3 + tu("&lol3;", "x")
    return tmx_source(tmp, tmx(body, prolog=BOMB)), "memory.de-en.tmx"


def _tmx_bad_encoding(tmp: Path) -> tuple[dict[str, object], str]:
    return tmx_source(tmp, tmx(tu("Hello", "Hallo"), encoding="x-klingon")), "x-klingon"


def _tmx_undecodable(tmp: Path) -> tuple[dict[str, object], str]:
    data = tmx(tu("Hello", "Hallo") * 50, encoding="GB2312").replace(
        b"Hallo</seg></tuv></tu>\n</body>", b"\x80\xff</seg></tuv></tu>\n</body>"
    )
    return tmx_source(tmp, data), "memory.de-en.tmx"


def _xces_bomb(tmp: Path) -> tuple[dict[str, object], str]:
    doc = BOMB + '<text>\n<s id="s1">&lol3;</s>\n<s id="s2">a</s>\n<s id="s3">b</s>\n</text>\n'
    return xces(tmp, doc, LINKS), "1.xml.gz"


def _xces_missing_id(tmp: Path) -> tuple[dict[str, object], str]:
    return xces(tmp, de_doc(2), LINKS), "s3"


def _tsv_fields(tmp: Path) -> tuple[dict[str, object], str]:
    text = "".join(f"Sentence {i}.\tSatz {i}.\n" for i in range(30)) + "only one field\n"
    (tmp / "pairs.tsv").write_text(text, "utf-8")
    source = {"type": "tsv", "path": str(tmp / "pairs.tsv"), "columns": {"en": 0, "de": 1}}
    return source, "pairs.tsv:31"


REJECTED: dict[str, Callable[[Path], tuple[dict[str, object], str]]] = {
    "moses sides of different line counts": _moses_counts,
    "corrupt gzip": _corrupt_gzip,
    "invalid UTF-8": _invalid_utf8,
    "over-long line": _overlong_line,
    "XML bomb in a TMX": _tmx_bomb,
    "unknown XML encoding": _tmx_bad_encoding,
    "bytes invalid in the declared encoding": _tmx_undecodable,
    "XML bomb in an XCES document": _xces_bomb,
    "missing XCES sentence id": _xces_missing_id,
    "TSV field error after line 1": _tsv_fields,
}


def _one_line(result: Result, named: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert named in errors[0], errors[0]
    return errors[0].split("error: ", 1)[1]


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_validate_rejects_in_one_line_what_build_rejects(
    tmp_path: Path, case: str, run_cli: Callable[..., Result]
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    source, named = REJECTED[case](corpus)
    recipe = write_recipe(tmp_path, source)
    built = run_cli("build", str(recipe), "--quiet", "--executor", "inprocess")
    validated = run_cli("validate", str(recipe))
    build_error = _one_line(built, named)
    validate_error = _one_line(validated, named)
    assert validate_error.removeprefix("sources.0: ") == build_error.removeprefix("sources.0: ")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize(
    ("make", "segments"),
    [
        (lambda tmp: moses(tmp, GOOD, GOOD), 40),
        (lambda tmp: tmx_source(tmp, tmx(tu("Hello", "Hallo") * 7 + tu("", "leer"))), 7),
        (lambda tmp: xces(tmp, de_doc(), LINKS), 3),
    ],
    ids=["moses", "tmx", "xces"],
)
def test_validate_counts_the_segments_each_source_yields(
    tmp_path: Path,
    make: Callable[[Path], dict[str, object]],
    segments: int,
    run_cli: Callable[..., Result],
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = run_cli("validate", str(write_recipe(tmp_path, make(corpus))))
    assert result.returncode == 0, result.stderr
    assert "sources.0 (" in result.stdout
    assert f": {segments:,} segments" in result.stdout
    assert f"ok: 1 source(s), {segments:,} segments" in result.stdout


# --- silent outcomes: a source or a language that yields nothing ----------------------------------


def _warnings(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "warning:" in line]


def test_a_one_sided_tmx_warns_in_one_line_and_exits_0(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    """TICO-19's ``all.en_ckb.tmx`` read as [en, ckb]: no unit holds ckb. The shared en-fr TMX
    asked for [en, ckb] is the same case (3,071 units, none in ckb)."""
    path = SHARED_CORPORA / "opus/tmx/all.en-fr.tmx"
    if not path.is_file():
        path = tmp_path / "all.en_ckb.tmx"
        body = "".join(
            f'<tu><tuv xml:lang="en"><seg>Sentence {i}.</seg></tuv>'
            f'<tuv xml:lang="fr"><seg>Phrase {i}.</seg></tuv></tu>\n'
            for i in range(3071)
        )
        path.write_bytes(tmx(body))
    source = {"type": "tmx", "path": str(path), "languages": ["en", "ckb"]}
    recipe = write_recipe(tmp_path, source)
    built = run_cli("build", str(recipe), "--quiet", "--executor", "inprocess")
    assert built.returncode == 0, built.stderr
    warnings = _warnings(built)
    assert any(
        "sources.0" in line
        and "yields 0 segments" in line
        and "3,071 skipped (unit missing ckb_Arab)" in line
        for line in warnings
    ), built.stderr
    assert any(
        "ckb_Arab yields 0 rows: sources.0 (" in line and "yielded 0 segments with it" in line
        for line in warnings
    ), built.stderr
    validated = run_cli("validate", str(recipe))
    assert validated.returncode == 0
    assert any("3,071 skipped (unit missing ckb_Arab)" in line for line in _warnings(validated))


@pytest.mark.parametrize("kind", ["moses", "flores"])
def test_empty_files_warn(tmp_path: Path, kind: str, run_cli: Callable[..., Result]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if kind == "moses":
        source = moses(corpus, b"", b"")
    else:
        (corpus / "dev").mkdir()
        for code in ("eng_Latn", "zho_Hans", "fra_Latn"):
            (corpus / "dev" / f"{code}.dev").write_bytes(b"")
        source = {"type": "flores", "path": str(corpus)}
    built = run_cli(
        "build", str(write_recipe(tmp_path, source)), "--quiet", "--executor", "inprocess"
    )
    assert built.returncode == 0, built.stderr
    warnings = _warnings(built)
    assert any("sources.0" in line and "yields 0 segments" in line for line in warnings), (
        built.stderr
    )
    assert all("\n" not in line for line in warnings)


def test_a_language_every_filter_dropped_warns(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    source = moses(corpus, GOOD, b"".join(b"ok\n" for _ in range(40)))
    filters = [{"type": "length", "unit": "chars", "min": 5}]
    recipe = write_recipe(tmp_path, source)
    data = yaml.safe_load(recipe.read_text("utf-8"))
    data["filters"] = filters
    recipe.write_text(yaml.safe_dump(data), "utf-8")
    built = run_cli("build", str(recipe), "--executor", "inprocess")
    assert built.returncode == 0, built.stderr
    line = next(line for line in _warnings(built) if "eng_Latn yields 0 rows" in line)
    assert line.endswith("eng_Latn yields 0 rows: filters dropped all 40 of its sides (length 40)")
