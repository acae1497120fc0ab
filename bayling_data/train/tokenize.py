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
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from bayling_data.errors import BaylingError
from bayling_data.train.chat_templates import render

CACHE_FORMAT = "bayling-data-tokens/2"  # /2: written in record batches
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


BATCH_ROWS = 1000  # rows a worker tokenizes at a time: only these are ever Python objects


def encode_batch(
    tokenizer, batch: pa.RecordBatch, spec: MaskSpec
) -> tuple[pa.RecordBatch, Counter]:
    """A record batch of rows (``row``, ``messages``, ``tgt_lang``, ``direction``) tokenized into
    TOKEN_SCHEMA; its rows become Python objects here and are gone when it returns."""
    rows, ids, trained, langs, directions = [], [], [], [], []
    drops: Counter = Counter()
    columns = batch.select(["row", "messages", "tgt_lang", "direction"]).to_pydict()
    for row, messages, lang, direction in zip(*columns.values(), strict=True):
        result = encode_row(tokenizer, messages, spec)
        if isinstance(result, str):
            drops[result] += 1
            continue
        rows.append(row)
        ids.append(result[0])
        trained.append(result[1])
        langs.append(lang)
        directions.append(direction)
    arrays = [rows, ids, trained, langs, directions]
    return pa.RecordBatch.from_arrays(
        [pa.array(values, field.type) for values, field in zip(arrays, TOKEN_SCHEMA, strict=True)],
        schema=TOKEN_SCHEMA,
    ), drops


_WORKER: dict[str, object] = {}


def _init_worker(tokenizer, spec: MaskSpec) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # this child's own environment only
    _WORKER["tokenizer"], _WORKER["spec"] = tokenizer, spec


def _encode_in_worker(payload: bytes) -> tuple[pa.RecordBatch, Counter]:
    batch = pa.ipc.open_stream(payload).read_next_batch()
    return encode_batch(_WORKER["tokenizer"], batch, _WORKER["spec"])


def _ipc_bytes(batch: pa.RecordBatch) -> bytes:
    """A batch as Arrow IPC bytes: a slice is written as just its rows (pickling a slice of a
    memory-mapped table may carry the whole buffers)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def tokenize_batches(
    table: pa.Table, tokenizer, spec: MaskSpec, num_proc: int = 1, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[pa.RecordBatch, Counter]]:
    """A split's rows tokenized batch by batch, in order, in ``num_proc`` processes.

    The table stays in Arrow (memory-mapped shards); each batch travels to a worker as IPC bytes
    and comes back tokenized, and at most ``2 * num_proc`` batches are in flight, so the parent
    holds a few batches however large the split is."""
    rows = table.select(["messages", "tgt_lang", "direction"]).append_column(
        "row", pa.array(range(table.num_rows), pa.int64())
    )
    batches = rows.to_batches(max_chunksize=batch_rows)
    if num_proc == 1 or len(batches) < 2:
        for batch in batches:
            yield encode_batch(tokenizer, batch, spec)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(
        min(num_proc, len(batches)),
        multiprocessing.get_context(method),
        _init_worker,
        (tokenizer, spec),
    ) as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.submit(_encode_in_worker, _ipc_bytes(batch)))
            if len(pending) >= 2 * num_proc:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def tokenize_table(
    table: pa.Table, tokenizer, spec: MaskSpec, num_proc: int = 1, batch_rows: int = BATCH_ROWS
) -> tuple[pa.Table, dict[str, int]]:
    """``tokenize_batches`` gathered into one table, and the drops by reason (small splits)."""
    parts = list(tokenize_batches(table, tokenizer, spec, num_proc, batch_rows))
    drops: Counter = Counter()
    for _, part_drops in parts:
        drops.update(part_drops)
    kept = pa.Table.from_batches([batch for batch, _ in parts], schema=TOKEN_SCHEMA)
    return kept, {reason: drops[reason] for reason in DROP_REASONS}


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
    """The entry's tokens, memory-mapped (zero-copy: nothing is read until used), and its drops."""
    tokens, stats = folder / "tokens.arrow", folder / "stats.json"
    if not (tokens.is_file() and stats.is_file()):
        return None
    table = pa.ipc.open_file(pa.memory_map(str(tokens))).read_all()
    return table, json.loads(stats.read_text("utf-8"))["dropped"]


def write_cached(folder: Path, parts: Iterable[tuple[pa.RecordBatch, Counter]]) -> None:
    """Stream tokenized batches into an Arrow IPC file (memory-mapped by every rank when read),
    under a temporary name renamed at the end, so a reader never sees half of an entry."""
    staging = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    drops: Counter = Counter()
    rows = 0
    with (
        pa.OSFile(str(staging / "tokens.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, TOKEN_SCHEMA) as writer,
    ):
        for batch, batch_drops in parts:
            writer.write_batch(batch)
            drops.update(batch_drops)
            rows += batch.num_rows
    stats = {
        "format": CACHE_FORMAT,
        "rows": rows,
        "dropped": {reason: drops[reason] for reason in DROP_REASONS},
    }
    (staging / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", "utf-8")
    try:
        staging.rename(folder)
    except OSError:  # another process wrote the same entry first
        for path in staging.iterdir():
            path.unlink()
        staging.rmdir()
