from __future__ import annotations

import unicodedata

import pyarrow as pa
import pytest

from bayling_data.filters.units import UNSPACED_SCRIPTS
from bayling_data.languages import registry
from bayling_data.sources import FloresSource
from bayling_data.tasks.base import TaskContext
from bayling_data.tasks.constrained import (
    ConstrainedTranslationTask,
    ConstrainedTranslationTaskConfig,
    draw_constraints,
)

PIVOTS = ["zho_Hans", "eng_Latn"]


def generate(source: FloresSource, task: ConstrainedTranslationTask, rows: int = 100) -> pa.Table:
    return pa.Table.from_batches([task(b) for b in source.iter_batches(batch_rows=rows)])


def constraints_of(row: dict, seed: int) -> list[str]:
    """The row's constraints, drawn again from its record, checked to be the ones in the prompt."""
    script = registry().get(row["tgt_lang"]).script
    record = (row["source_corpus"], row["source_split"], row["source_segment_id"])
    words = draw_constraints(
        row["tgt_text"], script, seed, "constraints", *record, row["src_lang"], row["tgt_lang"]
    )
    joiner = "、" if row["prompt_lang"] == "zho_Hans" else ", "
    assert joiner.join(words) in row["messages"][0]["content"]
    return words


def check_rows(table: pa.Table, seed: int) -> None:
    for row in table.to_pylist():
        answer = row["messages"][-1]["content"]
        assert answer == row["tgt_text"]
        assert row["task"] == "constrained_translation"
        assert row["template_id"].startswith(
            "ct-zh-" if row["prompt_lang"] == "zho_Hans" else "ct-en-"
        )
        words = constraints_of(row, seed)
        assert 1 <= len(words) <= 3
        for word in words:
            assert word in answer, (word, answer)


def is_clean(piece: str) -> bool:
    return all(unicodedata.category(c)[0] in "LM" for c in piece)


def test_small_flores_answers_contain_every_constraint(small_flores):
    task = ConstrainedTranslationTask(PIVOTS, seed=7)
    table = generate(FloresSource(small_flores, splits=["dev"]), task)
    assert table.num_rows == 4 * 10
    check_rows(table, 7)
    zh = [r for r in table.to_pylist() if r["tgt_lang"] == "zho_Hans"]
    assert all(2 <= len(w) <= 4 for r in zh for w in constraints_of(r, 7))
    assert task.details() is None  # every pair had a constraint


def test_output_does_not_depend_on_batch_size(small_flores):
    source = FloresSource(small_flores)
    a = generate(source, ConstrainedTranslationTask(PIVOTS, seed=3), 1)
    b = generate(source, ConstrainedTranslationTask(PIVOTS, seed=3), 1000)
    assert a.equals(b)


def test_draw_rules():
    assert draw_constraints("It is so. A b-c, 12 go!", "Latn", 1) == []
    for seed in range(30):
        words = draw_constraints("The quick, brown fox (jumps) over dogs.", "Latn", seed)
        assert 1 <= len(words) <= 3 and len(set(words)) == len(words)
        assert set(words) <= {"The", "quick", "brown", "fox", "jumps", "over", "dogs"}
        pieces = draw_constraints("我们今天吃了米饭，很好。", "Hans", seed)
        assert 1 <= len(pieces) <= 3
        assert all(2 <= len(p) <= 4 and is_clean(p) for p in pieces)
    assert draw_constraints("。，！", "Hans", 0) == []
    assert draw_constraints("好。", "Hans", 0) == []


def test_pairs_without_constraints_are_skipped_and_counted(tmp_path):
    from tests.conftest import write_flores

    root = write_flores(
        tmp_path / "flores",
        "dev",
        {"eng_Latn": ["The river is long.", "Go!"], "zho_Hans": ["这条河很长。", "走！"]},
    )
    task = ConstrainedTranslationTask(PIVOTS, seed=1)
    table = generate(FloresSource(root), task)
    assert table.num_rows == 2  # both directions of the first segment only
    assert task.details() == {"skipped_no_constraint": 2}
    assert task.stats.by_key["zho_Hans-eng_Latn"]["reasons"] == {"no_constraint": 1}


def test_from_config():
    config = ConstrainedTranslationTaskConfig(
        type="constrained_translation", directions=["to_pivot"], prompt_languages={"zh": 1}
    )
    task = ConstrainedTranslationTask.from_config(config, TaskContext(PIVOTS, {"swh_Latn"}, 5))
    assert task.name == "constrained_translation" and task.directions == ("to_pivot",)
    assert task.prompt_languages == [("zho_Hans", 1.0)]


def test_flores_dev_answers_contain_every_constraint(shared_corpora):
    folder = shared_corpora / "flores200"
    languages = sorted(p.name.split(".")[0] for p in (folder / "dev").glob("*.dev"))
    source = FloresSource(folder, languages=languages, splits=["dev"])
    task = ConstrainedTranslationTask(PIVOTS, seed=11)
    batch = next(source.iter_batches(batch_rows=60))
    table = task(batch)
    assert table.num_rows > 0.95 * 60 * 2 * (2 * (len(languages) - 2) + 1)
    check_rows(table, 11)
    for row in table.to_pylist():
        script = registry().get(row["tgt_lang"]).script
        for word in constraints_of(row, 11):
            assert is_clean(word)
            if script in UNSPACED_SCRIPTS:
                assert 2 <= len(word) <= 4
            else:
                assert sum(unicodedata.category(c)[0] == "L" for c in word) >= 3


@pytest.mark.parametrize("prompt_lang", ["zho_Hans", "eng_Latn"])
def test_constraints_are_joined_in_the_prompt_language_style(small_flores, prompt_lang):
    task = ConstrainedTranslationTask(PIVOTS, seed=2, prompt_languages={prompt_lang: 1.0})
    table = generate(FloresSource(small_flores, splits=["dev"]), task)
    other = ", " if prompt_lang == "zho_Hans" else "、"
    assert all(other not in r["messages"][0]["content"] for r in table.to_pylist())
    check_rows(table, 2)
