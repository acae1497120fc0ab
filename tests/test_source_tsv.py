from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pytest
from pydantic import ValidationError

from bayling_data.errors import CorpusError, UnknownLanguageError
from bayling_data.languages import registry
from bayling_data.sources.tsv import TsvConfig, TsvSource, resolve_tatoeba_code

MANYTHINGS = [
    "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)",
    "Hi.\tSalut !\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #509819 (Aiji)",
    'He said "no".\tIl a dit « non ».\tCC-BY 2.0 (France) Attribution: tatoeba.org #1 & #2',
]


def write(path: Path, lines: list[str]) -> Path:
    openers = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
    opener = openers.get(path.suffix, open)
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
    return path


# -- columns layout --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz", ".bz2"])
def test_manythings_file_with_attribution_column(tmp_path, suffix):
    path = write(tmp_path / f"fra.txt{suffix}", MANYTHINGS)
    source = TsvSource(path, columns={"en": 0, "fr": 1})
    table = source.to_table()
    assert source.languages == ["eng_Latn", "fra_Latn"]
    assert source.corpus == "fra"
    assert table["eng_Latn"].to_pylist() == ["Go.", "Hi.", 'He said "no".']
    assert table["fra_Latn"].to_pylist() == ["Va !", "Salut !", "Il a dit « non »."]
    assert table["segment_id"].to_pylist() == ["1", "2", "3"]
    assert set(table["split"].to_pylist()) == {"train"}
    assert source.describe()["columns"] == {"eng_Latn": 0, "fra_Latn": 1}


def test_header_is_skipped_and_line_numbers_stay_physical(tmp_path):
    path = write(tmp_path / "pairs.tsv", ["english\tdeutsch", "Hello\tHallo", "Thanks\tDanke"])
    table = TsvSource(path, columns={"eng": 0, "de": 1}, header=True).to_table()
    assert table["eng_Latn"].to_pylist() == ["Hello", "Thanks"]
    assert table["segment_id"].to_pylist() == ["2", "3"]


def test_columns_in_any_order(tmp_path):
    path = write(tmp_path / "pairs.tsv", ["id1\t你好\tHello"])
    table = TsvSource(path, columns={"en": 2, "zh": 1}).to_table()
    assert table.to_pylist()[0]["zho_Hans"] == "你好"
    assert table.to_pylist()[0]["eng_Latn"] == "Hello"


def test_too_few_columns_names_file_and_line(tmp_path):
    path = write(tmp_path / "fra.txt", [*MANYTHINGS[:2], "Only one side"])
    source = TsvSource(path, columns={"en": 0, "fr": 1})
    with pytest.raises(CorpusError) as caught:
        source.to_table()
    message = str(caught.value)
    assert f"{path}:3: 1 tab-separated fields, expected at least 2" in message
    assert "\n" not in message


def test_a_wrong_first_line_fails_at_construction(tmp_path):
    path = write(tmp_path / "fra.txt", MANYTHINGS)
    with pytest.raises(CorpusError, match=r"fra\.txt:1: 3 tab-separated fields, expected .* 6"):
        TsvSource(path, columns={"en": 0, "fr": 5})


def test_blank_sides_and_blank_lines_are_skipped_and_counted(tmp_path):
    path = write(tmp_path / "fra.txt", ["Go.\tVa !", "Hi.\t ", "", "\tSalut"])
    source = TsvSource(path, columns={"en": 0, "fr": 1})
    assert source.to_table()["segment_id"].to_pylist() == ["1"]
    assert source.skipped == {"blank fra_Latn": 1, "blank eng_Latn": 1, "blank line": 1}
    assert source.describe()["skipped"] == dict(source.skipped)


def test_glob_of_several_files_prefixes_ids_with_the_stem(tmp_path):
    write(tmp_path / "fra.txt", MANYTHINGS[:2])
    write(tmp_path / "more.txt", MANYTHINGS[2:])
    source = TsvSource(str(tmp_path / "*.txt"), columns={"en": 0, "fr": 1})
    assert source.to_table()["segment_id"].to_pylist() == ["fra:1", "fra:2", "more:1"]
    assert source.corpus == tmp_path.name


def test_same_stems_in_several_folders_keep_ids_apart(tmp_path):
    for pair in ("eng-fra", "eng-fra2"):
        (tmp_path / pair).mkdir()
        write(tmp_path / pair / "test.txt", MANYTHINGS[:1])
    source = TsvSource(str(tmp_path / "*" / "test.txt"), columns={"en": 0, "fr": 1})
    assert source.to_table()["segment_id"].to_pylist() == ["eng-fra/test:1", "eng-fra2/test:1"]


def test_unknown_column_language_is_an_error(tmp_path):
    path = write(tmp_path / "x.tsv", ["a\tb"])
    with pytest.raises(UnknownLanguageError, match="unknown language 'qq'"):
        TsvSource(path, columns={"en": 0, "qq": 1})
    with pytest.raises(ValidationError, match="unknown language 'qq'"):
        TsvConfig(type="tsv", path="x.tsv", columns={"en": 0, "qq": 1})


def test_missing_path_is_named(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        TsvSource(tmp_path / "absent.tsv", columns={"en": 0, "fr": 1})
    with pytest.raises(CorpusError, match="no file matches"):
        TsvSource(str(tmp_path / "*.tsv"), columns={"en": 0, "fr": 1})


# -- tatoeba-challenge layout ----------------------------------------------------------------------

CHALLENGE = [
    "eng\tfra\tGo.\tVa !",
    "fra\teng\tMerci.\tThank you.",
    "eng\tdeu\tHello.\tHallo.",
    "eng\tcmn_Hans\tI love you.\t我爱你。",
    "zho_Hant\teng\t謝謝。\tThanks.",
    "eng\tfra\t \tVide",
]


def test_tatoeba_challenge_rows_name_their_languages(tmp_path):
    path = write(tmp_path / "test.txt", CHALLENGE)
    source = TsvSource(path, layout="tatoeba-challenge", languages=["en", "fr", "zh"])
    table = source.to_table()
    assert source.languages == ["eng_Latn", "fra_Latn", "zho_Hans"]
    assert source.corpus == "tatoeba-challenge"
    rows = table.to_pylist()
    assert [row["segment_id"] for row in rows] == ["1", "2", "4"]
    assert (rows[0]["eng_Latn"], rows[0]["fra_Latn"]) == ("Go.", "Va !")
    # A row in the reverse direction lands in the same columns.
    assert (rows[1]["eng_Latn"], rows[1]["fra_Latn"]) == ("Thank you.", "Merci.")
    assert (rows[2]["eng_Latn"], rows[2]["zho_Hans"], rows[2]["fra_Latn"]) == (
        "I love you.",
        "我爱你。",
        None,
    )
    assert source.skipped == {
        "other language deu_Latn": 1,
        "other language zho_Hant": 1,
        "blank eng_Latn": 1,
    }


def test_tatoeba_challenge_unknown_code_names_file_line_and_code(tmp_path):
    path = write(tmp_path / "test.txt", [*CHALLENGE[:2], "eng\tqqq\tx\ty"])
    source = TsvSource(path, layout="tatoeba-challenge", languages=["en", "fr"])
    with pytest.raises(CorpusError, match=r"test\.txt:3: unknown language code 'qqq'"):
        source.to_table()


def test_tatoeba_challenge_unknown_codes_can_be_skipped(tmp_path):
    path = write(tmp_path / "test.txt", ["eng\tqqq\tx\ty", *CHALLENGE[:2]])
    with pytest.raises(CorpusError, match=r"test\.txt:1: unknown language code 'qqq'"):
        TsvSource(path, layout="tatoeba-challenge", languages=["en", "fr"])
    source = TsvSource(
        path, layout="tatoeba-challenge", languages=["en", "fr"], unknown_codes="skip"
    )
    assert source.to_table().num_rows == 2
    assert source.skipped == {"unknown language qqq": 1}


def test_tatoeba_challenge_too_few_columns(tmp_path):
    path = write(tmp_path / "test.txt", [CHALLENGE[0], "eng\tfra\tGo."])
    source = TsvSource(path, layout="tatoeba-challenge", languages=["en", "fr"])
    with pytest.raises(
        CorpusError, match=r"test\.txt:2: 3 tab-separated fields, expected at least 4"
    ):
        source.to_table()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("eng", "eng_Latn"),
        ("fra", "fra_Latn"),
        ("deu", "deu_Latn"),
        ("cmn_Hans", "zho_Hans"),
        ("cmn_Hant", "zho_Hant"),
        ("zho_Hant", "zho_Hant"),
        ("yue_Hant", "yue_Hant"),
        ("jpn_Hira", "jpn_Jpan"),
        ("jpn", "jpn_Jpan"),
        ("srp_Cyrl", "srp_Cyrl"),
        ("qqq", None),
        ("cmn_Latn", None),
    ],
)
def test_tatoeba_codes(code, expected):
    assert resolve_tatoeba_code(code, registry()) == expected


def test_config_checks_layout_keys(tmp_path):
    config = TsvConfig(type="tsv", path="fra.txt", columns={"en": 0, "fr": 1})
    assert config.columns == {"eng_Latn": 0, "fra_Latn": 1}
    assert config.split == "train"
    with pytest.raises(ValidationError, match="needs `columns"):
        TsvConfig(type="tsv", path="fra.txt")
    with pytest.raises(ValidationError, match="needs `languages"):
        TsvConfig(type="tsv", path="test.txt", layout="tatoeba-challenge")
    with pytest.raises(ValidationError, match="share a column"):
        TsvConfig(type="tsv", path="fra.txt", columns={"en": 0, "fr": 0})
    with pytest.raises(ValidationError, match="at least two"):
        TsvConfig(type="tsv", path="fra.txt", columns={"en": 0})
    with pytest.raises(ValidationError, match="two columns"):
        TsvConfig(type="tsv", path="fra.txt", columns={"en": 0, "eng": 1})


def test_from_config(tmp_path):
    path = write(tmp_path / "test.txt", CHALLENGE)
    config = TsvConfig(
        type="tsv",
        path=str(path),
        layout="tatoeba-challenge",
        languages=["eng", "fra"],
        split="test",
        corpus="tatoeba-v2021",
    )
    table = TsvSource.from_config(config, None).to_table()
    assert table.num_rows == 2
    assert set(table["split"].to_pylist()) == {"test"}
    assert set(table["corpus"].to_pylist()) == {"tatoeba-v2021"}
