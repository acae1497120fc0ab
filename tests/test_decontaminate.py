from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import REPO, SAMPLE_RECIPE, SENTENCES, write_flores
from pydantic import ValidationError

from bayling_data.errors import BaylingError
from bayling_data.filters.decontaminate import Decontaminate, DecontaminateConfig
from bayling_data.filters.matching import match_key, match_words
from bayling_data.pipeline import build_stages
from bayling_data.recipe import load_recipe
from bayling_data.schema import segment_languages, segment_schema
from bayling_data.sources import FloresSource, WmtSource
from bayling_data.sources.samples import sample_path

EVAL_EN = (
    "On Monday, scientists from the Stanford University School of Medicine announced the "
    "invention of a new diagnostic tool that can sort cells by type."
)
EVAL_ZH = "周一，斯坦福大学医学院的科学家宣布，他们发明了一种可以将细胞按类型分类的新型诊断工具。"


def segments(texts: dict[str, list[str | None]], corpus: str = "train", split: str = "train"):
    n = len(next(iter(texts.values())))
    return pa.RecordBatch.from_pydict(
        {
            "corpus": [corpus] * n,
            "split": [split] * n,
            "segment_id": [str(i + 1) for i in range(n)],
            "doc_id": [None] * n,
            **texts,
        },
        schema=segment_schema(list(texts)),
    )


def held_out_eval_set(folder: Path, english: list[str], held: list[int]) -> Path:
    """A Flores-layout folder holding only the held-out ids' English lines, as devtest."""
    return write_flores(folder, "devtest", {"eng_Latn": [english[i - 1] for i in held]})


def check_held_out_rows_removed(training: FloresSource, held: list[int], step: Decontaminate):
    """No row of a held-out id survives in any language; every other row is untouched."""
    before = training.to_table()
    after = pa.Table.from_batches([step(batch) for batch in training.iter_batches(batch_rows=100)])
    languages = segment_languages(before.schema)
    held_ids = {str(i) for i in held}
    for lang in languages:
        for segment_id, old, new in zip(
            after["segment_id"].to_pylist(),
            before[lang].to_pylist(),
            after[lang].to_pylist(),
            strict=True,
        ):
            assert new == (None if segment_id in held_ids else old), (lang, segment_id)
    assert sum(step.removed_by_eval_set.values()) == len(held)
    for lang in languages:
        assert step.stats.by_key[lang]["dropped"] == len(held)


# -- the acceptance check --------------------------------------------------------------------------


def test_flores_dev_with_held_out_ids(shared_corpora: Path, tmp_path: Path):
    root = shared_corpora / "flores200"
    english = (root / "dev" / "eng_Latn.dev").read_text("utf-8").splitlines()
    held = list(range(1, len(english) + 1, 10))
    eval_root = held_out_eval_set(tmp_path / "eval", english, held)
    step = Decontaminate([FloresSource(eval_root)])
    check_held_out_rows_removed(FloresSource(root), held, step)
    assert step.removed_by_eval_set == {"flores200:devtest": len(held)}
    reasons = step.stats.by_key["swh_Latn"]["reasons"]
    assert reasons == {"contaminated: flores200:devtest": len(held)}


def test_bundled_multiway_sample_with_held_out_ids(tmp_path: Path):
    root = sample_path("flores200")
    english = (root / "dev" / "eng_Latn.dev").read_text("utf-8").splitlines()
    held = [2, 5, 11, 17, 30, 64]
    eval_root = held_out_eval_set(tmp_path / "eval", english, held)
    step = Decontaminate([("flores-heldout", FloresSource(eval_root))])
    check_held_out_rows_removed(FloresSource(root, splits=["dev"]), held, step)
    assert step.removed_by_eval_set == {"flores-heldout": len(held)}


def test_hand_made_multiway_corpus_with_a_chinese_eval_set(tmp_path: Path):
    train = write_flores(tmp_path / "train", "dev", SENTENCES)
    evaluation = write_flores(tmp_path / "eval", "devtest", {"zho_Hans": ["雨下了一整夜！"]})
    step = Decontaminate([FloresSource(evaluation)])
    out = pa.Table.from_batches([step(batch) for batch in FloresSource(train).iter_batches()])
    for lang in SENTENCES:
        assert out[lang].to_pylist() == [
            None if i == 2 else text for i, text in enumerate(SENTENCES[lang])
        ]
    assert step.removed_by_eval_set == {"flores200:devtest": 1}


# -- matching rules --------------------------------------------------------------------------------


def fitted(eval_texts: dict[str, list[str]], tmp_path: Path, **options) -> Decontaminate:
    step = Decontaminate(
        [FloresSource(write_flores(tmp_path / "ev", "devtest", eval_texts))], **options
    )
    step.setup()
    return step


def survivors(step: Decontaminate, texts: dict[str, list[str | None]]) -> list[bool]:
    out = step.process(segments(texts))
    return [any(out[lang][i].is_valid for lang in texts) for i in range(out.num_rows)]


def test_ngram_overlap_catches_an_embedded_eval_sentence_with_edited_ends(tmp_path: Path):
    step = fitted({"eng_Latn": [EVAL_EN], "zho_Hans": [EVAL_ZH]}, tmp_path)
    embedded = "Reportedly, " + EVAL_EN.replace("type.", "kind, a spokesman said.")
    seven_words = "Researchers from the Stanford University School of Medicine met on Friday."
    assert survivors(step, {"eng_Latn": [embedded, seven_words]}) == [False, True]
    zh_embedded = "据报道，" + EVAL_ZH[2:-4] + "设备。"
    zh_short_overlap = "斯坦福大学医学院的科学家今天休息。"
    assert survivors(step, {"zho_Hans": [zh_embedded, zh_short_overlap]}) == [False, True]
    exact_only = fitted({"eng_Latn": [EVAL_EN]}, tmp_path / "x", methods=["exact"])
    assert survivors(exact_only, {"eng_Latn": [embedded, EVAL_EN]}) == [True, False]


def test_normalized_exact_match_catches_case_space_and_punctuation_variants(tmp_path: Path):
    step = fitted({"eng_Latn": ["The bus is late."], "zho_Hans": ["雨下了一整夜。"]}, tmp_path)
    texts = {
        "eng_Latn": ["THE  bus, is LATE!!", "The bus is early.", None, "Ｔｈｅ bus is late"],
        "zho_Hans": [None, None, "雨下了 一整夜！", None],
    }
    assert survivors(step, texts) == [False, True, False, False]


def test_short_eval_sentences_are_left_out_of_exact_matching(tmp_path: Path):
    eval_texts = {"eng_Latn": ["Thank you.", "We ate rice today."]}
    step = fitted(eval_texts, tmp_path)
    assert survivors(step, {"eng_Latn": ["Thank you!", "we ate rice today"]}) == [True, False]
    every = fitted(eval_texts, tmp_path / "x", exact_min_tokens=1)
    assert survivors(every, {"eng_Latn": ["Thank you!"]}) == [False]


def test_same_corpus_split_and_segment_id_match_without_shared_text(tmp_path: Path):
    train = write_flores(tmp_path / "train", "devtest", SENTENCES)
    evaluation = write_flores(tmp_path / "eval", "devtest", {"eng_Latn": ["unrelated"] * 4})
    step = Decontaminate([FloresSource(evaluation)])
    swahili_only = FloresSource(train, languages=["swh_Latn"])
    out = pa.Table.from_batches([step(batch) for batch in swahili_only.iter_batches()])
    assert out["swh_Latn"].null_count == 4
    no_ids = Decontaminate([FloresSource(evaluation)], methods=["exact", "ngram"])
    out = pa.Table.from_batches([no_ids(batch) for batch in swahili_only.iter_batches()])
    assert out["swh_Latn"].null_count == 0


def test_wmt_eval_set_and_counts_per_eval_set(tmp_path: Path):
    wmt = tmp_path / "wmt"
    wmt.mkdir()
    (wmt / "generaltest2022.zh-en.src.zh").write_text(f"{EVAL_ZH}\n这条河很长。\n", "utf-8")
    (wmt / "generaltest2022.zh-en.ref.A.en").write_text(f"{EVAL_EN}\nThe river is long.\n")
    flores = write_flores(tmp_path / "ev", "devtest", {"eng_Latn": ["We ate rice today."]})
    step = Decontaminate(
        [FloresSource(flores), WmtSource(wmt / "generaltest2022.zh-en")], methods=["exact"]
    )
    step.setup()
    texts = {
        "eng_Latn": [EVAL_EN, "We ate rice today.", "The bus is late.", None],
        "zho_Hans": ["不相关的句子。", "我们今天吃了米饭。", "公交车晚点了。", "这条河很长"],
    }
    out = step.process(segments(texts))
    assert out["eng_Latn"].to_pylist() == [None, None, "The bus is late.", None]
    assert out["zho_Hans"].to_pylist() == [None, None, "公交车晚点了。", None]
    assert step.removed_by_eval_set == {"flores200:devtest": 1, "generaltest2022:test": 2}
    assert step.stats.by_key["eng_Latn"] == {
        "in": 3,
        "dropped": 2,
        "reasons": {"contaminated: flores200:devtest": 1, "contaminated: generaltest2022:test": 1},
    }
    assert step.stats.by_key["zho_Hans"]["dropped"] == 3


def test_config_flat_and_nested_eval_sets(tmp_path: Path):
    flores = write_flores(tmp_path / "ev", "devtest", {"eng_Latn": ["We ate rice today."]})
    config = DecontaminateConfig.model_validate(
        {
            "type": "decontaminate",
            "eval_sets": [
                {"type": "flores", "path": str(flores), "splits": ["devtest"], "name": "fl"},
                {"source": {"type": "flores", "path": str(flores)}},
            ],
            "word_ngram": 10,
        }
    )
    assert [entry.name for entry in config.eval_sets] == ["fl", None]
    step = Decontaminate.from_config(config)
    step.setup()
    assert step.eval_names == ["fl", "flores200:devtest"]
    assert survivors(step, {"eng_Latn": ["we ate rice today"]}) == [False]
    assert step.removed_by_eval_set == {"fl": 1, "flores200:devtest": 0}
    with pytest.raises(ValidationError):
        DecontaminateConfig.model_validate({"type": "decontaminate", "eval_sets": []})
    with pytest.raises(ValidationError):
        DecontaminateConfig.model_validate(
            {"type": "decontaminate", "eval_sets": [{"type": "nope", "path": "x"}]}
        )
    with pytest.raises(ValidationError):
        DecontaminateConfig.model_validate(
            {"type": "decontaminate", "eval_sets": [{"type": "flores", "path": "x", "bad": 1}]}
        )


# -- language-independent keys and units -----------------------------------------------------------


def test_match_key_ignores_hyphens_apostrophes_and_spacing():
    texts = pa.array(
        [
            "A well-known fact, don't forget.",
            "a wellknown fact dont forget",
            "A well known FACT; don\u2019t  forget!",
        ]
    )
    assert len(set(match_key(texts).to_pylist())) == 1
    assert match_words(pa.array(["Don\u2019t re-use it"])).to_pylist() == ["dont reuse it"]


def test_hyphen_and_apostrophe_removal_is_caught_in_short_sentences(tmp_path: Path):
    step = fitted({"eng_Latn": ["A well-known singer's car-free day."]}, tmp_path)
    texts = ["A wellknown singers carfree day", "A well known singer s car free day."]
    assert survivors(step, {"eng_Latn": texts}) == [False, False]


def test_a_sentence_in_another_languages_column_is_keyed_by_its_own_text(tmp_path: Path):
    # Keyed by the column's language, Chinese in the English column (or English in the Chinese
    # one) escaped both the exact and the n-gram rule.
    step = fitted({"eng_Latn": [EVAL_EN], "zho_Hans": [EVAL_ZH]}, tmp_path)
    assert survivors(step, {"eng_Latn": [EVAL_ZH, None], "zho_Hans": [None, EVAL_EN]}) == [
        False,
        False,
    ]
    edited_zh = EVAL_ZH.replace("斯坦福", "哈佛大")
    edited_en = EVAL_EN.replace("Monday", "Friday")
    texts = {"swh_Latn": [edited_zh, "Mvua ilinyesha usiku kucha."], "jpn_Jpan": [None, edited_en]}
    assert survivors(step, texts) == [False, False]


def test_edited_copies_share_most_of_the_eval_sentences_ngrams(tmp_path: Path):
    step = fitted({"eng_Latn": [EVAL_EN], "zho_Hans": [EVAL_ZH]}, tmp_path)
    words = EVAL_EN.split()
    every_sixth = " ".join("banana" if i % 6 == 5 else w for i, w in enumerate(words))
    first_half = " ".join(words[: len(words) // 2])
    one_word = EVAL_EN.replace("diagnostic", "medical")
    zh_every_sixth = "".join("好" if i % 12 in (10, 11) else c for i, c in enumerate(EVAL_ZH))
    texts = {"eng_Latn": [every_sixth, first_half, one_word, None, None]}
    texts["zho_Hans"] = [None, None, None, zh_every_sixth, EVAL_ZH[: len(EVAL_ZH) // 2]]
    assert survivors(step, texts) == [False] * 5
    unrelated = [
        "Scientists from the university announced on Monday that the tool is new.",
        "The School of Medicine is a new building.",
    ]
    assert survivors(step, {"eng_Latn": unrelated}) == [True, True]


def test_ngrams_common_to_many_eval_rows_are_not_evidence(tmp_path: Path):
    eval_texts = [f"in the middle of the night number {i} came" for i in range(10)]
    strict = fitted({"eng_Latn": eval_texts}, tmp_path / "a", ngram_max_df=5)
    loose = fitted({"eng_Latn": eval_texts}, tmp_path / "b", ngram_max_df=50)
    side = ["It happened in the middle of the night."]
    assert survivors(strict, {"eng_Latn": side}) == [True]
    assert survivors(loose, {"eng_Latn": side}) == [False]
    assert len(strict._ngrams.common) > 0


# -- the planted-leak benchmark, smaller -----------------------------------------------------------


def _leak_benchmark():
    if "decontam_leaks" in sys.modules:
        return sys.modules["decontam_leaks"]
    spec = importlib.util.spec_from_file_location(
        "decontam_leaks", REPO / "benchmarks" / "decontam_leaks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["decontam_leaks"] = module
    spec.loader.exec_module(module)
    return module


def test_planted_leaks_in_a_moses_pair_and_a_tsv_corpus(tmp_path: Path):
    bench = _leak_benchmark()
    step = bench.eval_step()
    assert step.eval_sentences == 14 * 24
    result = bench.run_plants(step, bench.plant(tmp_path, clean_rows=300))
    for kind in bench.KINDS:
        assert result.planted[kind] > 0, kind
    assert {kind: result.leaked[kind] for kind in bench.EXACT_KINDS} == dict.fromkeys(
        bench.EXACT_KINDS, 0
    )
    assert result.leak_rate(bench.EDITED_KINDS) <= 0.05
    clean_lines = len((bench.clean_dev_folder() / "eng_Latn.dev").read_text("utf-8").splitlines())
    assert result.clean == 2 * min(300, clean_lines)  # both corpora
    assert result.clean_dropped <= max(1, 0.001 * result.clean)


def test_clean_flores_dev_in_every_language_is_not_flagged(shared_corpora: Path):
    bench = _leak_benchmark()
    dev = shared_corpora / "flores200" / "dev"
    flagged, checked, _ = bench.dev_false_positives(bench.eval_step(), dev)
    assert checked == 204 * 997
    assert flagged <= 0.001 * checked


# -- where eval sets come from ---------------------------------------------------------------------


def test_eval_sets_is_optional_but_some_eval_data_is_required():
    config = DecontaminateConfig.model_validate(
        {"type": "decontaminate", "source_splits": ["devtest"]}
    )
    assert config.eval_sets == [] and config.eval_dirs == []
    with pytest.raises(ValidationError, match="source_splits"):
        DecontaminateConfig.model_validate({"type": "decontaminate"})


def test_source_splits_hold_out_the_devtest_of_the_recipes_flores_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("BAYLING_TEST_EVAL_DIR", raising=False)
    without_devtest = write_flores(tmp_path / "only_dev", "dev", SENTENCES)
    recipe = load_recipe(
        SAMPLE_RECIPE,
        [
            "sources=[{type: flores, path: 'sample:flores200', splits: [dev]}, "
            f"{{type: flores, path: {without_devtest}}}, "
            "{type: tsv, path: x.tsv, columns: {en: 0, fr: 1}}]",
            "filters=[{type: decontaminate, source_splits: [devtest], "
            'eval_dirs: ["${BAYLING_TEST_EVAL_DIR:-}"]}]',
        ],
    )
    (step,) = build_stages(recipe, ["eng_Latn"], {"zho_Hans"}).segment_filters
    assert isinstance(step, Decontaminate)
    assert len(step.eval_sets) == 1
    assert step.eval_sets_found == [
        "source_splits: devtest of sources.0 (sample:flores200): flores200:devtest, 14 languages"
    ]
    assert step.eval_sets_missing == [
        f"source_splits: devtest of sources.1 ({without_devtest}): no devtest split there"
    ]
    step.setup()
    assert step.eval_names == ["flores200:devtest"] and step.eval_sentences == 14 * 24
    devtest = FloresSource(sample_path("flores200"), splits=["devtest"], corpus="copy")
    out = pa.Table.from_batches([step(batch) for batch in devtest.iter_batches()])
    assert out["eng_Latn"].null_count == out.num_rows


def test_moving_the_flores_source_moves_the_eval_set(tmp_path: Path):
    moved = write_flores(tmp_path / "flores", "dev", SENTENCES)
    write_flores(moved, "devtest", {"eng_Latn": ["We ate rice today."]})
    recipe = load_recipe(
        SAMPLE_RECIPE,
        [
            f"sources.0.path={moved}",
            "filters=[{type: decontaminate, source_splits: [devtest]}]",
        ],
    )
    (step,) = build_stages(recipe, ["eng_Latn"], {"zho_Hans"}).segment_filters
    step.setup()
    assert step.eval_sentences == 1
    assert survivors(step, {"eng_Latn": ["we ate rice today", "The bus is late."]}) == [
        False,
        True,
    ]
    bare = write_flores(tmp_path / "bare", "dev", SENTENCES)
    recipe = load_recipe(
        SAMPLE_RECIPE,
        [f"sources.0.path={bare}", "filters=[{type: decontaminate, source_splits: [devtest]}]"],
    )
    (step,) = build_stages(recipe, ["eng_Latn"], {"zho_Hans"}).segment_filters
    assert step.eval_sets == [] and len(step.eval_sets_missing) == 1
    step.setup()
    assert survivors(step, {"eng_Latn": ["We ate rice today."]}) == [True]


def write_eval_dir(root: Path) -> Path:
    write_flores(root / "flores101_dataset", "dev", {"eng": ["Not held out at all today."]})
    write_flores(root / "flores101_dataset", "devtest", {"eng": ["We ate rice today."]})
    sgm = root / "wmt14"
    sgm.mkdir(parents=True)
    for side, lang, text in (("src", "de", "Der Fluss ist lang."), ("ref", "en", EVAL_EN)):
        (sgm / f"newstest2014-deen-{side}.{lang}.sgm").write_text(
            f'<{side}set setid="newstest2014" srclang="any">\n<doc docid="d1">\n'
            f'<seg id="1">{text}</seg>\n</doc>\n</{side}set>\n',
            "utf-8",
        )
    sources, references = root / "wmt22" / "sources", root / "wmt22" / "references"
    sources.mkdir(parents=True)
    references.mkdir(parents=True)
    (sources / "generaltest2022.zh-en.src.zh").write_text(f"{EVAL_ZH}\n", "utf-8")
    (references / "generaltest2022.zh-en.ref.A.en").write_text("The river is long.\n", "utf-8")
    (sources / "generaltest2022.en-zh.src.en").write_text("The bus is late again.\n", "utf-8")
    (references / "generaltest2022.en-zh.ref.A.zh").write_text("公交车又晚点了。\n", "utf-8")
    (sources / "generaltest2022.cs-en.src.cs").write_text("Řeka je dlouhá.\n", "utf-8")
    return root


def test_eval_dirs_find_flores_devtest_and_wmt_sets(tmp_path: Path):
    root = write_eval_dir(tmp_path / "eval")
    config = DecontaminateConfig.model_validate(
        {"type": "decontaminate", "eval_dirs": ["", str(root)], "methods": ["exact", "ngram"]}
    )
    step = Decontaminate.from_config(config)
    step.setup()
    assert step.eval_names == [
        "flores101:devtest",
        "newstest2014:deu_Latn-eng_Latn",
        "generaltest2022:eng_Latn-zho_Hans",
        "generaltest2022:zho_Hans-eng_Latn",
    ]
    assert len(step.eval_sets_missing) == 1 and "cs-en.src.cs" in step.eval_sets_missing[0]
    texts = {
        "eng_Latn": ["We ate rice today", EVAL_EN, "the bus is late again", None, "Hello there."],
        "zho_Hans": [None, None, None, EVAL_ZH, None],
    }
    assert survivors(step, texts) == [False, False, False, False, True]
    assert sum(step.removed_by_eval_set.values()) == 4


def test_eval_dirs_errors_and_empty_folders(tmp_path: Path):
    config = DecontaminateConfig.model_validate(
        {"type": "decontaminate", "eval_dirs": [str(tmp_path / "nope")]}
    )
    with pytest.raises(BaylingError, match=r"eval_dirs\.0: .*nope: no such folder"):
        Decontaminate.from_config(config)
    (tmp_path / "empty").mkdir()
    config = DecontaminateConfig.model_validate(
        {"type": "decontaminate", "eval_dirs": [str(tmp_path / "empty")]}
    )
    step = Decontaminate.from_config(config)
    assert step.eval_sets == []
    assert step.eval_sets_missing == [
        f"eval_dirs.0: {tmp_path / 'empty'}: no Flores devtest or WMT test set"
    ]
