from __future__ import annotations

import csv
from collections import Counter

import pytest
from conftest import REPO

from bayling_data.errors import UnknownLanguageError
from bayling_data.languages import COLUMNS, registry, resolve

# ISO 15924 codes of the scripts Flores-200 uses (from the standard's code list).
ISO_15924 = {
    "Arab",
    "Armn",
    "Beng",
    "Cyrl",
    "Deva",
    "Ethi",
    "Geor",
    "Grek",
    "Gujr",
    "Guru",
    "Hang",
    "Hans",
    "Hant",
    "Hebr",
    "Jpan",
    "Khmr",
    "Knda",
    "Laoo",
    "Latn",
    "Mlym",
    "Mtei",
    "Mymr",
    "Olck",
    "Orya",
    "Sinh",
    "Taml",
    "Telu",
    "Tfng",
    "Thai",
    "Tibt",
}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with open(REPO / "language_codes.tsv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        assert tuple(reader.fieldnames) == COLUMNS
        return list(reader)


def test_every_flores200_code_once(rows):
    codes = [row["flores200"] for row in rows]
    assert len(codes) == 204
    assert len(set(codes)) == 204
    assert {"swh_Latn", "zho_Hans", "zho_Hant", "eng_Latn", "yor_Latn", "arb_Latn"} <= set(codes)


def test_codes_are_internally_consistent(rows):
    for row in rows:
        iso639_3, script = row["flores200"].split("_")
        assert row["iso639_3"] == iso639_3, row
        assert row["script"] == script, row
        assert row["script"] in ISO_15924, row
        assert row["name_en"] and row["name_zh"], row
        assert row["tier"] in {"high", "low"}, row
        assert not row["iso639_1"] or len(row["iso639_1"]) == 2, row
        assert not row["nllb_lid"] or row["nllb_lid"] == row["flores200"], row
    for column in ("name_en", "name_zh"):
        repeated = [name for name, n in Counter(r[column] for r in rows).items() if n > 1]
        assert not repeated, f"{column} repeats {repeated}"


def test_every_flores101_code_maps_to_one_flores200_code(rows):
    flores101 = [row["flores101"] for row in rows if row["flores101"]]
    # 101 languages, Chinese in two scripts.
    assert len(flores101) == 102
    assert len(set(flores101)) == len(flores101)
    by_code = {row["flores101"]: row["flores200"] for row in rows if row["flores101"]}
    assert by_code["zho_simpl"] == "zho_Hans"
    assert by_code["zho_trad"] == "zho_Hant"
    assert by_code["ara"] == "arb_Arab"
    assert by_code["swh"] == "swh_Latn"


def test_macrolanguage_links(rows):
    macro = {row["flores200"]: row["macrolanguage"] for row in rows}
    assert macro["arb_Arab"] == "ara"
    assert macro["zsm_Latn"] == macro["ind_Latn"] == "msa"
    assert macro["bos_Latn"] == macro["hrv_Latn"] == macro["srp_Cyrl"] == "hbs"
    assert macro["swh_Latn"] == "swa"
    assert macro["pes_Arab"] == macro["prs_Arab"] == "fas"


def test_language_id_labels_for_the_test_languages():
    labels = {
        code: registry().get(code).lid176
        for code in (
            "arb_Arab",
            "deu_Latn",
            "eng_Latn",
            "fra_Latn",
            "hin_Deva",
            "jpn_Jpan",
            "khm_Khmr",
            "rus_Cyrl",
            "swh_Latn",
            "yor_Latn",
            "zho_Hans",
            "zho_Hant",
        )
    }
    assert list(labels.values()) == [
        "ar",
        "de",
        "en",
        "fr",
        "hi",
        "ja",
        "km",
        "ru",
        "sw",
        "yo",
        "zh",
        "zh",
    ]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("sw", "swh_Latn"),
        ("swh", "swh_Latn"),
        ("swh_Latn", "swh_Latn"),
        ("Swahili", "swh_Latn"),
        ("swahili", "swh_Latn"),
        ("斯瓦希里语", "swh_Latn"),
        ("斯瓦希里", "swh_Latn"),
        ("zho_simpl", "zho_Hans"),
        ("zho_trad", "zho_Hant"),
        ("zh", "zho_Hans"),
        ("zh-Hans", "zho_Hans"),
        ("zh-Hant", "zho_Hant"),
        ("zh-TW", "zho_Hant"),
        ("zh-CN", "zho_Hans"),
        ("en", "eng_Latn"),
        ("EN-US", "eng_Latn"),
        ("pt-BR", "por_Latn"),
        ("es-419", "spa_Latn"),
        ("ar", "arb_Arab"),
        ("ara", "arb_Arab"),
        ("yo", "yor_Latn"),
        ("km", "khm_Khmr"),
    ],
)
def test_resolve_any_form(query, code):
    assert resolve(query).code == code


def test_names_in_both_languages():
    swahili = resolve("swh")
    assert swahili.name("en") == "Swahili"
    assert swahili.name("zh") == "斯瓦希里语"


@pytest.mark.parametrize("prompt_lang", ["eng_Latn", "zho_Hans"])
def test_no_two_languages_share_a_prompt_name(prompt_lang):
    names = {lang.code: registry().prompt_name(lang.code, prompt_lang) for lang in registry()}
    assert len(names) == 204 and all(names.values())
    shared = {name: n for name, n in Counter(names.values()).items() if n > 1}
    assert not shared, f"prompt names in {prompt_lang} shared by several languages: {shared}"
    for code, name in names.items():
        assert resolve(name).code == code  # a prompt name is also a way to ask for the language


@pytest.mark.parametrize(
    ("code", "english", "chinese"),
    [
        ("swh_Latn", "Swahili", "斯瓦希里语"),
        ("ace_Arab", "Acehnese (Arabic script)", "亚齐语（阿拉伯字母）"),
        ("ace_Latn", "Acehnese (Latin script)", "亚齐语（拉丁字母）"),
        ("kas_Deva", "Kashmiri (Devanagari script)", "克什米尔语（天城文）"),
        ("taq_Tfng", "Tamasheq (Tifinagh script)", "塔马舍克语（提非纳字母）"),
        ("arb_Arab", "Modern Standard Arabic", "现代标准阿拉伯语"),
        ("arb_Latn", "Modern Standard Arabic (Romanized)", "现代标准阿拉伯语（拉丁字母）"),
        ("zho_Hans", "Simplified Chinese", "简体中文"),
        ("zho_Hant", "Traditional Chinese", "繁体中文"),
        ("yue_Hant", "Yue Chinese", "粤语"),
        # One row only: the qualifier is not needed to tell it from another language.
        ("mni_Beng", "Meitei", "曼尼普尔语"),
    ],
)
def test_prompt_names(code, english, chinese):
    reg = registry()
    assert reg.prompt_name(code, "eng_Latn") == reg.prompt_name(code, "en") == english
    assert reg.prompt_name(code, "zho_Hans") == reg.prompt_name(code, "zh") == chinese


def test_unknown_code_suggests_the_nearest():
    with pytest.raises(UnknownLanguageError) as err:
        resolve("swhh")
    assert "swh_Latn" in str(err.value)
    with pytest.raises(UnknownLanguageError):
        resolve("klingon")


def test_named_sets():
    assert len(registry().named_set("flores200")) == 204
    assert len(registry().named_set("flores101")) == 102
