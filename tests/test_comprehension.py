from __future__ import annotations

import re
from collections import Counter

import pyarrow as pa
import pytest
from pydantic import ValidationError

from bayling_data.languages import registry
from bayling_data.sources import FloresSource
from bayling_data.sources.samples import sample_path
from bayling_data.tasks.base import TaskContext
from bayling_data.tasks.comprehension import (
    _ALL_FIELDS,
    TEMPLATE_KINDS,
    ComprehensionTask,
    ComprehensionTaskConfig,
    split_by_kind,
)
from bayling_data.tasks.templates import bundled_templates

PIVOTS = ["zho_Hans", "eng_Latn"]
YES = ("是", "Yes")
NO = ("否", "No")


def generate(source: FloresSource, task: ComprehensionTask, batch_rows: int) -> pa.Table:
    batches = [task(b) for b in source.iter_batches(batch_rows=batch_rows)]
    return pa.Table.from_batches(batches, schema=batches[0].schema)


def segments(source: FloresSource) -> dict[tuple[str, str], dict]:
    return {(r["split"], r["segment_id"]): r for r in source.to_table().to_pylist()}


def kind(row: dict) -> str:
    return row["template_id"].split("-")[1]


def test_explain_answer_is_the_pivot_text_of_the_segment(small_flores):
    source = FloresSource(small_flores)
    table = generate(source, ComprehensionTask(PIVOTS, kinds=["explain"], seed=2), 100)
    rows = table.to_pylist()
    assert rows and all(kind(r) == "explain" for r in rows)
    segs = segments(source)
    for r in rows:
        seg = segs[(r["source_split"], r["source_segment_id"])]
        assert r["messages"][1]["content"] == seg[r["tgt_lang"]] == r["tgt_text"]
        assert seg[r["src_lang"]] in r["messages"][0]["content"]
        assert r["prompt_lang"] == r["tgt_lang"] and r["tgt_lang"] in PIVOTS
    assert len({r["direction"] for r in rows}) == 4  # fra/swh x zho/eng


def test_identify_answer_holds_the_prompt_name_and_the_prompt_does_not():
    source = FloresSource(sample_path("flores200"))
    task = ComprehensionTask(PIVOTS, kinds=["identify_language"], seed=4)
    rows = generate(source, task, 50).to_pylist()
    assert rows
    reg = registry()
    for r in rows:
        name = reg.prompt_name(r["src_lang"], r["prompt_lang"])
        assert name in r["messages"][1]["content"]
        assert name not in r["messages"][0]["content"]
        assert r["src_lang"] not in PIVOTS and r["tgt_lang"] == r["prompt_lang"]
    assert {r["prompt_lang"] for r in rows} == set(PIVOTS)


def check_same_meaning(rows: list[dict], segs: dict, with_docs: bool) -> Counter:
    verdicts: Counter = Counter()
    by_text: dict[tuple[str, str], list[dict]] = {}
    for seg in segs.values():
        for code in PIVOTS:
            by_text.setdefault((code, seg[code]), []).append(seg)
    for r in rows:
        seg = segs[(r["source_split"], r["source_segment_id"])]
        own, shown = seg[r["tgt_lang"]], r["tgt_text"]
        answer = r["messages"][1]["content"]
        prompt = r["messages"][0]["content"]
        assert shown in prompt and seg[r["src_lang"]] in prompt
        yes = YES[0] if r["prompt_lang"] == "zho_Hans" else YES[1]
        no = NO[0] if r["prompt_lang"] == "zho_Hans" else NO[1]
        if shown == own:
            assert answer.startswith(yes)
            verdicts["yes"] += 1
        else:
            assert answer.startswith(no)
            partners = by_text[(r["tgt_lang"], shown)]
            assert all(p["segment_id"] != seg["segment_id"] for p in partners)
            if with_docs:
                assert any(p["doc_id"] == seg["doc_id"] for p in partners)
            verdicts["no"] += 1
    return verdicts


def test_same_meaning_answers_follow_how_the_pair_was_made():
    source = FloresSource(sample_path("flores200"))
    task = ComprehensionTask(PIVOTS, kinds=["same_meaning"], seed=5)
    rows = generate(source, task, 10).to_pylist()
    verdicts = check_same_meaning(rows, segments(source), with_docs=True)
    assert abs(verdicts["yes"] / len(rows) - 0.5) < 0.05


def test_same_meaning_without_doc_ids_uses_earlier_segments(small_flores):
    source = FloresSource(small_flores)
    assert source.to_table()["doc_id"].null_count == source.to_table().num_rows
    task = ComprehensionTask(PIVOTS, kinds=["same_meaning"], seed=5)
    rows = generate(source, task, 3).to_pylist()
    verdicts = check_same_meaning(rows, segments(source), with_docs=False)
    assert verdicts["yes"] and verdicts["no"]
    # the first segment of a stream has no earlier segment: it never gets a mismatched pair
    firsts = [r for r in rows if r["source_segment_id"] == "1"]
    assert firsts
    segs = segments(source)
    for r in firsts:
        assert r["tgt_text"] == segs[(r["source_split"], "1")][r["tgt_lang"]]


@pytest.mark.parametrize("path", ["small", "sample"])
def test_output_does_not_depend_on_batch_size(small_flores, path):
    root = small_flores if path == "small" else sample_path("flores200")
    source = FloresSource(root)
    tables = [generate(source, ComprehensionTask(PIVOTS, seed=9), n) for n in (1, 7, 1000)]
    assert tables[0].num_rows > 0
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])
    assert {kind(r) for r in tables[0].to_pylist()} == {"explain", "identify", "same"}
    dev = [r["id"] for r in tables[0].to_pylist() if r["source_split"] == "dev"]
    assert len(set(dev)) == len(dev)  # devtest repeats dev sentences in the small corpus


def test_every_template_renders_for_every_language():
    templates = split_by_kind(
        bundled_templates("comprehension", frozenset(), _ALL_FIELDS), TEMPLATE_KINDS
    )
    for lang in PIVOTS:
        for name in TEMPLATE_KINDS:
            entries = templates[(lang, name)]
            assert len(entries) >= (8 if name in ("explain", "identify", "same") else 2)
            assert len({t.user for t in entries}) == len(entries)
    for language in registry():
        for (lang, _), entries in templates.items():
            name = language.name_zh if lang == "zho_Hans" else language.name_en
            for template in entries:
                text = template.render(
                    src_name=name, tgt_name=name, lang_name=name, src_text="s", tgt_text="t"
                )
                assert not re.search(r"\{[a-z_]*\}", text), template.id
                assert "{" not in text and "}" not in text


def test_config_and_factory():
    config = ComprehensionTaskConfig.model_validate({"type": "comprehension"})
    assert config.kinds == ["explain", "identify_language", "same_meaning"]
    with pytest.raises(ValidationError):
        ComprehensionTaskConfig.model_validate({"type": "comprehension", "kinds": ["guess"]})
    with pytest.raises(ValidationError):
        ComprehensionTaskConfig.model_validate({"type": "comprehension", "kinds": []})
    config = ComprehensionTaskConfig.model_validate(
        {"type": "comprehension", "kinds": ["explain"], "prompt_languages": {"zh": 1.0}}
    )
    task = ComprehensionTask.from_config(config, TaskContext(PIVOTS, {"swh_Latn"}, seed=3))
    assert task.kinds == ("explain",) and task.seed == 3 and task.targets == {"swh_Latn"}
    assert task.prompt_languages == [("zho_Hans", 1.0)]
