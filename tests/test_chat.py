from __future__ import annotations

import itertools
import re
from collections import Counter

import pyarrow as pa
import pytest
from pydantic import ValidationError

from bayling_data.languages import registry
from bayling_data.sources import FloresSource
from bayling_data.sources.samples import sample_path
from bayling_data.tasks.base import TaskContext
from bayling_data.tasks.chat import TEMPLATE_KINDS, ChatTask, ChatTaskConfig
from bayling_data.tasks.comprehension import split_by_kind
from bayling_data.tasks.templates import bundled_templates

PIVOTS = ["zho_Hans", "eng_Latn"]


def generate(source: FloresSource, task: ChatTask, batch_rows: int) -> pa.Table:
    batches = [task(b) for b in source.iter_batches(batch_rows=batch_rows)]
    return pa.Table.from_batches(batches, schema=batches[0].schema)


def sample() -> FloresSource:
    return FloresSource(sample_path("flores200"))


def test_chats_alternate_and_switch_languages():
    task = ChatTask(PIVOTS, seed=1)
    rows = generate(sample(), task, 7).to_pylist()
    assert {r["template_id"].split("-")[1] for r in rows} == {"first", "docfirst"}
    turns = Counter()
    for r in rows:
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        assert 2 <= len(roles) // 2 <= 4
        turns[len(roles) // 2] += 1
        languages = r["direction"].split("-")
        assert len(languages) >= 2 and len(set(languages)) == len(languages)
        assert (languages[0], r["src_lang"]) == (r["src_lang"], languages[0])
        assert r["task"] == "chat" and r["prompt_lang"] in PIVOTS
    assert set(turns) == {2, 3, 4}


def test_chain_answers_are_the_references_and_end_in_a_pivot():
    source = sample()
    segs = {(r["split"], r["segment_id"]): r for r in source.to_table().to_pylist()}
    rows = generate(source, ChatTask(PIVOTS, modes=["chain"], seed=2), 100).to_pylist()
    assert rows
    for r in rows:
        seg = segs[(r["source_split"], r["source_segment_id"])]
        path = r["direction"].split("-")
        answers = [m["content"] for m in r["messages"][1::2]]
        assert answers == [seg[code] for code in path[1:]]
        assert r["tgt_lang"] == path[-1] and r["tgt_lang"] in PIVOTS
        assert r["src_lang"] not in PIVOTS
        assert seg[r["src_lang"]] in r["messages"][0]["content"]
        assert (r["src_text"], r["tgt_text"]) == (seg[r["src_lang"]], answers[-1])
    # the user's prompt language may switch between the pivots inside one chat
    assert any(
        ("Translate" in c or "translate" in c) and any("\u4e00" <= ch <= "\u9fff" for ch in d)
        for r in rows
        for c, d in [(r["messages"][0]["content"], r["messages"][2]["content"])]
    )


def test_document_chats_keep_the_sentence_order_of_their_document():
    source = sample()
    table = source.to_table().to_pylist()
    rows = generate(source, ChatTask(PIVOTS, modes=["document"], seed=3), 5).to_pylist()
    assert rows
    position = {(r["split"], r["segment_id"]): i for i, r in enumerate(table)}
    for r in rows:
        src, tgt = r["src_lang"], r["tgt_lang"]
        assert r["direction"] == f"{src}-{tgt}"
        start = position[(r["source_split"], r["source_segment_id"])]
        n = len(r["messages"]) // 2
        window = table[start : start + n]
        assert len({seg["doc_id"] for seg in window}) == 1 and window[0]["doc_id"]
        users = [m["content"] for m in r["messages"][0::2]]
        answers = [m["content"] for m in r["messages"][1::2]]
        assert answers == [seg[tgt] for seg in window]
        assert all(seg[src] in user for seg, user in zip(window, users, strict=True))
        assert r["src_text"] == "\n".join(seg[src] for seg in window)
    # documents of 4 sentences fit one window of max_turns=4, and are cut at max_turns=3
    assert {len(r["messages"]) // 2 for r in rows} == {4}
    short = generate(source, ChatTask(PIVOTS, modes=["document"], max_turns=3), 1000)
    assert {len(m) // 2 for m in short["messages"].to_pylist()} == {2}


def test_windows_are_consecutive_and_bounded():
    task = ChatTask(PIVOTS, min_turns=2, max_turns=4)
    assert task.windows(1) == []
    assert task.windows(4) == [(0, 4)]
    assert task.windows(5) == [(0, 2), (2, 5)]
    assert task.windows(9) == [(0, 3), (3, 6), (6, 9)]
    for length in range(2, 40):
        windows = task.windows(length)
        assert windows[0][0] == 0 and windows[-1][1] == length
        assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
        assert all(2 <= b - a <= 4 for a, b in windows)


@pytest.mark.parametrize("modes", [["chain"], ["document"], ["chain", "document"]])
def test_output_does_not_depend_on_batch_size(modes):
    source = sample()
    tables = [generate(source, ChatTask(PIVOTS, modes=modes, seed=9), n) for n in (1, 7, 1000)]
    assert tables[0].num_rows > 0
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])
    assert len(set(tables[0]["id"].to_pylist())) == tables[0].num_rows


def test_every_template_renders_for_every_language():
    allowed = frozenset().union(*(a for _, a in TEMPLATE_KINDS.values()))
    templates = split_by_kind(bundled_templates("chat", frozenset(), allowed), TEMPLATE_KINDS)
    for lang in PIVOTS:
        assert len(templates[(lang, "first")]) >= 8 and len(templates[(lang, "docfirst")]) >= 8
        for kind in ("next", "back", "docnext"):
            assert len(templates[(lang, kind)]) >= 8
    for language in registry():
        for (lang, _), entries in templates.items():
            name = language.name_zh if lang == "zho_Hans" else language.name_en
            for template in entries:
                text = template.render(src_name=name, tgt_name=name, src_text="s")
                assert not re.search(r"\{[a-z_]*\}", text), template.id
                assert "{" not in text and "}" not in text


def test_config_and_factory():
    config = ChatTaskConfig.model_validate({"type": "chat"})
    assert (config.modes, config.min_turns, config.max_turns) == (["chain", "document"], 2, 4)
    for bad in ({"modes": ["tree"]}, {"min_turns": 1}, {"min_turns": 5, "max_turns": 3}):
        with pytest.raises(ValidationError):
            ChatTaskConfig.model_validate({"type": "chat", **bad})
    config = ChatTaskConfig.model_validate({"type": "chat", "modes": ["chain"], "max_turns": 6})
    task = ChatTask.from_config(config, TaskContext(PIVOTS, {"swh_Latn"}, seed=3))
    assert (task.modes, task.max_turns, task.seed) == (("chain",), 6, 3)
