from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from pydantic import ValidationError

from bayling_data.errors import CorpusError
from bayling_data.sources.files import CorpusFile
from bayling_data.sources.tmx import TmxConfig, TmxSource, iter_xml

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def tmx(*units: str, header: str = "") -> str:
    """A TMX 1.4 document holding the given ``<tu>`` elements."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"{header}"
        '<tmx version="1.4"><header srclang="en" datatype="plaintext"/><body>\n'
        + "\n".join(units)
        + "\n</body></tmx>\n"
    )


def unit(texts: dict[str, str], tuid: str | None = None, attribute: str = "xml:lang") -> str:
    variants = "".join(
        f'<tuv {attribute}="{code}"><seg>{text}</seg></tuv>' for code, text in texts.items()
    )
    return f'<tu tuid="{tuid}">{variants}</tu>' if tuid else f"<tu>{variants}</tu>"


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def test_region_and_case_codes_resolve_and_tuids_are_ids(tmp_path):
    path = write(
        tmp_path / "memory.en-fr.tmx",
        tmx(
            unit({"EN-US": "Hello.", "fr-FR": "Bonjour."}, tuid="a1"),
            unit({"en": "Thank you.", "FR": "Merci."}),
            unit({"en-gb": "Goodbye.", "fr-ca": "Au revoir."}, tuid="a3"),
        ),
    )
    source = TmxSource(path)
    table = source.to_table()
    assert source.languages == ["eng_Latn", "fra_Latn"]
    assert source.corpus == "memory.en-fr"
    assert table["eng_Latn"].to_pylist() == ["Hello.", "Thank you.", "Goodbye."]
    assert table["fra_Latn"].to_pylist() == ["Bonjour.", "Merci.", "Au revoir."]
    # tuid when present, else the 1-based unit index
    assert table["segment_id"].to_pylist() == ["a1", "2", "a3"]
    assert set(table["split"].to_pylist()) == {"train"}


def test_languages_given_keep_a_subset_of_a_multilingual_memory(tmp_path):
    path = write(
        tmp_path / "multi.tmx",
        tmx(
            unit({"en": "Water", "pt-BR": "Água", "es-419": "Agua", "de": "Wasser"}),
            unit({"en": "Fire", "pt-BR": "Fogo", "de": "Feuer"}),
        ),
    )
    with pytest.raises(CorpusError, match=r"multi\.tmx: cannot tell the languages.*`languages"):
        TmxSource(path)
    source = TmxSource(path, languages=["pt-BR", "es-419", "en"])
    table = source.to_table()
    assert source.languages == ["eng_Latn", "por_Latn", "spa_Latn"]
    assert table.num_rows == 1
    assert table.to_pylist()[0]["spa_Latn"] == "Agua"
    assert source.skipped == {"unit missing spa_Latn": 1}


def test_tmx_1_1_lang_attribute(tmp_path):
    path = write(tmp_path / "old.en-de.tmx", tmx(unit({"EN": "Yes", "DE": "Ja"}, attribute="lang")))
    table = TmxSource(path).to_table()
    assert table.to_pylist()[0]["deu_Latn"] == "Ja"


def test_inline_codes_are_dropped_and_their_tails_kept(tmp_path):
    english = (
        'Click <bpt i="1" x="1">&lt;b&gt;</bpt>here<ept i="1">&lt;/b&gt;</ept> '
        '<hi type="em">to <ph x="2">&lt;br/&gt;</ph>go</hi> '
        '<it pos="begin">{\\i </it>now<ut>{\\f2}</ut>!'
        '<ph>&lt;img alt="<sub>a footnote</sub>"&gt;</ph>'
    )
    path = write(tmp_path / "ui.en-fr.tmx", tmx(unit({"en": english, "fr": "  Cliquez  ici  "})))
    row = TmxSource(path).to_table().to_pylist()[0]
    assert row["eng_Latn"] == "Click here to go now!"
    assert row["fra_Latn"] == "  Cliquez  ici  "  # spacing is normalized later, not here


def test_missing_languages_and_blank_segments_are_skipped_and_counted(tmp_path):
    path = write(
        tmp_path / "c.en-fr.tmx",
        tmx(
            unit({"en": "One", "fr": "Un"}),
            unit({"en": "Two"}),
            unit({"en": "Three"}),
            unit({"de": "Vier"}),
            unit({"en": "Five", "fr": "   "}),
            unit({"en": "Six", "fr": "Six"}),
            "<tu><tuv xml:lang='en'><seg>Seven</seg></tuv><tuv xml:lang='fr'/></tu>",
        ),
    )
    source = TmxSource(path)
    table = source.to_table()
    assert table["eng_Latn"].to_pylist() == ["One", "Six"]
    assert table["segment_id"].to_pylist() == ["1", "6"]
    assert source.skipped == {
        "unit missing fra_Latn": 2,
        "unit missing eng_Latn, fra_Latn": 1,
        "blank fra_Latn": 2,
    }
    assert source.describe() == {
        "type": "tmx",
        "corpus": "c.en-fr",
        "files": [str(path)],
        "languages": ["eng_Latn", "fra_Latn"],
        "skipped": dict(source.skipped),
    }
    source.to_table()  # counts start again on every read
    assert source.skipped["blank fra_Latn"] == 2


def test_first_variant_of_a_language_wins(tmp_path):
    path = write(
        tmp_path / "c.en-fr.tmx", tmx(unit({"en-US": "color", "en-GB": "colour", "fr": "couleur"}))
    )
    assert TmxSource(path).to_table().to_pylist()[0]["eng_Latn"] == "color"


@pytest.mark.parametrize(
    ("suffix", "opener"), [(".gz", gzip.open), (".xz", lzma.open), (".bz2", bz2.open)]
)
def test_compressed_files(tmp_path, suffix, opener):
    path = tmp_path / f"c.en-fr.tmx{suffix}"
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write(tmx(unit({"en": "Hi", "fr": "Salut"}, tuid="7")))
    source = TmxSource(path)
    assert source.corpus == "c.en-fr"
    assert source.to_table().to_pylist()[0]["segment_id"] == "7"


def test_zip_members_are_read_without_unpacking(tmp_path):
    archive = tmp_path / "en-fr.tmx.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("README", "not a memory")
        handle.writestr("data/a.tmx", tmx(unit({"en": "A", "fr": "Ah"}, tuid="1")))
        handle.writestr("data/b.tmx", tmx(unit({"en": "B", "fr": "Bé"}, tuid="1")))
    source = TmxSource(archive)
    table = source.to_table()
    assert source.languages == ["eng_Latn", "fra_Latn"]  # from the archive's name
    assert table["fra_Latn"].to_pylist() == ["Ah", "Bé"]
    assert table["segment_id"].to_pylist() == ["a.tmx:1", "b.tmx:1"]  # unique across files
    assert source.describe()["files"] == [f"{archive}:data/a.tmx", f"{archive}:data/b.tmx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["en-fr.tmx.zip"]


def test_a_zip_without_tmx_is_an_error(tmp_path):
    archive = tmp_path / "en-fr.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("README", "nothing")
    with pytest.raises(CorpusError, match=r"en-fr\.zip: the archive holds no \.tmx member"):
        TmxSource(archive)


def test_glob_with_a_pair_per_file_gives_the_union(tmp_path):
    write(tmp_path / "a.en-fr.tmx", tmx(unit({"en": "Yes", "fr": "Oui"})))
    write(tmp_path / "b.en-de.tmx", tmx(unit({"en": "No", "de": "Nein", "fr": "Non"})))
    source = TmxSource(str(tmp_path / "*.tmx"))
    rows = source.to_table().to_pylist()
    assert source.languages == ["deu_Latn", "eng_Latn", "fra_Latn"]
    assert [(r["segment_id"], r["fra_Latn"], r["deu_Latn"]) for r in rows] == [
        ("a.en-fr.tmx:1", "Oui", None),
        ("b.en-de.tmx:1", None, "Nein"),  # that file's pair is en-de
    ]


def test_utf16_with_an_external_dtd_declaration(tmp_path):
    path = tmp_path / "c.en-fr.tmx"
    text = tmx(unit({"en": "Hi", "fr": "Salut"}), header='<!DOCTYPE tmx SYSTEM "tmx14.dtd">\n')
    path.write_bytes(text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"))
    assert TmxSource(path).to_table().num_rows == 1


def test_entity_bomb_is_refused(tmp_path):
    bomb = (
        '<!DOCTYPE tmx [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
            for i in range(1, 10)
        )
        + "]>\n"
    )
    path = write(tmp_path / "bomb.en-fr.tmx", tmx(unit({"en": "&lol9;", "fr": "x"}), header=bomb))
    with pytest.raises(
        CorpusError, match=r"bomb\.en-fr\.tmx: refused: the XML declares the entity"
    ):
        TmxSource(path).to_table()


def test_external_entity_is_refused(tmp_path):
    secret = write(tmp_path / "secret.txt", "password")
    header = f'<!DOCTYPE tmx [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
    path = write(tmp_path / "xxe.en-fr.tmx", tmx(unit({"en": "&xxe;", "fr": "x"}), header=header))
    with pytest.raises(CorpusError, match=r"xxe\.en-fr\.tmx: refused: .*'xxe'"):
        TmxSource(path).to_table()


def test_malformed_xml_names_the_file_and_line(tmp_path):
    path = write(
        tmp_path / "bad.en-fr.tmx",
        tmx(unit({"en": "a", "fr": "b"}), '<tu><tuv xml:lang="en"><seg>oops</tuv></tu>'),
    )
    with pytest.raises(CorpusError, match=r"bad\.en-fr\.tmx: malformed XML at line 4, column \d+"):
        TmxSource(path).to_table()


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "c.en-fr.tmx.gz"
    data = gzip.compress(tmx(*(unit({"en": f"s{i}", "fr": f"t{i}"}) for i in range(500))).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match=r"c\.en-fr\.tmx\.gz: "):
        TmxSource(path).to_table()


def test_unknown_code_in_a_file_names_the_file_and_code(tmp_path):
    path = write(tmp_path / "c.en-fr.tmx", tmx(unit({"en": "Hi", "qqx": "??"})))
    with pytest.raises(CorpusError, match=r"c\.en-fr\.tmx: language code 'qqx'"):
        TmxSource(path).to_table()


def test_unknown_code_in_the_name_is_an_error(tmp_path):
    path = write(tmp_path / "c.en-qq.tmx", tmx(unit({"en": "Hi"})))
    with pytest.raises(CorpusError, match=r"c\.en-qq\.tmx: language code 'qq'"):
        TmxSource(path)


def test_a_tuv_without_language_is_an_error(tmp_path):
    path = write(tmp_path / "c.en-fr.tmx", tmx("<tu tuid='x9'><tuv><seg>Hi</seg></tuv></tu>"))
    with pytest.raises(CorpusError, match=r"c\.en-fr\.tmx: unit x9: a <tuv> has no xml:lang"):
        TmxSource(path).to_table()


def test_not_a_tmx_document(tmp_path):
    path = write(tmp_path / "c.en-fr.tmx", '<?xml version="1.0"?><cesAlign/>')
    with pytest.raises(CorpusError, match=r"c\.en-fr\.tmx: expected a <tmx> document, found"):
        TmxSource(path).to_table()


def test_missing_path(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        TmxSource(tmp_path / "absent.en-fr.tmx")


def test_finished_units_are_dropped_from_the_tree(tmp_path):
    """What keeps memory flat on a 1 GB file: the tree never holds more than the parser's
    read-ahead (a 16 KiB chunk), however many units the file has."""
    units = [unit({"en": f"sentence {i}", "fr": f"phrase {i}"}) for i in range(5000)]
    path = write(tmp_path / "c.en-fr.tmx", tmx(*units))
    assert path.stat().st_size > 400_000
    held = [len(parent) for _, _, parent in iter_xml(CorpusFile(path), ends={"tu"})]
    assert len(held) == 5000
    assert max(held) < 500


def test_config():
    config = TmxConfig(type="tmx", path="x.tmx", languages=["EN-us", "pt-BR"])
    assert config.languages == ["eng_Latn", "por_Latn"]
    assert config.split == "train"
    with pytest.raises(ValidationError, match="must differ"):
        TmxConfig(type="tmx", path="x.tmx", languages=["en", "EN-GB"])
    with pytest.raises(ValidationError):
        TmxConfig(type="tmx", path="x.tmx", languages=["en"])
    with pytest.raises(ValidationError):
        TmxConfig(type="tmx", path="x.tmx", unknown_key=1)


def test_from_config(tmp_path):
    path = write(tmp_path / "memory.tmx", tmx(unit({"en": "Hi", "zh-CN": "你好"})))
    config = TmxConfig(
        type="tmx", path=str(path), languages=["en", "zh"], corpus="mem", split="dev"
    )
    source = TmxSource.from_config(config, ["swh_Latn"])
    row = source.to_table().to_pylist()[0]
    assert (row["corpus"], row["split"], row["zho_Hans"]) == ("mem", "dev", "你好")


def test_real_tmx_keeps_every_unit_with_both_languages(shared_corpora):
    path = shared_corpora / "opus" / "tmx" / "all.en-fr.tmx"
    # Independent count: a plain full parse of the (small) file.
    expected = 0
    for tu in ElementTree.parse(path).getroot().iter("tu"):
        texts = {tuv.get(XML_LANG): "".join(tuv.find("seg").itertext()) for tuv in tu.iter("tuv")}
        expected += bool(texts.get("en", "").strip() and texts.get("fr", "").strip())
    source = TmxSource(path)
    table = source.to_table()
    assert source.languages == ["eng_Latn", "fra_Latn"]
    assert table.num_rows == expected > 3000
    first = table.slice(0, 1).to_pylist()[0]
    assert first["segment_id"] == "CMU_1:1"
    assert first["fra_Latn"] == "depuis combien ressentez-vous ces symptômes ?"
    assert len(table["segment_id"].unique()) == table.num_rows
