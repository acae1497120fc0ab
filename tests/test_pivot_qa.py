from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from rich.console import Console

from bayling_data.errors import CorpusError
from bayling_data.languages import registry
from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe
from bayling_data.report import build_summary
from bayling_data.sources.samples import sample_path
from bayling_data.tasks.base import TaskContext
from bayling_data.tasks.pivot_qa import GROUPS, NO_CONTEXT, PivotQAConfig, PivotQATask

PIVOTS = ["zho_Hans", "eng_Latn"]
ITEMS = {
    "a": {
        "zho_Hans": ("一周有几天？", "七天。", "一周有七天。"),
        "eng_Latn": ("How many days in a week?", "Seven.", "A week has seven days."),
        "swh_Latn": ("Wiki ina siku ngapi?", "Saba.", "Wiki ina siku saba."),
    },
    "b": {  # no pivot version: skipped
        "swh_Latn": ("Buibui ana miguu mingapi?", "Minane.", None),
        "fra_Latn": ("Combien de pattes a une araignée ?", "Huit.", None),
    },
    "c": {  # a pivot but nothing to ask it in: skipped
        "zho_Hans": ("蜘蛛有几条腿？", "八条。", None),
    },
}


def write_items(path: Path, items: dict = ITEMS) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for item_id, versions in items.items():
            for lang, (question, answer, context) in versions.items():
                row = {"id": item_id, "lang": lang, "question": question, "answer": answer}
                if context:
                    row["context"] = context
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def run(task: PivotQATask) -> list[dict]:
    return pa.Table.from_batches(list(task.generate())).to_pylist()


def test_answers_are_the_items_own_versions(tmp_path):
    single_turn = ["answer_in_pivot", "answer_in_target", "pivot_step"]
    task = PivotQATask(
        write_items(tmp_path / "qa.jsonl"), PIVOTS, {"swh_Latn"}, seed=2, variants=single_turn
    )
    rows = run(task)
    assert task.details()["skipped"] == {"no_pivot": 1, "no_target": 1}
    assert task.stats.rows_in == 3 and task.stats.rows_out == len(rows)
    # item a: X in {swh, and each pivot asked through the other} x 3 variants
    assert len(rows) == 3 * 3
    for row in rows:
        assert row["task"] == "pivot_qa" and row["source_segment_id"] == "a"
        pivot, prompt, answer = row["prompt_lang"], *(m["content"] for m in row["messages"])
        assert row["direction"] == f"{row['src_lang']}-{row['tgt_lang']}"
        if row["template_id"].startswith("pqa-pivot"):
            x = row["src_lang"]
            assert row["tgt_lang"] == pivot and answer == ITEMS["a"][pivot][1]
            assert ITEMS["a"][x][0] in prompt
        elif row["template_id"].startswith("pqa-target"):
            x = row["tgt_lang"]
            assert row["src_lang"] == pivot and answer == ITEMS["a"][x][1]
            assert ITEMS["a"][pivot][0] in prompt
        else:
            x = row["src_lang"]
            assert row["template_id"].startswith("pqa-step") and row["tgt_lang"] == x
            assert ITEMS["a"][x][0] in prompt
            p_question, p_answer = ITEMS["a"][pivot][:2]
            assert p_question in answer and p_answer in answer
            assert answer.rstrip().endswith(ITEMS["a"][x][1])
        assert pivot != x
        assert registry().prompt_name(x, pivot) in prompt


def test_chat_variant_mixes_qa_turns_into_a_cross_lingual_chat(tmp_path):
    task = PivotQATask(
        write_items(tmp_path / "qa.jsonl"), PIVOTS, {"swh_Latn"}, seed=2, variants=["chat"]
    )
    rows = run(task)
    assert rows
    for row in rows:
        pivot, x = row["prompt_lang"], row["src_lang"]
        messages = row["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
        assert ITEMS["a"][x][0] in messages[0]["content"]
        assert messages[1]["content"] == ITEMS["a"][pivot][1]  # first answered in the pivot
        assert messages[3]["content"] == ITEMS["a"][x][1]  # then in the asked language
        assert row["tgt_lang"] == x and row["direction"] == f"{x}-{pivot}"
        assert "pqa-followup" in row["template_id"]


def test_context_in_the_asked_language(tmp_path):
    task = PivotQATask(
        write_items(tmp_path / "qa.jsonl"), PIVOTS, {"swh_Latn"}, context_field="context"
    )
    for row in run(task):
        asked = row["prompt_lang"] if "pqa-target" in row["template_id"] else row["src_lang"]
        assert ITEMS["a"][asked][2] in row["messages"][0]["content"]
        assert "pqa-ctx" in row["template_id"]


def test_variants_and_prompt_language_shares(tmp_path):
    path = write_items(tmp_path / "qa.jsonl")
    only = PivotQATask(
        path, PIVOTS, {"swh_Latn"}, variants=["answer_in_target"], prompt_languages={"eng_Latn": 1}
    )
    rows = run(only)
    assert {r["template_id"][:10] for r in rows} == {"pqa-target"}
    # eng is the only prompt language, so zho_Hans is asked through it as a target too
    assert sorted(r["tgt_lang"] for r in rows) == ["swh_Latn", "zho_Hans"]
    assert {r["prompt_lang"] for r in rows} == {"eng_Latn"}


def test_deterministic(tmp_path):
    path = write_items(tmp_path / "qa.jsonl")
    first = run(PivotQATask(path, PIVOTS, seed=5, batch_rows=1))
    second = run(PivotQATask(path, PIVOTS, seed=5))
    assert first == second
    assert len({r["id"] for r in first}) == len(first)


def test_templates_render_for_every_language():
    task = PivotQATask("unused", PIVOTS)
    for pivot in PIVOTS:
        groups = task.groups[pivot]
        assert all(len(groups[g]) >= 8 for g in ("pivot", "target", "step"))
        for lang in registry():
            if lang.code == pivot:
                continue
            names = {
                "lang_name": registry().prompt_name(lang.code, pivot),
                "pivot_name": registry().prompt_name(pivot, pivot),
            }
            assert names["lang_name"]
            for group, templates in groups.items():
                required, optional = GROUPS[group]
                values = dict.fromkeys(required | optional, "TEXT") | names
                for template in templates:
                    text = template.render(**{k: values[k] for k in required | optional})
                    assert "{" not in text and "}" not in text, template.id
                    if "lang_name" in required:
                        assert names["lang_name"] in text


def test_per_file_languages(tmp_path):
    for lang in ("zho_Hans", "swh_Latn"):
        rows = [{"id": "a", "q": ITEMS["a"][lang][0], "a": ITEMS["a"][lang][1]}]
        (tmp_path / f"qa.{lang}.json").write_text(json.dumps(rows, ensure_ascii=False), "utf-8")
    task = PivotQATask(
        str(tmp_path / "qa.*.json"),
        PIVOTS,
        language_field=None,
        languages={"*zho_Hans*": "zh", "*swh_Latn*": "swh_Latn"},
        question_field="q",
        answer_field="a",
        variants=["answer_in_pivot"],
    )
    [row] = run(task)
    assert row["messages"][1]["content"] == "七天。" and row["source_corpus"] == "qa.swh_Latn"


def test_errors_name_file_and_line(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"id": "a", "lang": "eng_Latn", "question": "q", "answer": "a"}\n{"id": \n')
    with pytest.raises(CorpusError, match=r"qa.jsonl:2: invalid JSON"):
        run(PivotQATask(path, PIVOTS))
    path.write_text('{"id": "a", "lang": "klingon", "question": "q", "answer": "a"}\n')
    with pytest.raises(CorpusError, match=r"qa.jsonl:1: "):
        run(PivotQATask(path, PIVOTS))
    path.write_text('{"id": "a", "lang": "eng_Latn", "question": "q"}\n')
    with pytest.raises(CorpusError, match=r"qa.jsonl:1: expected text"):
        run(PivotQATask(path, PIVOTS))


def test_bundled_sample_and_config():
    config = PivotQAConfig(type="pivot_qa", path="sample:qa", context_field="context")
    context = TaskContext(pivots=PIVOTS, targets={"swh_Latn", "fra_Latn"}, seed=0)
    task = PivotQATask.from_config(config, context)
    rows = run(task)
    assert task.details()["items"] == 10 and not task.details()["skipped"]
    assert len(rows) == 10 * 4 * 4  # items x asked languages x variants
    assert {r["src_lang"] for r in rows} == {"zho_Hans", "eng_Latn", "swh_Latn", "fra_Latn"}


def asked_language(row: dict) -> str:
    """The language whose version a row asks: the pivot's for answer_in_target, else X's."""
    return row["prompt_lang"] if row["template_id"].startswith("pqa-target") else row["src_lang"]


def sample_contexts() -> dict[tuple[str, str], str]:
    contexts = {}
    for line in sample_path("qa").read_text("utf-8").splitlines():
        row = json.loads(line)
        if row.get("context"):
            contexts[(row["id"], row["lang"])] = row["context"]
    return contexts


def test_the_bundled_sample_shows_every_passage_by_default():
    # The recipe's pivot_qa entry names no context_field: the default reads "context", and no
    # question of an item with a passage goes out without it (48 of 160 rows did).
    config = PivotQAConfig(type="pivot_qa", path="sample:qa")
    assert config.context_field == "context"
    context = TaskContext(pivots=PIVOTS, targets={"swh_Latn", "fra_Latn"}, seed=2024)
    task = PivotQATask.from_config(config, context)
    rows = run(task)
    contexts = sample_contexts()
    with_passage = {item for item, _ in contexts}
    asked = [r for r in rows if r["source_segment_id"] in with_passage]
    assert len(rows) == 160 and len(asked) == 48
    for row in asked:
        passage = contexts[(row["source_segment_id"], asked_language(row))]
        assert passage in row["messages"][0]["content"], row["template_id"]
        assert "+pqa-ctx-" in row["template_id"]
    for row in rows:
        if row["source_segment_id"] not in with_passage:
            assert "pqa-ctx" not in row["template_id"]
    assert task.details()["skipped"] == {} and task.details()["skipped_rows"] == {}


CTX_ITEMS = {
    "p": {  # the pivots have the passage, Swahili does not: only answer_in_target asks swh items
        "zho_Hans": ("面包师先卖什么？", "小面包。", "面包师最先卖小面包。"),
        "eng_Latn": ("What does the baker sell first?", "Rolls.", "The baker sells rolls first."),
        "swh_Latn": ("Mwokaji huuza nini kwanza?", "Mikate midogo.", None),
    },
    "q": {  # only English has it: every row asks the English version
        "zho_Hans": ("井为什么干了？", "因为旱季。", None),
        "eng_Latn": ("Why did the well dry up?", "The dry season.", "The well dried up."),
        "swh_Latn": ("Kwa nini kisima kilikauka?", "Kiangazi.", None),
    },
    "r": {  # only Swahili has it
        "zho_Hans": ("谁挖了井？", "村民。", None),
        "swh_Latn": ("Nani alichimba kisima?", "Wanakijiji.", "Wanakijiji walichimba kisima."),
    },
    "s": {  # the passage is in a language never asked: no row at all
        "zho_Hans": ("谁挖了井？", "村民。", None),
        "swh_Latn": ("Nani alichimba kisima?", "Wanakijiji.", None),
        "fra_Latn": ("Qui a creusé le puits ?", "Les villageois.", "Les villageois l'ont creusé."),
    },
}


def test_a_question_is_never_asked_without_its_passage(tmp_path):
    task = PivotQATask(write_items(tmp_path / "qa.jsonl", CTX_ITEMS), PIVOTS, {"swh_Latn"}, seed=3)
    rows = run(task)
    for row in rows:
        item = CTX_ITEMS[row["source_segment_id"]]
        passage = item[asked_language(row)][2]
        assert passage and passage in row["messages"][0]["content"], row["template_id"]
    per_item = Counter(r["source_segment_id"] for r in rows)
    assert per_item == {"p": 9, "q": 5, "r": 3}
    # p: swh asked by 3 variants; q: zho and swh asked by 3 each, eng's answer_in_target asks zho;
    # r: answer_in_target asks zho; s: the 4 variants of swh (zho has no pivot to be asked through).
    assert task.details()["skipped_rows"] == {NO_CONTEXT: 3 + 7 + 1 + 4}
    assert task.details()["skipped"] == {NO_CONTEXT: 1}
    # answer_in_target of q/swh goes through the one pivot whose version has the passage.
    [row] = [
        r
        for r in rows
        if r["source_segment_id"] == "q" and r["template_id"].startswith("pqa-target")
        if r["tgt_lang"] == "swh_Latn"
    ]
    assert row["prompt_lang"] == "eng_Latn"
    # Without a context field nothing is known of passages and nothing is skipped.
    blind = PivotQATask(tmp_path / "qa.jsonl", PIVOTS, {"swh_Latn"}, context_field=None)
    assert len(run(blind)) == 3 * 4 + 3 * 4 + 4 + 4  # p, q: 3 asked languages; r, s: swh
    assert blind.details()["skipped_rows"] == {}


def test_skips_reach_the_manifest_and_the_build_summary(tmp_path, small_flores):
    recipe = {
        "name": "qa_skips",
        "seed": 1,
        "pivot_languages": ["zho_Hans", "eng_Latn"],
        "target_languages": ["swh_Latn"],
        "sources": [{"type": "flores", "path": str(small_flores)}],
        "tasks": [{"type": "pivot_qa", "path": str(write_items(tmp_path / "qa.jsonl", CTX_ITEMS))}],
        "output": {"dir": str(tmp_path / "out"), "validation_fraction": 0},
        "execution": {"executor": "inprocess"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), "utf-8")
    report = run_build(load_recipe(path))
    [entry] = [e for e in report.manifest["funnel"] if e["name"] == "pivot_qa"]
    assert entry["details"]["skipped_rows"] == {NO_CONTEXT: 15}
    assert entry["details"]["skipped"] == {NO_CONTEXT: 1}
    console = Console(record=True, width=160)
    build_summary(report, console)
    text = console.export_text()
    assert "skipped by tasks" in text
    assert f"items: {NO_CONTEXT}" in text and f"rows: {NO_CONTEXT}" in text and "15" in text
