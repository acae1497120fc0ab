"""Export a build to the files that fine-tuning frameworks read (LLaMA-Factory, axolotl, others).

A build holds Arrow shards; trainers want JSONL or Parquet in a shape they know. ``export`` streams
one split at a time, batch by batch, so memory stays flat however big the build is, and writes::

    DIR/
      export.json                 (bayling-data's record of the export; marks DIR as an export)
      dataset_info.json           (LLaMA-Factory entries: one per split, dataset_dir=DIR)
      axolotl.yaml                (axolotl ``datasets:`` / ``test_datasets:`` snippet)
      train/train.jsonl           (one folder per split holding only its data file, because
      validation/validation.jsonl  LLaMA-Factory refuses a folder with files of other kinds)

Formats (every JSON format keeps ``id`` and the provenance columns as extra keys, which
LLaMA-Factory and axolotl ignore):

* ``openai``: ``{"messages": [{"role", "content"}], ...}``
* ``sharegpt``: ``{"conversations": [{"from", "value"}], ...}``, roles human / gpt / system
* ``alpaca``: ``{"instruction", "input", "output", "system", "history", ...}``, earlier turns as
  ``history`` pairs (LLaMA-Factory's multi-turn alpaca)
* ``jsonl`` / ``parquet``: the rows as they are, every column
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from bayling_data.errors import BaylingError
from bayling_data.io.shards import iter_shard_batches
from bayling_data.io.staging import MANIFEST_NAME, staged_output
from bayling_data.progress import Advance, Progress

FORMATS = ("sharegpt", "alpaca", "openai", "parquet", "jsonl")
EXPORT_RECORD = "export.json"
EXPORT_FORMAT = "bayling-data-export/1"
DATASET_INFO = "dataset_info.json"
AXOLOTL = "axolotl.yaml"
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}
# The keys each JSON format writes itself; a build column with one of these names would clash.
FORMAT_KEYS = {
    "openai": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "input", "output", "system", "history"),
    "jsonl": (),
}


@dataclass
class ExportResult:
    """What an export wrote: the folder, the format and, per split, the data file and its rows."""

    to_dir: Path
    fmt: str
    files: dict[str, Path] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def _message_list(messages: list[dict[str, str]], row_id: str) -> list[dict[str, str]]:
    """Check a row's messages: optional leading system, then user/assistant pairs."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    expected = ["user", "assistant"] * (len(body) // 2)
    if not body or len(body) % 2 or [m["role"] for m in body] != expected:
        roles = ",".join(m["role"] for m in messages)
        raise BaylingError(
            f"row {row_id}: messages must be [system,] user, assistant, ... ending with the "
            f"assistant; got roles {roles}"
        )
    return messages


def _to_alpaca(messages: list[dict[str, str]]) -> dict[str, Any]:
    """LLaMA-Factory alpaca: last turn as instruction/output, earlier turns as history pairs."""
    system = ""
    if messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    pairs = [
        [messages[i]["content"], messages[i + 1]["content"]] for i in range(0, len(messages), 2)
    ]
    (instruction, output), history = pairs[-1], pairs[:-1]
    return {
        "instruction": instruction,
        "input": "",
        "output": output,
        "system": system,
        "history": history,
    }


def _convert(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """One build row in the JSON shape of ``fmt``, with the other columns kept as extra keys."""
    if fmt == "jsonl":
        return row
    extra = {key: value for key, value in row.items() if key != "messages"}
    messages = _message_list(row["messages"], str(row.get("id")))
    if fmt == "openai":
        head: dict[str, Any] = {
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages]
        }
    elif fmt == "sharegpt":
        head = {
            "conversations": [
                {"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in messages
            ]
        }
    else:
        head = _to_alpaca(messages)
    return {**head, **extra}


def _read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        raise BaylingError(f"{out_dir}: no {MANIFEST_NAME}; is this a bayling-data build folder?")
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except ValueError as err:
        raise BaylingError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise BaylingError(f"{path}: not a bayling-data manifest (no splits)")
    return manifest


def _batches(out_dir: Path, split: str, shards: list[dict[str, Any]]) -> Iterator[pa.RecordBatch]:
    """Stream a split's record batches shard by shard (memory-mapped), never holding the split."""
    for shard in shards:
        path = out_dir / split / shard["file"]
        if not path.is_file():
            raise BaylingError(f"{path}: shard named in {MANIFEST_NAME} is missing")
        yield from iter_shard_batches(path)


def _shard_schema(out_dir: Path, split: str, shards: list[dict[str, Any]]) -> pa.Schema:
    with pa.memory_map(str(out_dir / split / shards[0]["file"]), "r") as source:
        return pa.ipc.open_stream(source).schema


def _check_to_dir(to_dir: Path, out_dir: Path) -> None:
    """Refuse the build folder itself, or a folder inside it or around it."""
    if to_dir == out_dir or out_dir.is_relative_to(to_dir) or to_dir.is_relative_to(out_dir):
        raise BaylingError(f"--to: {to_dir} overlaps the build folder {out_dir}; choose another")


def _write_split(
    out_dir: Path,
    split: str,
    shards: list[dict[str, Any]],
    fmt: str,
    path: Path,
    advance: Advance = lambda _n: None,
) -> int:
    rows = 0
    if fmt == "parquet":
        schema = _shard_schema(out_dir, split, shards)
        with pq.ParquetWriter(str(path), schema) as writer:
            for batch in _batches(out_dir, split, shards):
                writer.write_batch(batch)
                rows += batch.num_rows
                advance(batch.num_rows)
        return rows
    clash = set(FORMAT_KEYS[fmt]) & set(_shard_schema(out_dir, split, shards).names) - {"messages"}
    if clash:
        raise BaylingError(f"{out_dir}: column(s) {sorted(clash)} clash with {fmt}'s own keys")
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for batch in _batches(out_dir, split, shards):
            for row in batch.to_pylist():
                handle.write(json.dumps(_convert(row, fmt), ensure_ascii=False) + "\n")
            rows += batch.num_rows
            advance(batch.num_rows)
    return rows


def llamafactory_entry(fmt: str, file_name: str) -> dict[str, Any]:
    """A ``dataset_info.json`` entry; ``file_name`` is relative to LLaMA-Factory's dataset_dir."""
    entry: dict[str, Any] = {"file_name": file_name}
    if fmt == "alpaca":
        entry["formatting"] = "alpaca"
        entry["columns"] = {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
            "history": "history",
        }
    elif fmt == "sharegpt":
        entry["formatting"] = "sharegpt"
        entry["columns"] = {"messages": "conversations"}
        entry["tags"] = {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
            "system_tag": "system",
        }
    else:  # openai, jsonl and parquet all carry OpenAI-style ``messages``
        entry["formatting"] = "sharegpt"
        entry["columns"] = {"messages": "messages"}
        entry["tags"] = {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        }
    return entry


def axolotl_entry(fmt: str, path: str) -> dict[str, Any]:
    """One item of axolotl's ``datasets:`` list for a local file."""
    entry: dict[str, Any] = {"path": path, "ds_type": "parquet" if fmt == "parquet" else "json"}
    if fmt == "alpaca":
        entry["type"] = "alpaca"
        return entry
    entry["type"] = "chat_template"
    if fmt == "sharegpt":
        entry["field_messages"] = "conversations"
        entry["message_property_mappings"] = {"role": "from", "content": "value"}
        entry["roles"] = {"system": ["system"], "user": ["human"], "assistant": ["gpt"]}
    else:
        entry["field_messages"] = "messages"
        entry["message_property_mappings"] = {"role": "role", "content": "content"}
    return entry


def export(
    out_dir: str | Path, fmt: str, to_dir: str | Path, *, progress: Progress | None = None
) -> ExportResult:
    """Export the build in ``out_dir`` as ``fmt`` into ``to_dir`` (replaced atomically)."""
    progress = progress or Progress.off()
    if fmt not in FORMATS:
        raise BaylingError(
            f"--format: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}"
        )
    out_dir = Path(os.path.abspath(out_dir))
    to_dir = Path(os.path.abspath(to_dir))
    manifest = _read_manifest(out_dir)
    _check_to_dir(to_dir, out_dir)
    name = str((manifest.get("recipe") or {}).get("name") or out_dir.name)
    suffix = "parquet" if fmt == "parquet" else "jsonl"
    result = ExportResult(to_dir=to_dir, fmt=fmt)
    dataset_info: dict[str, Any] = {}
    axolotl: dict[str, list[dict[str, Any]]] = {}
    with staged_output(to_dir, key="--to", marker=EXPORT_RECORD, what="export") as staging:
        for split, info in manifest["splits"].items():
            shards = info.get("shards") or []
            if not shards:
                continue
            relative = f"{split}/{split}.{suffix}"
            (staging / split).mkdir()
            total = sum(int(shard.get("rows", 0)) for shard in shards)
            with progress.phase(f"export {split}", total, "rows") as advance:
                result.rows[split] = _write_split(
                    out_dir, split, shards, fmt, staging / relative, advance
                )
            result.files[split] = to_dir / relative
            dataset_info[f"{name}_{split}"] = llamafactory_entry(fmt, relative)
            key = "datasets" if split == "train" else "test_datasets"
            axolotl.setdefault(key, []).append(axolotl_entry(fmt, str(to_dir / relative)))
        (staging / DATASET_INFO).write_text(
            json.dumps(dataset_info, indent=2, ensure_ascii=False) + "\n", "utf-8"
        )
        header = (
            f"# axolotl dataset snippet for the {fmt} export of {name}; paste into your config.\n"
        )
        if fmt == "alpaca":
            header += "# axolotl's alpaca type reads instruction/input/output only (no system or\n"
            header += (
                "# history): for chats and system prompts export sharegpt or openai instead.\n"
            )
        body = yaml.safe_dump(axolotl, sort_keys=False, allow_unicode=True)
        (staging / AXOLOTL).write_text(header + body, "utf-8")
        record = {
            "format": EXPORT_FORMAT,
            "export_format": fmt,
            "source": str(out_dir),
            "signature": manifest.get("signature"),
            "splits": {
                split: {"file": f"{split}/{split}.{suffix}", "rows": rows}
                for split, rows in result.rows.items()
            },
        }
        (staging / EXPORT_RECORD).write_text(
            json.dumps(record, indent=2, ensure_ascii=False) + "\n", "utf-8"
        )
    return result
