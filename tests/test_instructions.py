from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest

from bayling_data.errors import CorpusError
from bayling_data.tasks.base import TaskContext
from bayling_data.tasks.instructions import (
    PivotInstructionsConfig,
    PivotInstructionsTask,
    iter_json_records,
)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def run(task: PivotInstructionsTask) -> list[dict]:
    return pa.Table.from_batches(list(task.generate())).to_pylist()


def test_alpaca(tmp_path):
    path = write_jsonl(
        tmp_path / "alpaca_zh.jsonl",
        [
            {"instruction": "翻一下", "input": "cat", "output": "猫"},
            {"instruction": "说个数", "input": "", "output": "七"},
            {"instruction": "没有答案", "input": "", "output": "  "},
            {"prompt": "wrong keys"},
        ],
    )
    task = PivotInstructionsTask(path, "zh")
    rows = run(task)
    assert [r["messages"] for r in rows] == [
        [{"role": "user", "content": "翻一下\n\ncat"}, {"role": "assistant", "content": "猫"}],
        [{"role": "user", "content": "说个数"}, {"role": "assistant", "content": "七"}],
    ]
    first = rows[0]
    assert first["task"] == "pivot_instructions" and first["direction"] == "zho_Hans-zho_Hans"
    assert first["src_lang"] == first["tgt_lang"] == first["prompt_lang"] == "zho_Hans"
    assert first["template_id"] == "alpaca" and first["source_corpus"] == "alpaca_zh"
    assert [r["source_segment_id"] for r in rows] == ["0", "1"]
    assert task.details() == {
        "items_read": 4,
        "skipped": {"empty_message": 1, "missing_field": 1},
    }
    assert task.stats.rows_in == 4 and task.stats.rows_out == 2


def test_sharegpt_as_json_array(tmp_path):
    items = [
        {
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "Hi"},
                {"from": "gpt", "value": "Hello!"},
                {"from": "human", "value": "Bye"},
                {"from": "gpt", "value": "Bye!"},
            ]
        },
        {"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]},
        {"conversations": [{"from": "human", "value": "unanswered"}]},
        {"conversations": [{"from": "gpt", "value": "first"}, {"from": "human", "value": "x"}]},
        {"conversations": [{"from": "bot", "value": "?"}]},
    ]
    path = tmp_path / "chat_en.json"
    path.write_text(json.dumps(items, indent=2), "utf-8")
    task = PivotInstructionsTask(path, "eng_Latn", format="sharegpt")
    [row] = run(task)
    assert [m["role"] for m in row["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert row["template_id"] == "sharegpt" and row["source_corpus"] == "chat_en"
    assert task.details()["skipped"] == {
        "no_answer": 2,
        "not_alternating": 1,
        "unknown_role": 1,
    }


def test_messages_gzip_glob_and_max_items(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(5)
    ]
    for name in ("a", "b"):
        with gzip.open(tmp_path / f"{name}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    task = PivotInstructionsTask(str(tmp_path / "*.jsonl.gz"), "en", format="messages")
    out = run(task)
    assert len(out) == 10 and {r["source_corpus"] for r in out} == {"a", "b"}
    capped = run(
        PivotInstructionsTask(str(tmp_path / "*.jsonl.gz"), "en", format="messages", max_items=7)
    )
    assert len(capped) == 7 and capped == out[:7]


def test_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n\n{"instruction": \n', "utf-8")
    with pytest.raises(CorpusError, match=r"bad.jsonl:3: invalid JSON"):
        run(PivotInstructionsTask(path, "en"))
    array = tmp_path / "bad.json"
    array.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": oops}\n]')
    with pytest.raises(CorpusError, match=r"bad.json:3: invalid JSON"):
        run(PivotInstructionsTask(array, "en"))
    path.write_text('[1, 2]\n"text"\n', "utf-8")
    with pytest.raises(CorpusError, match=r"bad.jsonl:1: expected a JSON object"):
        run(PivotInstructionsTask(path, "en"))
    write_jsonl(path, [{"instruction": "a", "output": "b"}])
    with pytest.raises(CorpusError, match=r"bad.jsonl:1: no item has the fields of format"):
        run(PivotInstructionsTask(path, "en", format="sharegpt"))


def test_array_line_numbers(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('[{"a": 1},\n {"a": 2},\n\n {"a": [\n 3]}]\n', "utf-8")
    assert list(iter_json_records(path)) == [(1, {"a": 1}), (2, {"a": 2}), (4, {"a": [3]})]


@pytest.mark.parametrize(("name", "language"), [("zh", "zho_Hans"), ("en", "eng_Latn")])
def test_bundled_samples_load(name, language):
    config = PivotInstructionsConfig(
        type="pivot_instructions", path=f"sample:instructions_{name}", language=name
    )
    assert config.language == language
    task = PivotInstructionsTask.from_config(config, TaskContext(["zho_Hans"], set(), 0))
    rows = run(task)
    assert len(rows) >= 30 and not task.details()["skipped"]
    assert {r["direction"] for r in rows} == {f"{language}-{language}"}
    assert len({r["id"] for r in rows}) == len(rows)
    assert rows == run(PivotInstructionsTask.from_config(config, TaskContext([], set(), 1)))
