from __future__ import annotations

from collections import Counter

import pyarrow as pa
from conftest import write_flores

from bayling_data.sources import FloresSource
from bayling_data.tasks import TranslationTask
from bayling_data.tasks.templates import bundled_templates


def generate(source: FloresSource, task: TranslationTask, batch_rows: int) -> pa.Table:
    return pa.Table.from_batches([task(b) for b in source.iter_batches(batch_rows=batch_rows)])


def test_directions_between_targets_and_pivots(small_flores):
    task = TranslationTask(["zho_Hans", "eng_Latn"], seed=1)
    assert task.pairs(["eng_Latn", "fra_Latn", "swh_Latn", "zho_Hans"]) == [
        ("fra_Latn", "zho_Hans"),
        ("fra_Latn", "eng_Latn"),
        ("swh_Latn", "zho_Hans"),
        ("swh_Latn", "eng_Latn"),
        ("zho_Hans", "fra_Latn"),
        ("eng_Latn", "fra_Latn"),
        ("zho_Hans", "swh_Latn"),
        ("eng_Latn", "swh_Latn"),
        ("zho_Hans", "eng_Latn"),
        ("eng_Latn", "zho_Hans"),
    ]
    only = TranslationTask(["zho_Hans", "eng_Latn"], ["swh_Latn"], directions=["to_pivot"])
    assert only.pairs(["eng_Latn", "fra_Latn", "swh_Latn", "zho_Hans"]) == [
        ("swh_Latn", "zho_Hans"),
        ("swh_Latn", "eng_Latn"),
    ]


def test_instructions_carry_the_reference_and_provenance(small_flores):
    task = TranslationTask(["zho_Hans", "eng_Latn"], seed=3)
    table = generate(FloresSource(small_flores, splits=["dev"]), task, 100)
    assert table.num_rows == 4 * 10
    row = next(
        r
        for r in table.to_pylist()
        if r["direction"] == "swh_Latn-zho_Hans" and r["source_segment_id"] == "2"
    )
    assert row["messages"][1] == {"role": "assistant", "content": "我们今天吃了米饭。"}
    assert "Tulikula wali leo." in row["messages"][0]["content"]
    assert (row["src_lang"], row["tgt_lang"], row["task"]) == (
        "swh_Latn",
        "zho_Hans",
        "translation",
    )
    assert (row["source_corpus"], row["source_split"]) == ("flores200", "dev")
    assert len(set(table["id"].to_pylist())) == table.num_rows


def test_prompts_name_languages_in_the_prompt_language(small_flores):
    zh_only = TranslationTask(["zho_Hans", "eng_Latn"], prompt_languages={"zho_Hans": 1.0})
    table = generate(FloresSource(small_flores, splits=["dev"]), zh_only, 100)
    rows = [r for r in table.to_pylist() if r["direction"] == "swh_Latn-zho_Hans"]
    assert all(r["prompt_lang"] == "zho_Hans" for r in rows)
    assert all("斯瓦希里语" in r["messages"][0]["content"] for r in rows)
    en_only = TranslationTask(["zho_Hans", "eng_Latn"], prompt_languages={"eng_Latn": 1.0})
    table = generate(FloresSource(small_flores, splits=["dev"]), en_only, 100)
    rows = [r for r in table.to_pylist() if r["direction"] == "fra_Latn-zho_Hans"]
    prompts = [r["messages"][0]["content"] for r in rows]
    assert all("French" in p and "Simplified Chinese" in p for p in prompts)


def test_prompts_name_the_script_of_a_language_written_in_two(tmp_path):
    # zho_Hans and zho_Hant, ace_Arab and ace_Latn: each prompt names the one it means, even when
    # the other side of the pair is a language of its own (English).
    texts = {
        "eng_Latn": ["The river is long.", "We ate rice today."],
        "zho_Hans": ["这条河很长。", "我们今天吃了米饭。"],
        "zho_Hant": ["這條河很長。", "我們今天吃了米飯。"],
        "ace_Arab": ["ا", "ب"],
        "ace_Latn": ["Krueng panyang.", "Kamoe ka pajoh bu."],
    }
    root = write_flores(tmp_path / "flores", "dev", texts)
    names = {
        "eng_Latn": {"zho_Hant": "Traditional Chinese", "ace_Arab": "Acehnese (Arabic script)"},
        "zho_Hans": {"zho_Hant": "繁体中文", "ace_Arab": "亚齐语（阿拉伯字母）"},
    }
    for prompt_lang, expected in names.items():
        task = TranslationTask(
            ["zho_Hans", "eng_Latn"], ["zho_Hant", "ace_Arab"], prompt_languages={prompt_lang: 1}
        )
        rows = generate(FloresSource(root, splits=["dev"]), task, 100).to_pylist()
        for code, name in expected.items():
            mine = [r for r in rows if code in (r["src_lang"], r["tgt_lang"])]
            assert mine and all(name in r["messages"][0]["content"] for r in mine), code


def test_output_does_not_depend_on_batch_size(small_flores):
    source = FloresSource(small_flores)
    a = generate(source, TranslationTask(["zho_Hans", "eng_Latn"], seed=9), 1)
    b = generate(source, TranslationTask(["zho_Hans", "eng_Latn"], seed=9), 1000)
    assert a.equals(b)
    c = generate(source, TranslationTask(["zho_Hans", "eng_Latn"], seed=10), 1000)
    assert a["template_id"].to_pylist() != c["template_id"].to_pylist()


def test_at_least_eight_templates_per_prompt_language():
    fields = frozenset({"src_name", "tgt_name", "src_text"})
    templates = bundled_templates("translation", fields, fields)
    assert set(templates.by_language) == {"zho_Hans", "eng_Latn"}
    for entries in templates.by_language.values():
        assert len(entries) >= 8
        assert len({t.user for t in entries}) == len(entries)


def test_prompt_language_mix_follows_the_shares(shared_corpora):
    source = FloresSource(
        shared_corpora / "flores200", languages=["eng_Latn", "zho_Hans", "swh_Latn"]
    )
    task = TranslationTask(
        ["zho_Hans", "eng_Latn"], prompt_languages={"zho_Hans": 0.8, "eng_Latn": 0.2}
    )
    table = generate(source, task, 500)
    shares = Counter(table["prompt_lang"].to_pylist())
    assert abs(shares["zho_Hans"] / table.num_rows - 0.8) < 0.03
    used = Counter(table["template_id"].to_pylist())
    assert len(used) == 20  # every template of both languages is used
