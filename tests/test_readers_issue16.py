"""Reader errors are one line naming the file (and line), never a traceback (issue 16).

Legacy XML encodings, overlong lines, invalid UTF-8 in side files, a quadratic SGML case and
UTF-8 byte order marks, each written small into ``tmp_path``.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from conftest import write_flores

from bayling_data.errors import BaylingError, CorpusError
from bayling_data.sources import FloresSource, MosesSource, TmxSource, TsvSource, WmtSource
from bayling_data.sources.files import MAX_LINE_BYTES, CorpusFile, iter_raw_lines
from bayling_data.sources.xces import XcesSource
from bayling_data.tasks.templates import load_template_file

BOM = "\ufeff"
ZH, EN = "机器翻译很有用。", "Machine translation is useful."
ZH_TRADITIONAL = "機器翻譯很有用。"


def one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def tmx_bytes(encoding: str, zh: str, en: str = EN) -> bytes:
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        '<tmx version="1.4"><header srclang="en" datatype="plaintext"/><body>\n'
        f'<tu><tuv xml:lang="zh-CN"><seg>{zh}</seg></tuv>'
        f'<tuv xml:lang="en"><seg>{en}</seg></tuv></tu>\n'
        "</body></tmx>\n"
    )
    return text.encode(encoding)


# -- 1. legacy XML encodings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "zh"),
    [
        ("GB2312", ZH),
        ("Big5", ZH_TRADITIONAL),
        ("GBK", ZH),
        ("GB18030", ZH),
        ("Shift_JIS", "機械翻訳は便利です。"),
    ],
)
def test_tmx_in_a_legacy_chinese_or_japanese_encoding_decodes(tmp_path, encoding, zh):
    path = tmp_path / "legacy.en-zh.tmx"
    path.write_bytes(tmx_bytes(encoding, zh))
    table = TmxSource(path).to_table()
    assert table["zho_Hans"].to_pylist() == [zh]
    assert table["eng_Latn"].to_pylist() == [EN]


def test_gb2312_label_reads_the_gbk_characters_legacy_files_hold(tmp_path):
    # 镕 is in GBK but not GB2312; files labelled GB2312 routinely hold such characters.
    path = tmp_path / "legacy.en-zh.tmx"
    path.write_bytes(tmx_bytes("GBK", "朱镕基", "Zhu Rongji").replace(b"GBK", b"GB2312", 1))
    assert TmxSource(path).to_table()["zho_Hans"].to_pylist() == ["朱镕基"]


def test_legacy_encoding_streams_a_large_file(tmp_path):
    path = tmp_path / "big.en-zh.tmx"
    units = "".join(
        f'<tu><tuv xml:lang="zh"><seg>{ZH}{i}</seg></tuv>'
        f'<tuv xml:lang="en"><seg>{i}</seg></tuv></tu>\n'
        for i in range(5000)
    )
    head = '<?xml version="1.0" encoding="GB2312"?>\n<tmx version="1.4"><header/><body>\n'
    path.write_bytes((head + units + "</body></tmx>\n").encode("gb2312"))
    table = TmxSource(path).to_table()
    assert table.num_rows == 5000
    assert table["zho_Hans"].to_pylist()[-1] == f"{ZH}4999"


def test_unknown_xml_encoding_is_one_line_naming_file_and_encoding(tmp_path):
    path = tmp_path / "odd.en-zh.tmx"
    path.write_bytes(tmx_bytes("UTF-8", ZH).replace(b"UTF-8", b"x-klingon", 1))
    with pytest.raises(CorpusError) as err:
        TmxSource(path).to_table()
    message = one_line(err)
    assert str(path) in message and "x-klingon" in message


def test_bytes_invalid_in_the_declared_encoding_name_the_line(tmp_path):
    path = tmp_path / "bad.en-zh.tmx"
    path.write_bytes(tmx_bytes("GB2312", ZH).replace(ZH.encode("gb2312"), b"\xff\xfe", 1))
    with pytest.raises(CorpusError) as err:
        TmxSource(path).to_table()
    assert re.search(rf"^{re.escape(str(path))}:3: invalid GB2312", one_line(err))


def test_xces_documents_in_big5_decode(tmp_path):
    def document(text: str) -> bytes:
        return (
            f'<?xml version="1.0" encoding="Big5"?>\n<text><p><s id="s1">{text}</s></p></text>\n'
        ).encode("big5")

    (tmp_path / "zh").mkdir()
    (tmp_path / "en").mkdir()
    (tmp_path / "zh" / "1.xml").write_bytes(document(ZH_TRADITIONAL))
    (tmp_path / "en" / "1.xml").write_bytes(document(EN))
    (tmp_path / "en-zh.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<cesAlign version="1.0">\n'
        '<linkGrp targType="s" fromDoc="en/1.xml" toDoc="zh/1.xml">\n'
        '<link xtargets="s1;s1" id="SL1"/>\n</linkGrp>\n</cesAlign>\n',
        "utf-8",
    )
    table = XcesSource(tmp_path / "en-zh.xml").to_table()
    assert table["zho_Hans"].to_pylist() == [ZH_TRADITIONAL]


# -- 2. overlong Moses lines -----------------------------------------------------------------------


def test_moses_line_over_the_limit_names_file_and_line(tmp_path):
    (tmp_path / "c.de-en.de").write_text("eins\nzwei\n" + "x" * (MAX_LINE_BYTES + 1) + "\n")
    (tmp_path / "c.de-en.en").write_text("one\ntwo\nthree\n")
    with pytest.raises(CorpusError) as err:
        MosesSource(tmp_path / "c.de-en").to_table()
    message = one_line(err)
    assert message.startswith(f"{tmp_path / 'c.de-en.de'}:3: a line longer than")


def test_a_line_at_the_limit_is_read():
    stream = io.BytesIO(b"a" * MAX_LINE_BYTES + b"\r\nb")
    assert [len(line) for line in iter_raw_lines(CorpusFile(Path("f")), stream)] == [
        MAX_LINE_BYTES,
        1,
    ]


def test_an_overlong_line_is_refused_before_it_is_read_whole():
    stream = io.BytesIO(b"ok\n" + b"y" * (MAX_LINE_BYTES * 8))
    lines = iter_raw_lines(CorpusFile(Path("huge.en")), stream)
    assert next(lines) == b"ok"
    with pytest.raises(CorpusError, match=r"^huge\.en:2: a line longer than"):
        next(lines)
    assert stream.tell() <= 3 + MAX_LINE_BYTES + 2


# -- 3. invalid UTF-8 in side files ----------------------------------------------------------------


def test_invalid_utf8_in_flores_metadata_names_file_and_line(small_flores):
    metadata = small_flores / "metadata_dev.tsv"
    rows = [b"URL\tdomain\ttopic", b"https://a\tx\ty", b"https://b\xff\tx\ty", b"c", b"d"]
    metadata.write_bytes(b"\n".join(rows) + b"\n")
    with pytest.raises(CorpusError) as err:
        FloresSource(small_flores, splits=["dev"]).to_table()
    assert one_line(err).startswith(f"{metadata}:3: invalid UTF-8")


def test_invalid_utf8_in_a_template_file_names_file_and_line(tmp_path):
    path = tmp_path / "custom.yaml"
    path.write_bytes(b"task: translation\ntemplates:\n  en:\n    - id: t1\n      user: \xc3(\n")
    with pytest.raises(BaylingError) as err:
        load_template_file(path)
    assert one_line(err).startswith(f"{path}:5: invalid UTF-8")


# -- 4. SGML is linear -----------------------------------------------------------------------------


def test_sgml_line_of_unclosed_segs_is_refused_quickly(tmp_path):
    # 80,000 unclosed <seg>s (960 KB on one line, under the line limit): the old parser, quadratic
    # in the line's length, took 59 s for 30,000 and would take minutes here; a linear one, ms.
    source = tmp_path / "newstest2014-deen-src.de.sgm"
    reference = tmp_path / "newstest2014-deen-ref.en.sgm"
    source.write_text(
        '<srcset setid="t" srclang="any">\n<doc docid="d">\n'
        + '<seg id="1">' * 80_000
        + "\n</doc>\n</srcset>\n"
    )
    reference.write_text(
        '<refset setid="t" trglang="en">\n<doc docid="d">\n<seg id="1">x</seg>\n</doc>\n</refset>\n'
    )
    with pytest.raises(CorpusError) as err:
        WmtSource(source=source, references=[reference]).to_table()
    assert one_line(err) == f"{source}:3: a <seg> not closed by </seg> on the same line"


# -- 5. UTF-8 byte order marks ---------------------------------------------------------------------


def test_moses_drops_a_bom(tmp_path):
    (tmp_path / "c.de-en.de").write_text(f"{BOM}eins\nzwei\n", "utf-8")
    (tmp_path / "c.de-en.en").write_text(f"{BOM}one\ntwo\n", "utf-8")
    table = MosesSource(tmp_path / "c.de-en").to_table()
    assert table["deu_Latn"].to_pylist() == ["eins", "zwei"]
    assert table["eng_Latn"].to_pylist() == ["one", "two"]


def test_flores_drops_a_bom(tmp_path):
    root = write_flores(tmp_path / "flores200_dataset", "dev", {"eng_Latn": ["a", "b"]})
    write_flores(root, "dev", {"fra_Latn": [f"{BOM}un", "deux"]})
    (root / "metadata_dev.tsv").write_text(f"{BOM}URL\tdomain\nu1\tx\nu2\tx\n", "utf-8")
    table = FloresSource(root).to_table()
    assert table["fra_Latn"].to_pylist() == ["un", "deux"]
    assert table["doc_id"].to_pylist() == ["u1", "u2"]


def test_wmt_text_drops_a_bom(tmp_path):
    (tmp_path / "generaltest2022.zh-en.src.zh").write_text(f"{BOM}{ZH}\n", "utf-8")
    (tmp_path / "generaltest2022.zh-en.ref.A.en").write_text(f"{BOM}{EN}\n", "utf-8")
    table = WmtSource(tmp_path / "generaltest2022.zh-en").to_table()
    assert table["zho_Hans"].to_pylist() == [ZH]
    assert table["eng_Latn"].to_pylist() == [EN]


def test_wmt_sgml_drops_a_bom(tmp_path):
    source = tmp_path / "newstest2014-deen-src.de.sgm"
    reference = tmp_path / "newstest2014-deen-ref.en.sgm"
    source.write_text(
        f'{BOM}<srcset setid="t" srclang="de">\n<doc docid="d">\n<seg id="1">eins</seg>\n'
        "</doc>\n</srcset>\n",
        "utf-8",
    )
    reference.write_text(
        f'{BOM}<refset setid="t" trglang="en">\n<doc docid="d">\n<seg id="1">one</seg>\n'
        "</doc>\n</refset>\n",
        "utf-8",
    )
    table = WmtSource(source=source, references=[reference]).to_table()
    assert table["deu_Latn"].to_pylist() == ["eins"]
    assert table["eng_Latn"].to_pylist() == ["one"]


def test_tsv_drops_a_bom(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text(f"{BOM}Hello\tBonjour\nBye\tSalut\n", "utf-8")
    table = TsvSource(path, columns={"en": 0, "fr": 1}).to_table()
    assert table["eng_Latn"].to_pylist() == ["Hello", "Bye"]
