"""General Chinese and English instruction sets, passed through as instruction rows.

BayLing 2 mixes general instructions in the pivot languages (about 43% Chinese, 26% English) with
the cross-lingual tasks, so that the model keeps its pivot-language skills while it learns to
transfer them. This task reads such a set as published, in one of three shapes, and writes each
valid conversation as one row; nothing is translated or templated.

* ``alpaca``: ``{"instruction", "input", "output"}`` (``input`` optional, appended to the prompt).
* ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}]}``.
* ``messages``: ``{"messages": [{"role": "user"|"assistant"|"system", "content"}]}``.

Files are JSON Lines or a JSON array (``.json`` starting with ``[``), optionally compressed. A
conversation that cannot train (no assistant answer, roles out of turn, an empty message) is
skipped and counted by reason; malformed JSON is a :class:`CorpusError` naming file and line.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, field_validator

from bayling_data.config import resolve_code
from bayling_data.errors import CorpusError
from bayling_data.hashing import content_id
from bayling_data.schema import WORK_INSTRUCTION_SCHEMA
from bayling_data.sources.files import (
    DECOMPRESSION_ERRORS,
    CorpusFile,
    expand_paths,
    open_binary,
    read_lines,
    strip_compression,
)
from bayling_data.sources.samples import SAMPLE_PREFIX, resolve_source_path
from bayling_data.tasks.base import (
    ItemTask,
    RowGate,
    TaskContext,
    TaskFields,
    append_row,
    new_columns,
)

Format = Literal["alpaca", "sharegpt", "messages"]
BATCH_ROWS = 1000

_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "system": "system",
}
_ROLES = {"user", "assistant", "system"}
_TURN_KEYS = {
    "sharegpt": ("conversations", "from", "value"),
    "messages": ("messages", "role", "content"),
}


def resolve_item_paths(path: str | Path, key: str = "path") -> list[Path]:
    """A task's ``path`` as written: ``sample:NAME`` for a bundled file, else a file or glob."""
    raw = str(path)
    if raw.startswith(SAMPLE_PREFIX):
        return [resolve_source_path(raw)]  # a bundled sample, or a one-line error
    paths = expand_paths(raw, key)
    folders = [path for path in paths if path.is_dir()]
    if folders:
        raise CorpusError(f"{key}: {folders[0]} is a folder; give a file or a glob of files")
    return paths


def file_stem(path: Path) -> str:
    """``alpaca_zh.jsonl.gz`` -> ``alpaca_zh``: the corpus name a row records."""
    name = strip_compression(path.name)
    for suffix in (".jsonl", ".json", ".ndjson"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_json_document(path: Path) -> bool:
    return strip_compression(path.name).endswith(".json")


def iter_json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line_number, value)`` for each record of a JSON Lines file or a JSON array file.

    JSON Lines is streamed; a ``.json`` file is read whole (arrays are small enough in practice)
    and each element is reported at the line where it starts. Blank lines are skipped.
    """
    file = CorpusFile(path)
    if _is_json_document(path):
        with open_binary(file) as stream:
            try:
                raw = stream.read()
            except DECOMPRESSION_ERRORS as err:
                raise CorpusError(
                    f"{file}: the compressed data is truncated or corrupt ({err})"
                ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise CorpusError(f"{file}:{line}: invalid UTF-8 ({err.reason})") from None
        if text.lstrip().startswith("["):
            yield from _iter_array(file, text)
            return
        lines: Iterator[tuple[int, str]] = enumerate(text.split("\n"), start=1)
    else:
        lines = read_lines(file)
    for line_no, line in lines:
        if not line.strip():
            continue
        try:
            yield line_no, json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{file}:{line_no}: invalid JSON ({err.msg})") from None


def _iter_array(file: CorpusFile, text: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()

    def fail(pos: int, what: str) -> CorpusError:
        return CorpusError(f"{file}:{text.count(chr(10), 0, pos) + 1}: invalid JSON ({what})")

    pos = text.index("[") + 1
    first = True
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos < len(text) and text[pos] == "]":
            if text[pos + 1 :].strip():
                raise fail(pos + 1, "extra data after the array")
            return
        if not first:
            if pos >= len(text) or text[pos] != ",":
                raise fail(pos, "expected ',' or ']'")
            pos += 1
            while pos < len(text) and text[pos].isspace():
                pos += 1
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise fail(err.pos, err.msg) from None
        yield text.count("\n", 0, pos) + 1, value
        pos, first = end, False


@dataclass(frozen=True)
class Conversation:
    """One valid item: its messages, or why it was skipped."""

    messages: list[dict[str, str]] | None
    reason: str | None = None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_item(item: dict[str, Any], fmt: Format) -> Conversation:
    """The item's messages in a given format, checked; ``reason`` says why one is unusable."""
    if fmt == "alpaca":
        instruction, extra, output = (item.get(k) for k in ("instruction", "input", "output"))
        if not isinstance(instruction, str) or not isinstance(output, str):
            return Conversation(None, "missing_field")
        if extra is not None and not isinstance(extra, str):
            return Conversation(None, "missing_field")
        prompt = instruction.strip()
        if extra and extra.strip():
            prompt = f"{prompt}\n\n{extra.strip()}"
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    else:
        key, role_key, text_key = _TURN_KEYS[fmt]
        turns = item.get(key)
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            return Conversation(None, "missing_field")
        messages = []
        for turn in turns:
            raw_role, content = _text(turn.get(role_key)), _text(turn.get(text_key))
            if raw_role is None or content is None:
                return Conversation(None, "missing_field")
            role = (
                _SHAREGPT_ROLES.get(raw_role.lower())
                if fmt == "sharegpt"
                else (raw_role if raw_role in _ROLES else None)
            )
            if role is None:
                return Conversation(None, "unknown_role")
            messages.append({"role": role, "content": content})
    return Conversation(messages, check_turns(messages))


def check_turns(messages: list[dict[str, str]]) -> str | None:
    """None when the conversation can train: an optional system message, then user and assistant
    turns alternating, ending with an answer, no message empty."""
    turns = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not any(m["role"] == "assistant" for m in turns):
        return "no_answer"
    for index, message in enumerate(turns):
        if message["role"] != ("user" if index % 2 == 0 else "assistant"):
            return "not_alternating"
    if turns[-1]["role"] != "assistant":
        return "no_answer"
    if any(not m["content"].strip() for m in messages):
        return "empty_message"
    return None


class PivotInstructionsConfig(TaskFields):
    """A general instruction set in one language, passed through."""

    type: Literal["pivot_instructions"]
    path: str = Field(description="A JSONL or JSON-array file, a glob, or sample:NAME.")
    format: Format = Field(default="alpaca", description="alpaca, sharegpt or messages.")
    language: str = Field(description="The set's language (resolved like any language code).")
    max_items: int | None = Field(default=None, gt=0, description="Stop after this many rows.")
    split: str = Field(default="train", description="What the rows record as source_split.")

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return resolve_code(value)


class PivotInstructionsTask(ItemTask):
    """Reads an instruction set and yields it as rows; skipped items are counted by reason."""

    name = "pivot_instructions"

    def __init__(
        self,
        path: str | Path,
        language: str,
        *,
        format: Format = "alpaca",
        max_items: int | None = None,
        split: str = "train",
        batch_rows: int = BATCH_ROWS,
    ):
        super().__init__()
        if format not in ("alpaca", "sharegpt", "messages"):
            raise ValueError(f"unknown format {format!r}; expected alpaca, sharegpt or messages")
        self.path = path
        self.language = resolve_code(language)
        self.format: Format = format
        self.max_items = max_items
        self.split = split
        self.batch_rows = batch_rows
        self.skipped: Counter[str] = Counter()
        self.items_read = 0
        self.gate = RowGate(self.name, 0, [self.language])

    def details(self) -> dict[str, Any]:
        return {"items_read": self.items_read, "skipped": dict(sorted(self.skipped.items()))}

    def reset_counters(self) -> None:
        super().reset_counters()
        self.skipped, self.items_read = Counter(), 0

    def generate(self) -> Iterator[pa.RecordBatch]:
        out = new_columns()
        emitted = 0
        direction = f"{self.language}-{self.language}"
        for path in resolve_item_paths(self.path):
            corpus = file_stem(path)
            used_before, missing_before = emitted, self.skipped["missing_field"]
            first_missing: int | None = None
            index = -1
            for index, (line_no, item) in enumerate(iter_json_records(path)):
                if self.max_items is not None and emitted >= self.max_items:
                    break
                if not isinstance(item, dict):
                    raise CorpusError(f"{path}:{line_no}: expected a JSON object per item")
                self.items_read += 1
                self.stats.rows_in += 1
                conversation = parse_item(item, self.format)
                if conversation.reason or conversation.messages is None:
                    reason = conversation.reason or "missing_field"
                    self.skipped[reason] += 1
                    self.stats.count(direction, 1, 1, {reason: 1})
                    if reason == "missing_field" and first_missing is None:
                        first_missing = line_no
                    continue
                emitted += 1  # a candidate, made or not: max_items means the same either way
                key = self.gate.key(corpus, self.split, index)
                if not self.gate.admit(key, self.language, self.language, direction):
                    continue
                self.stats.count(direction, 1, 0)
                _append(
                    out,
                    conversation.messages,
                    self.language,
                    self.format,
                    corpus,
                    self.split,
                    index,
                    key,
                )
                if len(out["id"]) >= self.batch_rows:
                    yield self._flush(out)
                    out = new_columns()
            missing = self.skipped["missing_field"] - missing_before
            if emitted == used_before and missing and first_missing is not None:
                raise CorpusError(
                    f"{path}:{first_missing}: no item has the fields of format {self.format!r}; "
                    "is `format` right?"
                )
            if self.max_items is not None and emitted >= self.max_items:
                break
        if out["id"]:
            yield self._flush(out)

    def _flush(self, out: dict[str, list[Any]]) -> pa.RecordBatch:
        batch = pa.RecordBatch.from_pydict(out, schema=WORK_INSTRUCTION_SCHEMA)
        self.stats.rows_out += batch.num_rows
        return batch

    @classmethod
    def from_config(
        cls, config: PivotInstructionsConfig, context: TaskContext
    ) -> PivotInstructionsTask:
        return cls(
            config.path,
            config.language,
            format=config.format,
            max_items=config.max_items,
            split=config.split,
        )


def _append(
    out: dict[str, list[Any]],
    messages: list[dict[str, str]],
    language: str,
    fmt: str,
    corpus: str,
    split: str,
    index: int,
    mix_key: int,
) -> None:
    """One pass-through row: the conversation as it was, in one language."""
    append_row(
        out,
        id=content_id(
            PivotInstructionsTask.name, *(f"{m['role']}:{m['content']}" for m in messages)
        ),
        messages=messages,
        task=PivotInstructionsTask.name,
        direction=f"{language}-{language}",
        src_lang=language,
        tgt_lang=language,
        prompt_lang=language,
        template_id=fmt,
        source_corpus=corpus,
        source_split=split,
        source_segment_id=str(index),
        src_text=None,
        tgt_text=None,
        mix_key=mix_key,
    )
