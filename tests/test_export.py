"""``export``: every format reads back to the build's messages, with ready trainer configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import SAMPLE_RECIPE

from bayling_data.errors import BaylingError
from bayling_data.io.export import FORMATS, export
from bayling_data.io.shards import read_split
from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe

MIX_RECIPE = SAMPLE_RECIPE.parent / "bayling2_mix.yaml"
FROM_SHAREGPT = {"human": "user", "gpt": "assistant", "system": "system"}
PROVENANCE = (
    "id",
    "task",
    "direction",
    "src_lang",
    "tgt_lang",
    "prompt_lang",
    "template_id",
    "source_corpus",
    "source_split",
    "source_segment_id",
)


@pytest.fixture(scope="module", params=[SAMPLE_RECIPE, MIX_RECIPE], ids=["pivot", "mix"])
def build(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(request.param.stem) / "out"
    run_build(load_recipe(request.param, [f"output.dir={out}"]))
    return out


def splits_of(out: Path) -> list[str]:
    return list(json.loads((out / "manifest.json").read_text("utf-8"))["splits"])


def messages_back(fmt: str, row: dict[str, Any]) -> list[dict[str, str]]:
    """Turn an exported row back into the build's ``messages``."""
    if fmt in ("openai", "jsonl", "parquet"):
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    if fmt == "sharegpt":
        return [
            {"role": FROM_SHAREGPT[m["from"]], "content": m["value"]} for m in row["conversations"]
        ]
    assert row["input"] == ""
    messages = [{"role": "system", "content": row["system"]}] if row["system"] else []
    for user, assistant in [*row["history"], [row["instruction"], row["output"]]]:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages


def read_back(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips_every_row(build, tmp_path, fmt):
    to = tmp_path / "export"
    result = export(build, fmt, to)
    suffix = "parquet" if fmt == "parquet" else "jsonl"
    seen_system = seen_chat = False
    for split in splits_of(build):
        table = read_split(build, split)
        path = to / split / f"{split}.{suffix}"
        assert result.files[split] == path and result.rows[split] == table.num_rows
        assert sorted(p.name for p in (to / split).iterdir()) == [path.name]
        rows = read_back(path, fmt)
        assert len(rows) == table.num_rows
        for original, row in zip(table.to_pylist(), rows, strict=True):
            assert messages_back(fmt, row) == original["messages"], original["id"]
            for column in PROVENANCE:
                assert row[column] == original[column]
            if fmt in ("jsonl", "parquet"):
                assert row == original
            roles = [m["role"] for m in original["messages"]]
            seen_system |= roles[0] == "system"
            seen_chat |= roles.count("user") > 1
            if fmt == "alpaca" and roles.count("user") > 1:
                assert len(row["history"]) == roles.count("user") - 1
    if build.parent.name.startswith("bayling2_mix"):
        assert seen_system and seen_chat  # so alpaca's system and history are exercised
    if fmt != "parquet":
        text = (to / "train" / "train.jsonl").read_text("utf-8")
        assert "\\u" not in text  # ensure_ascii=False: Chinese is written as is


def test_the_mix_build_has_system_prompts_and_chats(tmp_path):
    """The round trip above must cover a system prompt and a multi-turn chat for alpaca."""
    out = tmp_path / "mix"
    run_build(load_recipe(MIX_RECIPE, [f"output.dir={out}"]))
    export(out, "alpaca", tmp_path / "alpaca")
    rows = [
        row
        for split in splits_of(out)
        for row in read_back(tmp_path / "alpaca" / split / f"{split}.jsonl", "alpaca")
    ]
    assert any(row["system"] for row in rows)
    assert any(len(row["history"]) >= 1 for row in rows)


@pytest.mark.parametrize("fmt", FORMATS)
def test_dataset_info_and_axolotl_name_every_split_file(build, tmp_path, fmt):
    to = tmp_path / "export"
    export(build, fmt, to)
    info = json.loads((to / "dataset_info.json").read_text("utf-8"))
    named = {entry["file_name"] for entry in info.values()}
    files = {str(p.relative_to(to)) for p in to.glob("*/*") if p.is_file()}
    assert named == files and len(files) == len(splits_of(build))
    for entry in info.values():
        expected = "alpaca" if fmt == "alpaca" else "sharegpt"
        assert entry["formatting"] == expected
        if fmt == "sharegpt":
            assert entry["columns"] == {"messages": "conversations"}
            assert entry["tags"]["user_tag"] == "human"
            assert entry["tags"]["system_tag"] == "system"
        if fmt == "alpaca":
            assert entry["columns"]["history"] == "history"
    snippet = yaml.safe_load((to / "axolotl.yaml").read_text("utf-8"))
    entries = snippet["datasets"] + snippet.get("test_datasets", [])
    assert {Path(e["path"]) for e in entries} == {to / f for f in files}
    for entry in entries:
        if fmt == "alpaca":
            assert entry["type"] == "alpaca"
        else:
            assert entry["type"] == "chat_template"
            assert entry["field_messages"] in ("messages", "conversations")
            assert set(entry["message_property_mappings"]) == {"role", "content"}


def test_a_previous_export_is_replaced_and_other_folders_refused(build, tmp_path):
    to = tmp_path / "export"
    export(build, "openai", to)
    export(build, "alpaca", to)  # an earlier export is replaced whole
    assert (
        not list(to.glob("*/*.parquet"))
        and json.loads((to / "export.json").read_text("utf-8"))["export_format"] == "alpaca"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging folders left

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine", "utf-8")
    with pytest.raises(BaylingError, match="not empty") as err:
        export(build, "openai", other)
    assert "\n" not in str(err.value)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    with pytest.raises(BaylingError, match="overlaps"):
        export(build, "openai", build)
    with pytest.raises(BaylingError, match="overlaps"):
        export(build, "openai", build / "export")


def test_bad_input_is_one_line(build, tmp_path):
    with pytest.raises(BaylingError, match="unknown format") as err:
        export(build, "csv", tmp_path / "x")
    assert "\n" not in str(err.value)
    with pytest.raises(BaylingError, match=r"manifest\.json") as err:
        export(tmp_path, "openai", tmp_path / "x")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()


def test_export_command_line(tmp_path):
    from bayling_data.cli import EXPORT_FORMATS, main
    from bayling_data.io.export import FORMATS

    assert EXPORT_FORMATS == FORMATS
    out = tmp_path / "build"
    run_build(load_recipe(SAMPLE_RECIPE, [f"output.dir={out}"]))
    assert main(["export", str(out), "--format", "openai", "--to", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "train" / "train.jsonl").is_file()
    assert (
        main(
            ["export", str(tmp_path / "nothing"), "--format", "openai", "--to", str(tmp_path / "y")]
        )
        == 2
    )
