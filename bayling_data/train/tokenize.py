"""Tokenizing rows with their loss masks, once, in parallel, into a cache.

The trained tokens are found by rendering prefixes, not by ``{% generation %}`` markers (few
templates have them): for each assistant turn ``i`` the characters between
``render(messages[:i], generation_prompt=True)`` and ``render(messages[:i + 1])`` are the answer
and its end-of-turn token. The whole conversation is tokenized once, and a token is trained when
its character span overlaps an answer, so a token that merges across the boundary is still the
first token the model must produce. Rows that end up with nothing to train on, or whose truncation
would cut an answer, are dropped and counted by reason.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from bayling_data.errors import BaylingError
from bayling_data.train.chat_templates import render

CACHE_FORMAT = "bayling-data-tokens/1"
DROP_REASONS = ("too_long", "answer_truncated", "no_trained_tokens")
TOKEN_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64()),
        pa.field("input_ids", pa.list_(pa.int32())),
        pa.field("trained", pa.list_(pa.int8())),
        pa.field("lang", pa.string()),
        pa.field("direction", pa.string()),
    ]
)


@dataclass(frozen=True)
class MaskSpec:
    """Everything besides the data and the tokenizer that decides the tokens and their mask."""

    template: str
    loss_on: str = "all_assistant"
    max_length: int = 2048
    truncation: str = "drop"


class TemplateError(BaylingError):
    """A chat template whose renderings of a conversation's prefixes are not prefixes of it."""


def answer_spans(
    tokenizer, messages: list[dict], spec: MaskSpec
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of the answers to train on."""
    full = render(tokenizer, spec.template, messages, generation_prompt=False)
    turns = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    if spec.loss_on == "last_assistant":
        turns = turns[-1:]
    spans = []
    for turn in turns:
        before = render(tokenizer, spec.template, messages[:turn], generation_prompt=True)
        through = render(tokenizer, spec.template, messages[: turn + 1], generation_prompt=False)
        if not (
            full.startswith(before) and full.startswith(through) and len(through) > len(before)
        ):
            raise TemplateError(
                "data.template: the chat template does not render a conversation's prefixes as "
                "prefixes of it, so answers cannot be located; choose another template"
            )
        spans.append((len(before), len(through)))
    return full, spans


def encode_row(
    tokenizer, messages: list[dict], spec: MaskSpec
) -> tuple[list[int], list[int]] | str:
    """Token ids and a 0/1 trained mask, or the reason the row is dropped."""
    full, spans = answer_spans(tokenizer, messages, spec)
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    trained = [
        int(any(start < span_end and span_start < end for span_start, span_end in spans))
        for start, end in offsets
    ]
    if len(ids) > spec.max_length:
        if spec.truncation == "drop":
            return "too_long"
        # Cut after the last answer that fits whole, so no answer loses its end-of-turn token.
        turn_ends = [sum(1 for start, _ in offsets if start < span_end) for _, span_end in spans]
        fitting = [end for end in turn_ends if end <= spec.max_length]
        if not fitting:
            return "answer_truncated"
        ids, trained = ids[: fitting[-1]], trained[: fitting[-1]]
    if not any(trained):
        return "no_trained_tokens"
    return list(ids), trained


def encode_rows(tokenizer, rows: list[dict], spec: MaskSpec) -> tuple[list[dict], Counter]:
    kept, drops = [], Counter()
    for row in rows:
        result = encode_row(tokenizer, row["messages"], spec)
        if isinstance(result, str):
            drops[result] += 1
            continue
        ids, trained = result
        kept.append(
            {
                "row": row["row"],
                "input_ids": ids,
                "trained": trained,
                "lang": row["tgt_lang"],
                "direction": row["direction"],
            }
        )
    return kept, drops


_WORKER: dict[str, object] = {}


def _init_worker(tokenizer, spec: MaskSpec) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # this child's own environment only
    _WORKER["tokenizer"], _WORKER["spec"] = tokenizer, spec


def _encode_in_worker(rows: list[dict]) -> tuple[list[dict], Counter]:
    return encode_rows(_WORKER["tokenizer"], rows, _WORKER["spec"])


def tokenize_table(
    table: pa.Table, tokenizer, spec: MaskSpec, num_proc: int = 1
) -> tuple[pa.Table, dict[str, int]]:
    """Tokenize a split's rows (in ``num_proc`` processes); the kept rows and drops by reason."""
    rows = (
        table.select(["messages", "tgt_lang", "direction"])
        .append_column("row", pa.array(range(table.num_rows), pa.int64()))
        .to_pylist()
    )
    if num_proc == 1 or len(rows) < 2 * num_proc:
        parts = [encode_rows(tokenizer, rows, spec)]
    else:
        size = -(-len(rows) // (num_proc * 4))
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(
            num_proc, multiprocessing.get_context(method), _init_worker, (tokenizer, spec)
        ) as pool:
            parts = list(pool.map(_encode_in_worker, chunks))
    kept = [row for part, _ in parts for row in part]
    drops = Counter()
    for _, part_drops in parts:
        drops.update(part_drops)
    return pa.Table.from_pylist(kept, schema=TOKEN_SCHEMA), {r: drops[r] for r in DROP_REASONS}


# --- cache ---------------------------------------------------------------------------------------


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what decides token ids: the vocabulary and merges, special tokens, class."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    core = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab()))
    specials = json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str)
    digest = hashlib.sha256(f"{type(tokenizer).__name__}\n{specials}\n{core}".encode())
    return digest.hexdigest()


def cache_key(shard_checksums: list[str], tokenizer, spec: MaskSpec) -> str:
    """The cache entry of one split: its shards, the tokenizer and the mask spec."""
    parts = {
        "format": CACHE_FORMAT,
        "shards": shard_checksums,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "spec": asdict(spec),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def read_cached(folder: Path) -> tuple[pa.Table, dict[str, int]] | None:
    tokens, stats = folder / "tokens.arrow", folder / "stats.json"
    if not (tokens.is_file() and stats.is_file()):
        return None
    table = pa.ipc.open_file(pa.memory_map(str(tokens))).read_all()
    return table, json.loads(stats.read_text("utf-8"))["dropped"]


def write_cached(folder: Path, table: pa.Table, drops: dict[str, int]) -> None:
    """Write the entry under a temporary name and rename it, so a reader never sees half of one."""
    staging = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    with (
        pa.OSFile(str(staging / "tokens.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, table.schema) as writer,
    ):
        writer.write_table(table)
    stats = {"format": CACHE_FORMAT, "rows": table.num_rows, "dropped": drops}
    (staging / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", "utf-8")
    try:
        staging.rename(folder)
    except OSError:  # another process wrote the same entry first
        for path in staging.iterdir():
            path.unlink()
        staging.rmdir()
