"""Fuzzing every reader (issue 16): mutated corpus files raise :class:`BaylingError` or nothing.

Each reader gets small seeds cut from the real files in ``../shared/corpora`` (read at test time,
never copied into the repository), or inline seeds of the same formats where that folder is
absent (a user's clone). Hypothesis mutates the seed's bytes (flips, insertions of bytes that
matter to the format, deletions, truncation, splices) and the reader reads the result to the end:
any exception but a one-line ``BaylingError`` is a bug. Examples are bounded and derandomized, so
the suite is the same on every run and stays fast.
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from conftest import SAMPLE_RECIPE, SHARED_CORPORA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayling_data.errors import BaylingError
from bayling_data.recipe import load_recipe
from bayling_data.sources import (
    FloresSource,
    MosesSource,
    TmxSource,
    TsvSource,
    WmtSource,
    XcesSource,
)

# More for a deeper local run: BAYLING_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_readers.py
EXAMPLES = int(os.environ.get("BAYLING_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Bytes that mean something to one of the formats: line and field ends, markup, entities, a BOM,
# invalid UTF-8, an XML declaration of another encoding.
TOKENS = [
    b"\n",
    b"\r\n",
    b"\r",
    b"\t",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xe4\xb8",
    b"\xef\xbb\xbf",
    b"\xe2\x80\xa8",
    b"<",
    b">",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b'"',
    b"</",
    b"/>",
    b"<seg>",
    b"</seg>",
    b"<seg id=",
    b"<doc docid=",
    b"</doc>",
    b"<tu>",
    b"<tuv xml:lang=",
    b"<s id=",
    b'xtargets="',
    b";",
    b"<![CDATA[",
    b"]]>",
    b"<!ENTITY a 'b'>",
    b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>",
    b'<?xml version="1.0" encoding="GB2312"?>',
    b'<?xml version="1.0" encoding="UTF-16"?>',
    b'<?xml version="1.0" encoding="x-unknown"?>',
    b": ",
    b"- ",
    b"{",
    b"[",
    b"*a",
    b"&a ",
    b"!!python/object:os.system",
    b"${X}",
    b"\\",
]


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` after one to four random edits."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["flip", "insert", "token", "delete", "truncate", "repeat"]))
        at = draw(st.integers(0, len(data)))
        if edit == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif edit == "truncate":
            del data[at:]
        elif edit == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(2, 8))
    return bytes(data)


def read_all(make: Callable[[], object]) -> None:
    """Construct a reader and read it to the end; a :class:`BaylingError` must be one line."""
    try:
        source = make()
        for _ in source.iter_batches(7):  # type: ignore[attr-defined]
            pass
    except BaylingError as err:
        assert "\n" not in str(err), str(err)


def shared(relative: str) -> Path | None:
    path = SHARED_CORPORA / relative
    return path if path.is_file() else None


def head_lines(path: Path | None, n: int, fallback: str) -> bytes:
    """The first ``n`` lines of a shared file (decompressed), or ``fallback``."""
    if path is None:
        return fallback.encode("utf-8")
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:  # type: ignore[operator]
        return b"".join(handle.readline() for _ in range(n))


@pytest.fixture(scope="module")
def workdir() -> Path:
    with tempfile.TemporaryDirectory(prefix="bayling-fuzz-") as folder:
        yield Path(folder)


# --- line-based readers ---------------------------------------------------------------------------

EN = "".join(f"Sentence number {i} of the corpus.\n" for i in range(12))
FR = "".join(f"Phrase numéro {i} du corpus.\n" for i in range(12))
MOSES_EN = head_lines(shared("opus/moses/opustools-perl-RF/RF-tokenized.en"), 12, EN)
MOSES_FR = head_lines(shared("opus/moses/opustools-perl-RF/RF-tokenized.fr"), 12, FR)


@FUZZ
@given(side=mutated(MOSES_EN), gz=st.booleans())
def test_moses(workdir: Path, side: bytes, gz: bool) -> None:
    folder = workdir / "moses"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    suffix = ".gz" if gz else ""
    write = gzip.compress if gz else bytes
    (folder / f"rf.en-fr.en{suffix}").write_bytes(write(side))
    (folder / f"rf.en-fr.fr{suffix}").write_bytes(write(MOSES_FR))
    read_all(lambda: MosesSource(folder / "rf.en-fr"))


@FUZZ
@given(data=mutated(gzip.compress(MOSES_EN, mtime=0)))
def test_moses_compressed_bytes(workdir: Path, data: bytes) -> None:
    folder = workdir / "moses-gz"
    folder.mkdir(exist_ok=True)
    (folder / "rf.en-fr.en.gz").write_bytes(data)
    (folder / "rf.en-fr.fr.gz").write_bytes(gzip.compress(MOSES_FR, mtime=0))
    read_all(lambda: MosesSource(folder / "rf.en-fr"))


ZH = "".join(f"这是第{i}个句子。\n" for i in range(12))
WMT_ZH = head_lines(shared("wmt22/generaltest2022.zh-en.src.zh"), 12, ZH)
WMT_EN = head_lines(shared("wmt22/generaltest2022.zh-en.ref.A.en"), 12, EN)


def read_wmt(folder: Path, names: tuple[str, str], source: bytes, reference: bytes) -> None:
    """A WMT test set of one source and one reference file, written and read."""
    folder.mkdir(exist_ok=True)
    (folder / names[0]).write_bytes(source)
    (folder / names[1]).write_bytes(reference)
    languages = [name.rsplit(".", 2)[-2 if name.endswith(".sgm") else -1] for name in names]
    read_all(
        lambda: WmtSource(
            source=folder / names[0], references=[folder / names[1]], languages=languages
        )
    )


@FUZZ
@given(source=mutated(WMT_ZH), reference=mutated(WMT_EN))
def test_wmt_text(workdir: Path, source: bytes, reference: bytes) -> None:
    read_wmt(workdir / "wmt", ("test.zh-en.src.zh", "test.zh-en.ref.en"), source, reference)


def _sgml(path: Path | None, kind: str, n: int) -> bytes:
    """The real file's first document cut to ``n`` segments, closed, or an inline one."""
    if path is None:
        lang = 'srclang="de"' if kind == "srcset" else 'trglang="en" srclang="de"'
        segs = "".join(f'<seg id="{i}">Segment {i}.</seg>\n' for i in range(1, n + 1))
        return f'<{kind} setid="t" {lang}>\n<doc docid="d1">\n{segs}</doc>\n</{kind}>\n'.encode()
    lines = head_lines(path, n + 2, "").splitlines(keepends=True)
    return b"".join(lines) + f"</doc>\n</{kind}>\n".encode()


SGML_SRC = _sgml(shared("wmt-sgm/newstest2014-deen-src.de.sgm"), "srcset", 10)
SGML_REF = _sgml(shared("wmt-sgm/newstest2014-deen-ref.en.sgm"), "refset", 10)


@FUZZ
@given(source=mutated(SGML_SRC), reference=mutated(SGML_REF))
def test_wmt_sgml(workdir: Path, source: bytes, reference: bytes) -> None:
    read_wmt(workdir / "sgml", ("newstest-src.de.sgm", "newstest-ref.en.sgm"), source, reference)


TSV = b"".join(
    a.rstrip(b"\r\n") + b"\t" + b.rstrip(b"\r\n") + b"\n"
    for a, b in zip(MOSES_EN.splitlines(), MOSES_FR.splitlines(), strict=False)
)


@FUZZ
@given(data=mutated(TSV), header=st.booleans())
def test_tsv(workdir: Path, data: bytes, header: bool) -> None:
    path = workdir / "pairs.tsv"
    path.write_bytes(data)
    read_all(lambda: TsvSource(path, columns={"en": 0, "fr": 1}, header=header))


TATOEBA = b"".join(
    b"eng\tfra\t" + a.rstrip(b"\r\n") + b"\t" + b.rstrip(b"\r\n") + b"\n"
    for a, b in zip(MOSES_EN.splitlines(), MOSES_FR.splitlines(), strict=False)
)


@FUZZ
@given(data=mutated(TATOEBA))
def test_tsv_tatoeba_challenge(workdir: Path, data: bytes) -> None:
    path = workdir / "tatoeba.tsv"
    path.write_bytes(data)
    read_all(
        lambda: TsvSource(
            path, layout="tatoeba-challenge", languages=["en", "fr"], unknown_codes="skip"
        )
    )


FLORES_EN = head_lines(shared("flores200/dev/eng_Latn.dev"), 10, EN[: EN.index("9 of") + 20])
FLORES_ZH = head_lines(shared("flores200/dev/zho_Hans.dev"), 10, ZH[: ZH.index("第9") + 6])
METADATA = head_lines(
    shared("flores200/metadata_dev.tsv"),
    11,
    "URL\tdomain\ttopic\thas_image\thas_hyperlink\n"
    + "".join(f"https://example.org/{i // 3}\twikinews\thealth\tno\tno\n" for i in range(10)),
)


@FUZZ
@given(side=mutated(FLORES_EN), metadata=st.none() | mutated(METADATA))
def test_flores(workdir: Path, side: bytes, metadata: bytes | None) -> None:
    root = workdir / "flores200"
    (root / "dev").mkdir(parents=True, exist_ok=True)
    (root / "dev" / "eng_Latn.dev").write_bytes(side)
    (root / "dev" / "zho_Hans.dev").write_bytes(FLORES_ZH)
    meta = root / "metadata_dev.tsv"
    if metadata is None:
        meta.unlink(missing_ok=True)
    else:
        meta.write_bytes(metadata)
    read_all(lambda: FloresSource(root))


# --- XML readers ----------------------------------------------------------------------------------


def _tmx_seed() -> bytes:
    """The real TMX's header and first three units, closed; or an inline one."""
    path = shared("opus/tmx/all.en-fr.tmx")
    if path is not None:
        text = path.read_bytes()[:20_000]
        ends = [m.end() for m in re.finditer(rb"</tu>", text)]
        if len(ends) >= 3:
            return text[: ends[2]] + b"\n</body>\n</tmx>\n"
    units = "".join(
        f'<tu tuid="{i}"><tuv xml:lang="en"><seg>Unit {i}.</seg></tuv>'
        f'<tuv xml:lang="fr"><seg>Unité {i}.</seg></tuv></tu>\n'
        for i in range(3)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header srclang="en"/>'
        f"<body>\n{units}</body>\n</tmx>\n"
    ).encode()


TMX = _tmx_seed()


@FUZZ
@given(data=mutated(TMX))
def test_tmx(workdir: Path, data: bytes) -> None:
    path = workdir / "memory.en-fr.tmx"
    path.write_bytes(data)
    read_all(lambda: TmxSource(path))


def _xces_document(code: str, n: int) -> bytes:
    """``n`` sentences of the real ``{code}/1996.xml.gz`` as a small document, or inline ones."""
    path = shared(f"opus/xces/opustools-perl-t-xml/{code}/1996.xml.gz")
    sentences: list[bytes] = []
    if path is not None:
        text = gzip.decompress(path.read_bytes())
        sentences = re.findall(rb"<s id=\"[^\"]+\">.*?</s>", text, flags=re.S)[:n]
    if len(sentences) < n:
        sentences = [f'<s id="s{i}.1">Sentence {i} in {code}.</s>'.encode() for i in range(n)]
    body = b"\n".join(b"<p>" + s + b"</p>" for s in sentences)
    return b'<?xml version="1.0" encoding="utf-8"?>\n<text>\n' + body + b"\n</text>\n"


def _ids(document: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb'<s id="([^"]+)">', document)]


SV_DOC = _xces_document("sv", 4)
EN_DOC = _xces_document("en", 4)
ALIGNMENT = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<!DOCTYPE cesAlign PUBLIC "-//CES//DTD XML cesAlign//EN" "">\n<cesAlign version="1.0">\n'
    '<linkGrp targType="s" fromDoc="sv/1.xml.gz" toDoc="en/1.xml.gz">\n'
    + "".join(
        f'<link xtargets="{a};{b}" />\n' for a, b in zip(_ids(SV_DOC), _ids(EN_DOC), strict=False)
    )
    + "</linkGrp>\n</cesAlign>\n"
).encode()


def _xces_folder(workdir: Path, alignment: bytes, sv_doc: bytes) -> Path:
    root = workdir / "xces"
    for code, doc in (("sv", sv_doc), ("en", EN_DOC)):
        (root / code).mkdir(parents=True, exist_ok=True)
        (root / code / "1.xml.gz").write_bytes(gzip.compress(doc, mtime=0))
    (root / "sv-en.xml").write_bytes(alignment)
    return root / "sv-en.xml"


@FUZZ
@given(alignment=mutated(ALIGNMENT))
def test_xces_alignment(workdir: Path, alignment: bytes) -> None:
    path = _xces_folder(workdir, alignment, SV_DOC)
    read_all(lambda: XcesSource(path))


@FUZZ
@given(document=mutated(SV_DOC))
def test_xces_document(workdir: Path, document: bytes) -> None:
    path = _xces_folder(workdir, ALIGNMENT, document)
    read_all(lambda: XcesSource(path))


# --- well-formed XML with hostile content: the readers' own logic, past the parser ---------------

LANG_TAGS = ["en", "fr", "EN-us", "fr_FR", "zh-Hant", "zh-CN", "x-klingon", "", "und", "sv", "C"]
# Text as XML 1.0 allows it (no control characters but tab and newlines), escaped.
TEXT = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from(["\t", "\n", " "]),
    max_size=12,
).map(escape)
IDS = st.sampled_from(["s1", "s2", "s3.1", "s3.1 s3.2", "", " ", "s9", "x;y", "s1 s1"])


@st.composite
def tmx_units(draw: st.DrawFn) -> bytes:
    """A TMX of a few units whose variants have any language, several or no segs, nested
    markup, duplicate and missing attributes."""
    units = []
    for _ in range(draw(st.integers(0, 5))):
        variants = []
        for _ in range(draw(st.integers(0, 3))):
            lang = draw(st.sampled_from(LANG_TAGS))
            attr = draw(st.sampled_from(["xml:lang", "lang", "srclang"]))
            seg = draw(
                st.sampled_from(
                    [
                        "<seg>{}</seg>",
                        "<seg><bpt i='1'>{}</bpt>x</seg>",
                        "<seg/>",
                        "",
                        "<seg>{}</seg><seg>{}</seg>",
                        "<note>{}</note><seg>{}<ph/>{}</seg>",
                    ]
                )
            )
            text = draw(TEXT)
            variants.append(f"<tuv {attr}={quoteattr(lang)}>{seg.format(text, text, text)}</tuv>")
        tuid = draw(st.none() | st.sampled_from(["1", "1", "", "a b", "&amp;"]))
        units.append(
            ("<tu>" if tuid is None else f'<tu tuid="{tuid}">') + "".join(variants) + "</tu>"
        )
    header = draw(st.sampled_from(['<header srclang="en"/>', "<header/>", ""]))
    body = "\n".join(units)
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<tmx version="1.4">{header}<body>\n'
        f"{body}\n</body></tmx>\n"
    ).encode()


@FUZZ
@given(data=tmx_units(), languages=st.none() | st.sampled_from([["en", "fr"], ["en", "ckb"]]))
def test_tmx_structure(workdir: Path, data: bytes, languages: list[str] | None) -> None:
    path = workdir / "structure.en-fr.tmx"
    path.write_bytes(data)
    read_all(lambda: TmxSource(path, languages=languages))


@st.composite
def xces_links(draw: st.DrawFn) -> bytes:
    """An alignment of any xtargets (empty sides, unknown ids, no ``;``), link groups naming
    missing or odd documents, and documents with duplicate or missing sentence ids."""
    groups = []
    for _ in range(draw(st.integers(0, 2))):
        from_doc = draw(st.sampled_from(["sv/1.xml.gz", "sv/1.xml", "sv/none.xml.gz", "", "../x"]))
        links = "".join(
            f'<link xtargets="{draw(IDS)};{draw(IDS)}"/>'
            if draw(st.booleans())
            else f'<link xtargets="{draw(IDS)}"/>'
            for _ in range(draw(st.integers(0, 4)))
        )
        groups.append(f'<linkGrp fromDoc="{from_doc}" toDoc="en/1.xml.gz">{links}</linkGrp>')
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<cesAlign version="1.0">\n'
        + "\n".join(groups)
        + "\n</cesAlign>\n"
    ).encode()


@st.composite
def xces_document(draw: st.DrawFn) -> bytes:
    sentences = []
    for _ in range(draw(st.integers(0, 4))):
        sid = draw(st.sampled_from(["s1", "s2", "s3.1", "s3.2", "s1", ""]))
        inner = draw(st.sampled_from(["{}", "<w>{}</w> <w>{}</w>", "<s id='n'>{}</s>", ""]))
        text = draw(TEXT)
        sentences.append(f'<s id="{sid}">{inner.format(text, text)}</s>')
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<text>' + "".join(sentences) + "</text>"
    ).encode()


@FUZZ
@given(alignment=xces_links(), document=xces_document())
def test_xces_structure(workdir: Path, alignment: bytes, document: bytes) -> None:
    path = _xces_folder(workdir, alignment, document)
    read_all(lambda: XcesSource(path))


@st.composite
def sgml_documents(draw: st.DrawFn, kind: str) -> bytes:
    """WMT SGML with any doc and seg ids (duplicates, none), segments split over lines, and
    stray markup."""
    docs = []
    for _ in range(draw(st.integers(0, 3))):
        docid = draw(st.sampled_from(["d1", "d2", "d1", "", "a&amp;b"]))
        segs = []
        for _ in range(draw(st.integers(0, 4))):
            seg_id = draw(st.sampled_from(["1", "2", "1", "", "x"]))
            text = draw(TEXT)
            form = draw(
                st.sampled_from(['<seg id="{}">{}</seg>', "<seg id={}>{}", "<seg>{1}</seg>"])
            )
            segs.append(form.format(seg_id, text))
        joiner = draw(st.sampled_from(["\n", "", " "]))
        docs.append(f'<doc docid="{docid}">\n' + joiner.join(segs) + "\n</doc>")
    lang = 'srclang="de"' if kind == "srcset" else 'trglang="en"'
    return (f'<{kind} setid="t" {lang}>\n' + "\n".join(docs) + f"\n</{kind}>\n").encode()


@FUZZ
@given(source=sgml_documents("srcset"), reference=sgml_documents("refset"))
def test_wmt_sgml_structure(workdir: Path, source: bytes, reference: bytes) -> None:
    read_wmt(workdir / "sgml-structure", ("t-src.de.sgm", "t-ref.en.sgm"), source, reference)


# --- the recipe loader ----------------------------------------------------------------------------

RECIPE = SAMPLE_RECIPE.read_bytes()


@FUZZ
@given(text=mutated(RECIPE))
def test_recipe(workdir: Path, text: bytes) -> None:
    path = workdir / "recipe.yaml"
    path.write_bytes(text)
    try:
        load_recipe(path)
    except BaylingError as err:
        assert "\n" not in str(err), str(err)


OVERRIDE_KEYS = st.sampled_from(
    [
        "sources.0.path",
        "sources.0",
        "sources.5.path",
        "sources.0.type",
        "seed",
        "tasks.0.weight",
        "tasks.0.directions",
        "tasks.0.prompt_languages.zho_Hans",
        "filters.1",
        "filters.0.unicode",
        "output.rows_per_shard",
        "execution.workers",
        "pivot_languages",
        "target_languages",
        "mixture",
        "a\nb.c",
        "",
        ".",
        "sources.-1.path",
    ]
)
OVERRIDE_VALUES = st.sampled_from(
    [
        "",
        "null",
        "[]",
        "{}",
        "-1",
        "1e400",
        "nan",
        "{type: moses}",
        "&a [*a]",
        "!!binary AAAA",
        "!!python/object:os.system",
        "sample:nope",
        "${X:-}",
        "${",
        "x\ny",
        "'",
        "[zho_Hans]",
        "[qqq_Zzzz]",
    ]
) | st.text(max_size=6)


@FUZZ
@given(sets=st.lists(st.tuples(OVERRIDE_KEYS, OVERRIDE_VALUES), max_size=3))
def test_recipe_overrides(sets: list[tuple[str, str]]) -> None:
    """``--set`` overrides of the sample recipe, then the plan (sources opened, stages built)."""
    from bayling_data.pipeline import plan_build

    try:
        plan_build(load_recipe(SAMPLE_RECIPE, [f"{key}={value}" for key, value in sets]))
    except BaylingError as err:
        assert "\n" not in str(err), str(err)


@pytest.mark.parametrize("override", ["=x\ny", "a\nb", ".=\n", "a\nb.c=1"])
def test_an_override_with_a_line_break_is_named_on_one_line(override: str) -> None:
    """Found by the fuzzer: the override was quoted as given, line break and all."""
    with pytest.raises(BaylingError) as err:
        load_recipe(SAMPLE_RECIPE, [override])
    assert "\n" not in str(err.value)
