from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from conftest import SENTENCES, write_flores
from pydantic import ValidationError

from bayling_data.filters.decontaminate import Decontaminate, DecontaminateConfig
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
