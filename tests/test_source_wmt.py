from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bayling_data.errors import CorpusError
from bayling_data.sources.wmt import WmtConfig, WmtSource

ZH = ["这条河很长。", "我们今天吃了米饭。", "雨下了一整夜。"]
EN_A = ["The river is long.", "We ate rice today.", "It rained all night."]
EN_B = ["This river is long.", "Today we had rice.", "Rain fell all night."]


def write_lines(path: Path, lines: list[str]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
    return path


def write_text_set(
    folder: Path, suffix: str = "", refs: dict[str, list[str]] | None = None
) -> Path:
    prefix = folder / "generaltest2022.zh-en"
    write_lines(folder / f"{prefix.name}.src.zh{suffix}", ZH)
    for name, lines in (refs or {"A": EN_A}).items():
        write_lines(folder / f"{prefix.name}.ref.{name}.en{suffix}", lines)
    return prefix


def sgml(kind: str, attrs: str, docs: dict[str, list[tuple[str, str]]]) -> str:
    lines = [f"<{kind} {attrs}>"]
    for docid, segments in docs.items():
        lines.append(f'<doc docid="{docid}" genre="news">')
        lines.extend(f'<seg id="{segid}">{text}</seg>' for segid, text in segments)
        lines.append("</doc>")
    lines.append(f"</{kind}>")
    return "\n".join(lines) + "\n"


def write_sgml_set(
    folder: Path,
    source_docs: dict[str, list[tuple[str, str]]],
    reference_docs: dict[str, list[tuple[str, str]]],
    srclang: str = "any",
) -> tuple[Path, Path]:
    source = folder / "newstest2014-deen-src.de.sgm"
    reference = folder / "newstest2014-deen-ref.en.sgm"
    source.write_text(sgml("srcset", f'setid="newstest2014" srclang="{srclang}"', source_docs))
    reference.write_text(
        sgml("refset", 'trglang="en" setid="newstest2014" srclang="any"', reference_docs)
    )
    return source, reference


# -- plain text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_prefix_finds_source_and_reference(tmp_path, suffix):
    source = WmtSource(write_text_set(tmp_path, suffix))
    table = source.to_table()
    assert source.languages == ["eng_Latn", "zho_Hans"]
    assert source.corpus == "generaltest2022"
    assert table["zho_Hans"].to_pylist() == ZH
    assert table["eng_Latn"].to_pylist() == EN_A
    assert table["segment_id"].to_pylist() == ["1", "2", "3"]
    assert table["doc_id"].to_pylist() == [None, None, None]
    assert set(table["split"].to_pylist()) == {"test"}
    assert source.describe()["type"] == "wmt"
    assert source.describe()["format"] == "text"


def test_several_references_give_one_row_each(tmp_path):
    source = WmtSource(write_text_set(tmp_path, refs={"A": EN_A, "B": EN_B}))
    table = source.to_table()
    assert table.num_rows == 6
    assert table["segment_id"].to_pylist() == ["1#A", "1#B", "2#A", "2#B", "3#A", "3#B"]
    assert table["zho_Hans"].to_pylist() == [ZH[0], ZH[0], ZH[1], ZH[1], ZH[2], ZH[2]]
    assert table["eng_Latn"].to_pylist()[:2] == [EN_A[0], EN_B[0]]
    assert source.describe()["references"] == ["A", "B"]


def test_first_reference_only(tmp_path):
    prefix = write_text_set(tmp_path, refs={"A": EN_A, "B": EN_B})
    table = WmtSource(prefix, references_used="first").to_table()
    assert table["segment_id"].to_pylist() == ["1", "2", "3"]
    assert table["eng_Latn"].to_pylist() == EN_A


def test_explicit_files_and_globs(tmp_path):
    write_text_set(tmp_path, refs={"A": EN_A, "B": EN_B})
    source = WmtSource(
        source=tmp_path / "generaltest2022.zh-en.src.zh",
        references=[str(tmp_path / "generaltest2022.zh-en.ref.*.en")],
    )
    assert source.languages == ["eng_Latn", "zho_Hans"]
    assert source.to_table().num_rows == 6


def test_languages_from_config_when_names_lack_them(tmp_path):
    write_lines(tmp_path / "source.txt", ZH)
    write_lines(tmp_path / "reference.txt", EN_A)
    with pytest.raises(CorpusError, match=r"source\.txt: cannot tell the language"):
        WmtSource(source=tmp_path / "source.txt", references=[tmp_path / "reference.txt"])
    source = WmtSource(
        source=tmp_path / "source.txt",
        references=[tmp_path / "reference.txt"],
        languages=("zh", "en"),
        corpus="mytest",
    )
    assert source.languages == ["eng_Latn", "zho_Hans"]
    assert source.corpus == "mytest"
    assert source.to_table()["eng_Latn"].to_pylist() == EN_A


def test_line_count_mismatch_names_file_and_both_counts(tmp_path):
    prefix = write_text_set(tmp_path, refs={"A": EN_A, "B": EN_B[:2]})
    with pytest.raises(CorpusError) as caught:
        WmtSource(prefix)
    message = str(caught.value)
    assert "generaltest2022.zh-en.ref.B.en has 2 lines" in message
    assert "generaltest2022.zh-en.src.zh has 3" in message
    assert "\n" not in message


def test_blank_segments_are_skipped_and_counted(tmp_path):
    prefix = write_text_set(tmp_path, refs={"A": ["The river is long.", "", "x"]})
    write_lines(tmp_path / "generaltest2022.zh-en.src.zh", ["这条河很长。", "我们", "  "])
    source = WmtSource(prefix)
    table = source.to_table()
    assert table["segment_id"].to_pylist() == ["1"]
    assert source.skipped == {"blank eng_Latn": 1, "blank zho_Hans": 1}
    assert source.describe()["skipped"] == {"blank eng_Latn": 1, "blank zho_Hans": 1}


def test_unknown_code_in_name_is_a_corpus_error(tmp_path):
    write_lines(tmp_path / "test2022.qq-en.src.qq", ZH)
    write_lines(tmp_path / "test2022.qq-en.ref.A.en", EN_A)
    with pytest.raises(CorpusError, match=r"test2022\.qq-en\.src\.qq: language code 'qq'"):
        WmtSource(tmp_path / "test2022.qq-en")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CorpusError, match="no WMT source file"):
        WmtSource(tmp_path / "generaltest2022.zh-en")
    write_lines(tmp_path / "generaltest2022.zh-en.src.zh", ZH)
    with pytest.raises(CorpusError, match="no reference file"):
        WmtSource(tmp_path / "generaltest2022.zh-en")


def test_config_requires_path_or_source_with_references():
    assert WmtConfig(type="wmt", path="x.zh-en").split == "test"
    config = WmtConfig(
        type="wmt", source="a", references=["b"], languages={"source": "zh", "target": "en"}
    )
    assert (config.languages.source, config.languages.target) == ("zho_Hans", "eng_Latn")
    with pytest.raises(ValidationError, match="either `path`"):
        WmtConfig(type="wmt")
    with pytest.raises(ValidationError, match="needs `references`"):
        WmtConfig(type="wmt", source="a")
    with pytest.raises(ValidationError, match="must differ"):
        WmtConfig(type="wmt", path="x", languages={"source": "en", "target": "eng"})


def test_from_config(tmp_path):
    prefix = write_text_set(tmp_path, refs={"A": EN_A, "B": EN_B})
    config = WmtConfig(type="wmt", path=str(prefix), references_used="first", split="dev")
    source = WmtSource.from_config(config, None)
    table = source.to_table()
    assert table.num_rows == 3
    assert set(table["split"].to_pylist()) == {"dev"}


# -- SGML ------------------------------------------------------------------------------------------


def test_sgml_pairs_by_ids_and_takes_language_from_name_when_srclang_is_any(tmp_path):
    write_sgml_set(
        tmp_path,
        {"d1": [("1", "Hallo Welt"), ("2", "Zwei")], "d2": [("1", "Drei")]},
        # The reference lists the segments in another order: pairing is by id, not position.
        {"d2": [("1", "Three")], "d1": [("2", "Two"), ("1", "Hello world")]},
    )
    source = WmtSource(tmp_path / "newstest2014-deen")
    table = source.to_table()
    assert source.languages == ["deu_Latn", "eng_Latn"]
    assert source.corpus == "newstest2014"
    assert source.format == "sgml"
    assert table["segment_id"].to_pylist() == ["d1:1", "d1:2", "d2:1"]
    assert table["doc_id"].to_pylist() == ["d1", "d1", "d2"]
    assert table["deu_Latn"].to_pylist() == ["Hallo Welt", "Zwei", "Drei"]
    assert table["eng_Latn"].to_pylist() == ["Hello world", "Two", "Three"]


def test_sgml_language_attribute_wins_when_it_is_a_real_code(tmp_path):
    source_file, reference_file = write_sgml_set(
        tmp_path, {"d": [("1", "Bonjour")]}, {"d": [("1", "Hello")]}, srclang="fr"
    )
    source = WmtSource(source=source_file, references=[reference_file])
    assert source.languages == ["eng_Latn", "fra_Latn"]


def test_sgml_unescapes_only_the_five_entities(tmp_path):
    write_sgml_set(
        tmp_path,
        {"d": [("1", "A &amp; B &lt;tag&gt; &quot;q&quot; &apos;s&apos; &amp;lt; &nbsp;")]},
        {"d": [("1", "  x  ")]},
    )
    table = WmtSource(tmp_path / "newstest2014-deen").to_table()
    assert table["deu_Latn"].to_pylist() == ["A & B <tag> \"q\" 's' &lt; &nbsp;"]
    assert table["eng_Latn"].to_pylist() == ["x"]


def test_sgml_reference_without_source_names_file_and_ids(tmp_path):
    write_sgml_set(tmp_path, {"d1": [("1", "Eins")]}, {"d1": [("1", "One"), ("7", "Seven")]})
    with pytest.raises(CorpusError) as caught:
        WmtSource(tmp_path / "newstest2014-deen")
    message = str(caught.value)
    assert "newstest2014-deen-ref.en.sgm" in message
    assert "docid='d1' id='7' has no source segment" in message


def test_sgml_source_without_reference_names_file_and_ids(tmp_path):
    write_sgml_set(tmp_path, {"d1": [("1", "Eins")], "d2": [("4", "Vier")]}, {"d1": [("1", "One")]})
    with pytest.raises(CorpusError, match=r"docid='d2' id='4' has no reference in .*ref\.en\.sgm"):
        WmtSource(tmp_path / "newstest2014-deen")


def test_sgml_malformed_lines_are_errors_with_line_numbers(tmp_path):
    source_file, reference_file = write_sgml_set(tmp_path, {"d": [("1", "a")]}, {"d": [("1", "b")]})
    source_file.write_text('<srcset srclang="de">\n<doc docid="d">\n<seg id="1">a\n</doc>\n')
    with pytest.raises(CorpusError, match=r"src\.de\.sgm:3: a <seg> not closed"):
        WmtSource(source=source_file, references=[reference_file])
    source_file.write_text('<srcset srclang="de">\n<seg id="1">a</seg>\n')
    with pytest.raises(CorpusError, match=r"src\.de\.sgm:2: <seg id='1'> outside any <doc>"):
        WmtSource(source=source_file, references=[reference_file])


def test_sgml_and_text_cannot_mix(tmp_path):
    source_file, _ = write_sgml_set(tmp_path, {"d": [("1", "a")]}, {"d": [("1", "b")]})
    write_lines(tmp_path / "ref.en", ["b"])
    with pytest.raises(CorpusError, match=r"all plain text or all \.sgm"):
        WmtSource(source=source_file, references=[tmp_path / "ref.en"])


def test_sgml_several_references_and_blank_segments(tmp_path):
    source_file, reference_a = write_sgml_set(
        tmp_path, {"d": [("1", "Eins"), ("2", "Zwei")]}, {"d": [("1", "One"), ("2", " ")]}
    )
    reference_b = tmp_path / "newstestB2014-deen-ref.en.sgm"
    reference_b.write_text(sgml("refset", 'trglang="en"', {"d": [("1", "1"), ("2", "2")]}))
    source = WmtSource(source=source_file, references=[reference_a, reference_b])
    table = source.to_table()
    assert table["segment_id"].to_pylist() == ["d:1#A", "d:1#B", "d:2#B"]
    assert source.skipped == {"blank eng_Latn": 1}


# -- real files ------------------------------------------------------------------------------------


def file_lines(path: Path) -> list[str]:
    """Lines split on newlines only, as the loader does (``splitlines`` also splits on U+2028)."""
    lines = path.read_bytes().decode("utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def test_real_wmt22_plain_text(shared_corpora):
    folder = shared_corpora / "wmt22"
    source_lines = file_lines(folder / "generaltest2022.zh-en.src.zh")
    reference_lines = file_lines(folder / "generaltest2022.zh-en.ref.A.en")
    assert len(source_lines) == len(reference_lines) > 1000
    source = WmtSource(folder / "generaltest2022.zh-en")
    table = source.to_table()
    assert source.languages == ["eng_Latn", "zho_Hans"]
    assert table.num_rows == len(source_lines)
    assert table["zho_Hans"].to_pylist() == source_lines
    assert table["eng_Latn"].to_pylist() == reference_lines
    assert table["segment_id"].to_pylist() == [str(n) for n in range(1, len(source_lines) + 1)]


def test_real_newstest2014_sgml(shared_corpora):
    folder = shared_corpora / "wmt-sgm"
    source_file = folder / "newstest2014-deen-src.de.sgm"
    reference_file = folder / "newstest2014-deen-ref.en.sgm"
    source_text = source_file.read_text("utf-8")
    seg_lines = [line for line in file_lines(source_file) if "<seg" in line]
    reference_seg_lines = [line for line in file_lines(reference_file) if "<seg" in line]
    assert len(seg_lines) == len(reference_seg_lines) > 1000
    source = WmtSource(source=source_file, references=[reference_file])
    table = source.to_table()
    assert source.languages == ["deu_Latn", "eng_Latn"]
    assert table.num_rows == len(seg_lines)
    first_doc = re.search(r'docid="([^"]+)"', source_text).group(1)
    first_seg = re.search(r'<seg id="([^"]+)">', source_text).group(1)
    assert table["segment_id"][0].as_py() == f"{first_doc}:{first_seg}"
    assert table["doc_id"][0].as_py() == first_doc
    assert all(
        segment_id.startswith(f"{doc_id}:")
        for segment_id, doc_id in zip(
            table["segment_id"].to_pylist(), table["doc_id"].to_pylist(), strict=True
        )
    )
    assert len(set(table["segment_id"].to_pylist())) == table.num_rows
    # The same test set found from its prefix, with the source language from the file name.
    assert WmtSource(folder / "newstest2014-deen").to_table().num_rows == len(seg_lines)
