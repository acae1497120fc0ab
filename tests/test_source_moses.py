from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path

import pytest

from bayling_data.errors import CorpusError
from bayling_data.sources import MosesSource

DE = ["Guten Morgen.", "Wie geht es dir?", "Danke schön."]
EN = ["Good morning.", "How are you?", "Thank you."]


def write_pair(folder: Path, prefix: str, de: list[str], en: list[str], suffix: str = "") -> Path:
    openers = {"": open, ".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
    for code, lines in (("de", de), ("en", en)):
        with openers[suffix](folder / f"{prefix}.{code}{suffix}", "wt", encoding="utf-8") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
    return folder / prefix


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz", ".bz2"])
def test_reads_a_pair_plain_or_compressed(tmp_path, suffix):
    prefix = write_pair(tmp_path, "corpus.de-en", DE, EN, suffix)
    source = MosesSource(prefix)
    table = source.to_table()
    assert source.languages == ["deu_Latn", "eng_Latn"]
    assert source.corpus == "corpus.de-en"
    assert table["deu_Latn"].to_pylist() == DE
    assert table["eng_Latn"].to_pylist() == EN
    assert table["segment_id"].to_pylist() == ["1", "2", "3"]
    assert set(table["split"].to_pylist()) == {"train"}


def test_one_side_file_names_the_pair(tmp_path):
    write_pair(tmp_path, "corpus.de-en", DE, EN, ".gz")
    assert MosesSource(tmp_path / "corpus.de-en.en.gz").to_table().num_rows == 3


def test_languages_given_when_the_name_has_none(tmp_path):
    (tmp_path / "tokenized.en").write_text("a\nb\n", "utf-8")
    (tmp_path / "tokenized.fr").write_text("c\nd\n", "utf-8")
    with pytest.raises(CorpusError, match="give `languages: \\[xx, yy\\]`"):
        MosesSource(tmp_path / "tokenized")
    source = MosesSource(tmp_path / "tokenized", languages=["en", "fr"])
    assert source.languages == ["eng_Latn", "fra_Latn"]


def test_region_codes_in_names(tmp_path):
    (tmp_path / "c.en-pt_BR.en").write_text("hello\n", "utf-8")
    (tmp_path / "c.en-pt_BR.pt_BR").write_text("olá\n", "utf-8")
    assert MosesSource(tmp_path / "c.en-pt_BR").languages == ["eng_Latn", "por_Latn"]


def test_unknown_code_names_the_file(tmp_path):
    (tmp_path / "c.en-qq.en").write_text("hello\n", "utf-8")
    (tmp_path / "c.en-qq.qq").write_text("x\n", "utf-8")
    with pytest.raises(CorpusError, match=r"c\.en-qq\.qq: language code 'qq'"):
        MosesSource(tmp_path / "c.en-qq")


def test_opus_zip_is_read_without_unpacking(tmp_path):
    archive = tmp_path / "de-en.txt.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("README", "OPUS corpus")
        handle.writestr("bible-uedin.de-en.de", "".join(f"{x}\n" for x in DE))
        handle.writestr("bible-uedin.de-en.en", "".join(f"{x}\n" for x in EN))
        handle.writestr("bible-uedin.de-en.ids", "x\ny\nz\n")
    source = MosesSource(archive)
    assert source.corpus == "bible-uedin.de-en"
    assert source.to_table()["eng_Latn"].to_pylist() == EN
    assert sorted(p.name for p in tmp_path.iterdir()) == ["de-en.txt.zip"]


def test_glob_of_several_pairs(tmp_path):
    write_pair(tmp_path, "a.de-en", DE, EN)
    write_pair(tmp_path, "b.de-en", DE[:1], EN[:1])
    table = MosesSource(str(tmp_path / "*.de-en.de")).to_table()
    assert table.num_rows == 4
    assert table["segment_id"].to_pylist() == ["a.de-en:1", "a.de-en:2", "a.de-en:3", "b.de-en:1"]


def test_mismatched_line_counts_name_both_files(tmp_path):
    prefix = write_pair(tmp_path, "c.de-en", DE, EN[:2])
    with pytest.raises(CorpusError) as err:
        MosesSource(prefix).to_table()
    assert "c.de-en.de has 3 lines but" in str(err.value)
    assert "c.de-en.en has 2" in str(err.value)


def test_truncated_gzip_is_an_error_not_a_shorter_corpus(tmp_path):
    prefix = write_pair(tmp_path, "c.de-en", DE * 2000, EN * 2000, ".gz")
    data = (tmp_path / "c.de-en.de.gz").read_bytes()
    (tmp_path / "c.de-en.de.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match=r"c\.de-en\.de\.gz: the compressed data is truncated"):
        MosesSource(prefix).to_table()


def test_invalid_utf8_names_the_line(tmp_path):
    (tmp_path / "c.de-en.de").write_bytes(b"ok\n\xc3\x28\n")
    (tmp_path / "c.de-en.en").write_text("ok\nok\n", "utf-8")
    with pytest.raises(CorpusError, match=r"c\.de-en\.de:2: invalid UTF-8"):
        MosesSource(tmp_path / "c.de-en").to_table()


def test_blank_segments_are_dropped_and_counted(tmp_path):
    prefix = write_pair(tmp_path, "c.de-en", ["a", "  ", "c"], ["x", "y", ""])
    source = MosesSource(prefix)
    assert source.to_table()["segment_id"].to_pylist() == ["1"]
    assert source.skipped == {"blank deu_Latn": 1, "blank eng_Latn": 1}


def test_missing_paths(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        MosesSource(tmp_path / "absent.de-en")
    with pytest.raises(CorpusError, match="no file matches"):
        MosesSource(str(tmp_path / "*.xx-yy"))


def test_shared_moses_pairs(shared_corpora):
    bible = shared_corpora / "opus/moses/bible-uedin-v1.de-en"
    with gzip.open(bible / "bible-uedin-v1.de-en.en.gz", "rt", encoding="utf-8") as handle:
        expected = sum(1 for _ in handle)
    source = MosesSource(bible / "bible-uedin-v1.de-en")
    table = source.to_table()
    assert source.languages == ["deu_Latn", "eng_Latn"]
    assert table.num_rows + sum(source.skipped.values()) == expected == 62195
    rf = shared_corpora / "opus/moses/opustools-perl-RF/RF-tokenized"
    lines = (rf.parent / "RF-tokenized.fr").read_text("utf-8").splitlines()
    table = MosesSource(rf, languages=["en", "fr"]).to_table()
    assert table.num_rows == len(lines) == 175
    assert table["fra_Latn"].to_pylist() == lines
