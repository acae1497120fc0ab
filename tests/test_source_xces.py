from __future__ import annotations

import gzip
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from pydantic import ValidationError

from bayling_data.errors import CorpusError
from bayling_data.sources.xces import XcesConfig, XcesSource

HEADER = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<!DOCTYPE cesAlign PUBLIC "-//CES//DTD XML cesAlign//EN" "">\n'
)
DE = {
    "s1.1": "<w>Guten</w> <w>Morgen</w> <w>.</w>",
    "s1.2": "<chunk type='NP'><w>Wie</w> <w>geht</w></chunk> <w>es</w> <w>?</w>",
    "s2.1": "Danke\n   schön .",
    "s3.1": "Bis <b>bald</b> .",
    "s4.1": "<w>Tschüss</w>",
    "s5.1": "   ",
}
EN = {
    "s1.1": "<w>Good</w> <w>morning</w> <w>.</w>",
    "s2.1": "<w>How</w> <w>are</w> <w>you</w> <w>?</w>",
    "s2.2": "Thank you .",
    "s3.1": "<w>See</w> <w>you</w> <w>soon</w> <w>.</w>",
    "s3.2": "<w>Bye</w>",
    "s5.1": "<w>Nothing</w>",
}


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, "utf-8")
    return path


def document(sentences: dict[str, str]) -> str:
    body = "\n".join(f'<p><s id="{sid}">{text}</s></p>' for sid, text in sentences.items())
    return f'<?xml version="1.0" encoding="utf-8"?>\n<text>\n{body}\n</text>\n'


def alignment(*groups: tuple[str, str, list[str]], ids: bool = True) -> str:
    parts = [HEADER, '<cesAlign version="1.0">\n']
    for from_doc, to_doc, links in groups:
        parts.append(f'<linkGrp targType="s" fromDoc="{from_doc}" toDoc="{to_doc}">\n')
        for number, xtargets in enumerate(links, 1):
            link_id = f' id="SL{number}"' if ids else ""
            parts.append(f'<link certainty="1" xtargets="{xtargets}"{link_id} />\n')
        parts.append("</linkGrp>\n")
    parts.append("</cesAlign>\n")
    return "".join(parts)


LINKS = ["s1.1;s1.1", "s1.2;s2.1", "s2.1;s2.2", ";s2.3", "s3.1;s3.1 s3.2", "s4.1;", "s9.9 ;"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """An OPUS-style folder: de-en.xml.gz plus de/1.xml.gz and en/1.xml.gz."""
    write_text(tmp_path / "de" / "1.xml.gz", document(DE))
    write_text(tmp_path / "en" / "1.xml.gz", document(EN))
    return write_text(tmp_path / "de-en.xml.gz", alignment(("de/1.xml.gz", "en/1.xml.gz", LINKS)))


def test_links_one_to_one_one_to_many_many_to_one(corpus):
    source = XcesSource(corpus)
    rows = source.to_table().to_pylist()
    assert source.languages == ["deu_Latn", "eng_Latn"]
    assert source.corpus == "de-en"
    assert [(r["deu_Latn"], r["eng_Latn"]) for r in rows] == [
        ("Guten Morgen .", "Good morning ."),
        ("Wie geht es ?", "How are you ?"),  # <w> inside <chunk>
        ("Danke schön .", "Thank you ."),  # plain text, whitespace collapsed
        ("Bis bald .", "See you soon . Bye"),  # 1:2 joined by a space
    ]
    assert [r["segment_id"] for r in rows] == [
        "de/1.xml.gz:SL1",
        "de/1.xml.gz:SL2",
        "de/1.xml.gz:SL3",
        "de/1.xml.gz:SL5",
    ]
    assert {r["doc_id"] for r in rows} == {"de/1.xml.gz"}
    assert source.skipped == {"empty link": 3}
    assert source.describe() == {
        "type": "xces",
        "corpus": "de-en",
        "files": [str(corpus)],
        "documents": [str(corpus.parent)],
        "languages": ["deu_Latn", "eng_Latn"],
        "skipped": {"empty link": 3},
    }


def test_many_to_one_and_link_index_ids(tmp_path):
    write_text(tmp_path / "de" / "1.xml", document(DE))
    write_text(tmp_path / "en" / "1.xml", document(EN))
    path = write_text(
        tmp_path / "de-en.xml",
        alignment(
            ("de/1.xml", "en/1.xml", ["s1.1 s1.2;s1.1", "s5.1;s5.1", "s4.1;s3.2"]), ids=False
        ),
    )
    source = XcesSource(path)
    rows = source.to_table().to_pylist()
    assert [(r["segment_id"], r["deu_Latn"]) for r in rows] == [
        ("de/1.xml:1", "Guten Morgen . Wie geht es ?"),
        ("de/1.xml:3", "Tschüss"),
    ]
    assert source.skipped == {"blank deu_Latn": 1}


def test_empty_alignment_gives_no_rows(tmp_path):
    path = write_text(tmp_path / "de-en.xml", HEADER + '<cesAlign version="1.0">\n</cesAlign>\n')
    source = XcesSource(path)
    table = source.to_table()
    assert table.num_rows == 0
    assert source.languages == ["deu_Latn", "eng_Latn"]  # from the name, as there are no groups


def test_missing_sentence_id_names_the_document_and_id(corpus):
    write_text(corpus, alignment(("de/1.xml.gz", "en/1.xml.gz", ["s1.1;s1.1", "s1.1;s7.7"])))
    with pytest.raises(CorpusError, match=r"en/1\.xml\.gz: no sentence with id 's7\.7'.*link SL2"):
        XcesSource(corpus).to_table()


def test_missing_document_is_named_before_reading(corpus):
    write_text(corpus, alignment(("de/1.xml.gz", "en/2.xml.gz", ["s1.1;s1.1"])))
    with pytest.raises(CorpusError, match=r"en/2\.xml\.gz: no such document \(linked from"):
        XcesSource(corpus)
    with zipfile.ZipFile(corpus.parent / "docs.zip", "w") as handle:
        handle.writestr("de/1.xml.gz", gzip.compress(document(DE).encode()))
    with pytest.raises(CorpusError, match=r"docs\.zip:en/2\.xml\.gz: no such document"):
        XcesSource(corpus, documents=corpus.parent / "docs.zip")


def test_documents_in_an_opus_zip(tmp_path):
    """OPUS zips keep documents under a corpus prefix and uncompressed."""
    archive = tmp_path / "docs" / "xml.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("Corpus/xml/de/1.xml", document(DE))
        handle.writestr("Corpus/xml/en/1.xml", document(EN))
    path = write_text(tmp_path / "de-en.xml.gz", alignment(("de/1.xml.gz", "en/1.xml.gz", LINKS)))
    source = XcesSource(path, documents=archive)
    assert source.to_table().num_rows == 4
    assert sorted(p.name for p in archive.parent.iterdir()) == ["xml.zip"]


def test_documents_in_two_zips_with_gzipped_members(tmp_path):
    for code, sentences in (("de", DE), ("en", EN)):
        with zipfile.ZipFile(tmp_path / f"{code}.zip", "w") as handle:
            handle.writestr(f"{code}/1.xml.gz", gzip.compress(document(sentences).encode()))
    path = write_text(
        tmp_path / "al" / "de-en.xml", alignment(("de/1.xml.gz", "en/1.xml.gz", LINKS))
    )
    source = XcesSource(path, documents=[tmp_path / "de.zip", tmp_path / "en.zip"])
    rows = source.to_table().to_pylist()
    assert rows[3]["eng_Latn"] == "See you soon . Bye"


def test_several_language_pairs_in_one_file(tmp_path):
    sv = {"s1": "<w>Hej</w>", "s2": "<w>Tack</w>"}
    write_text(tmp_path / "sv" / "1.xml.gz", document(sv))
    write_text(tmp_path / "de" / "1.xml.gz", document({"s1": "Hallo", "s2": "Danke"}))
    write_text(tmp_path / "en" / "1.xml.gz", document({"s1": "Hello", "s2": "Thanks"}))
    path = write_text(
        tmp_path / "sv-de-en.xml",
        alignment(
            ("sv/1.xml.gz", "de/1.xml.gz", ["s1;s1", "s2;s2"]),
            ("sv/1.xml.gz", "en/1.xml.gz", ["s1;s1", "s2;s2"]),
        ),
    )
    source = XcesSource(path)
    rows = source.to_table().to_pylist()
    assert source.languages == ["deu_Latn", "eng_Latn", "swe_Latn"]
    assert [(r["swe_Latn"], r["deu_Latn"], r["eng_Latn"]) for r in rows] == [
        ("Hej", "Hallo", None),
        ("Tack", "Danke", None),
        ("Hej", None, "Hello"),
        ("Tack", None, "Thanks"),
    ]
    ids = [r["segment_id"] for r in rows]
    assert len(set(ids)) == 4  # the groups share fromDoc and link ids
    assert ids[0] == "sv/1.xml.gz|de/1.xml.gz:SL1"

    only = XcesSource(path, languages=["en", "sv"])
    assert only.languages == ["eng_Latn", "swe_Latn"]
    assert only.to_table().num_rows == 2
    assert only.skipped == {"link swe_Latn-deu_Latn (not in languages)": 2}
    with pytest.raises(CorpusError, match="languages: no link group has fra_Latn"):
        XcesSource(path, languages=["en", "fr"])


def test_glob_of_alignments_has_unique_ids(corpus):
    write_text(corpus.parent / "fr" / "1.xml.gz", document(EN))
    write_text(corpus.parent / "de-fr.xml.gz", alignment(("de/1.xml.gz", "fr/1.xml.gz", LINKS)))
    source = XcesSource(str(corpus.parent / "*.xml.gz"))
    rows = source.to_table().to_pylist()
    assert source.languages == ["deu_Latn", "eng_Latn", "fra_Latn"]
    assert len(rows) == 8
    assert len({r["segment_id"] for r in rows}) == 8
    assert rows[0]["segment_id"] == "de-en.xml.gz:de/1.xml.gz:SL1"


def test_unknown_language_folder_names_the_file_and_code(tmp_path):
    path = write_text(tmp_path / "a.xml", alignment(("qqx/1.xml", "en/1.xml", ["s1;s1"])))
    with pytest.raises(CorpusError, match=r"a\.xml: document 'qqx/1\.xml': language code 'qqx'"):
        XcesSource(path)


def test_linked_paths_cannot_leave_the_documents_folder(tmp_path):
    write_text(tmp_path / "en" / "1.xml", document({"s1": "Hello"}))
    path = write_text(
        tmp_path / "al" / "de-en.xml", alignment(("de/../../etc/x.xml", "en/1.xml", ["s1;s1"]))
    )
    with pytest.raises(CorpusError, match="must be a relative path"):
        XcesSource(path, documents=tmp_path)


def test_same_language_on_both_sides_is_an_error(tmp_path):
    path = write_text(tmp_path / "a.xml", alignment(("en_GB/1.xml", "en_US/1.xml", ["s1;s1"])))
    with pytest.raises(CorpusError, match="links two eng_Latn documents"):
        XcesSource(path)


def test_bad_xtargets(corpus):
    write_text(corpus, alignment(("de/1.xml.gz", "en/1.xml.gz", ["s1.1 s1.1"])))
    with pytest.raises(CorpusError, match=r"de-en\.xml\.gz: link SL1: xtargets 's1\.1 s1\.1'"):
        XcesSource(corpus).to_table()


def test_entity_bomb_in_the_alignment_is_refused(tmp_path):
    bomb = '<!DOCTYPE cesAlign [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    path = write_text(tmp_path / "de-en.xml", f"{bomb}<cesAlign>&b;</cesAlign>")
    with pytest.raises(CorpusError, match=r"de-en\.xml: refused: the XML declares the entity 'a'"):
        XcesSource(path)


def test_malformed_document_names_the_document(corpus):
    write_text(corpus.parent / "en" / "1.xml.gz", '<text><s id="s1.1">Hi</p></text>')
    with pytest.raises(CorpusError, match=r"en/1\.xml\.gz: malformed XML at line 1"):
        XcesSource(corpus).to_table()


def test_not_an_alignment(corpus):
    with pytest.raises(CorpusError, match=r"1\.xml\.gz: expected a <cesAlign> document"):
        XcesSource(corpus.parent / "de" / "1.xml.gz")


def test_documents_must_be_a_folder_or_zip(corpus):
    with pytest.raises(CorpusError, match=r"documents: expected a folder or a \.zip"):
        XcesSource(corpus, documents=corpus)


def test_config_and_from_config(corpus):
    config = XcesConfig(
        type="xces", path=str(corpus), languages=["EN", "de-DE"], corpus="c", split="dev"
    )
    assert config.languages == ["eng_Latn", "deu_Latn"]
    source = XcesSource.from_config(config, None)
    row = source.to_table().to_pylist()[0]
    assert (row["corpus"], row["split"]) == ("c", "dev")
    with pytest.raises(ValidationError, match="must differ"):
        XcesConfig(type="xces", path="a.xml", languages=["en", "EN-US"])
    with pytest.raises(ValidationError):
        XcesConfig(type="xces", path="a.xml", documents_dir="x")


# -- the real OPUS sample ------------------------------------------------------------------------


def read_xml(path: Path) -> ElementTree.Element:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        return ElementTree.parse(handle).getroot()


def links_with_both_sides(path: Path) -> int:
    """Counted independently of the loader: a full parse of the alignment file."""
    count = 0
    for link in read_xml(path).iter("link"):
        from_ids, to_ids = link.get("xtargets").split(";")
        count += bool(from_ids.split() and to_ids.split())
    return count


def real_alignments(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.xml"), *folder.glob("*.xml.gz")])


def test_real_xces_every_alignment_file(shared_corpora):
    folder = shared_corpora / "opus" / "xces" / "opustools-perl-t-xml"
    files = real_alignments(folder)
    assert len(files) == 18
    empty = 0
    for path in files:
        source = XcesSource(path)
        table = source.to_table()
        expected = links_with_both_sides(path)
        assert table.num_rows == expected, path.name
        assert len(set(table["segment_id"].to_pylist())) == expected, path.name
        empty += expected == 0
        for code in source.languages:
            assert all(text is None or text.strip() for text in table[code].to_pylist())
    assert empty == 3  # de-en.xml, de-es.xml, de-fr.xml are empty upstream


def test_real_xces_one_to_two_link(shared_corpora):
    folder = shared_corpora / "opus" / "xces" / "opustools-perl-t-xml"

    def sentence(path: Path, sentence_id: str) -> str:
        found = next(s for s in read_xml(path).iter("s") if s.get("id") == sentence_id)
        return " ".join(w.text for w in found.iter("w"))

    rows = XcesSource(folder / "de-en.xml.gz").to_table().to_pylist()
    link = next(r for r in rows if r["segment_id"] == "de/1988.xml.gz:SL7")  # s4.1;s4.1 s4.2
    assert link["deu_Latn"] == sentence(folder / "de" / "1988.xml.gz", "s4.1")
    assert link["eng_Latn"] == (
        sentence(folder / "en" / "1988.xml.gz", "s4.1")
        + " "
        + sentence(folder / "en" / "1988.xml.gz", "s4.2")
    )
    assert link["eng_Latn"].startswith("Our policy of neutrality")


def test_real_xces_three_languages_in_one_file(shared_corpora):
    folder = shared_corpora / "opus" / "xces" / "opustools-perl-t-xml"
    source = XcesSource(folder / "sv-de-en.xml")
    table = source.to_table()
    assert source.languages == ["deu_Latn", "eng_Latn", "swe_Latn"]
    assert table.num_rows == 18
    assert table["deu_Latn"].null_count == 9
    assert table["eng_Latn"].null_count == 9
