"""What every task generator shares: its recipe fields, the build context, and the two shapes
of generator.

* A **segment task** is a :class:`~bayling_data.stage.Stage`: a segment batch in, an instruction
  batch (:data:`~bayling_data.schema.WORK_INSTRUCTION_SCHEMA`) out. Translation, comprehension and
  chat tasks are segment tasks.
* An **item task** reads its own input (QA items, general instruction sets) and yields instruction
  batches from :meth:`ItemTask.generate`; the pipeline runs it once, after the sources.

Every choice a generator makes (prompt language, template, distractor) is a hash of the seed and
the record, so output does not depend on batch size or worker count.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from bayling_data.config import StrictModel, resolve_code
from bayling_data.hashing import hash_prefix, stable_hash
from bayling_data.languages import LanguageRegistry, registry
from bayling_data.schema import WORK_INSTRUCTION_SCHEMA
from bayling_data.stage import Stage


class TaskFields(StrictModel):
    """Keys every task type has."""

    name: str | None = Field(
        default=None,
        description="The `task` value of its rows and its key in the mixture; default: the type. "
        "Two tasks of one type (Chinese and English instruction sets) need different names.",
    )
    weight: float = Field(default=1.0, gt=0, description="Mixture weight among the tasks.")
    prompt_languages: dict[str, float] = Field(
        default={"zho_Hans": 0.5, "eng_Latn": 0.5},
        description="Share of prompts written in each pivot language.",
    )

    @field_validator("prompt_languages")
    @classmethod
    def _prompt_languages(cls, value: dict[str, float]) -> dict[str, float]:
        resolved: dict[str, float] = {}
        for code, share in value.items():
            if share < 0:
                raise ValueError(f"the share for {code!r} must be >= 0, got {share}")
            resolved[resolve_code(code)] = float(share)
        if not any(resolved.values()):
            raise ValueError("at least one prompt language needs a share above 0")
        return resolved


@dataclass(frozen=True)
class TaskContext:
    """What a generator learns from the recipe beyond its own section."""

    pivots: list[str]
    targets: set[str]
    seed: int
    extra: dict[str, object] = field(default_factory=dict)


DEFAULT_PROMPT_LANGUAGES = {"zho_Hans": 0.5, "eng_Latn": 0.5}


class LanguagesMixin:
    """Pivots, targets, prompt-language shares and seed, resolved the same way by every task."""

    def init_languages(
        self,
        pivots: Sequence[str],
        targets: Iterable[str] | None,
        prompt_languages: dict[str, float] | None,
        seed: int,
        lang_registry: LanguageRegistry | None = None,
    ) -> None:
        self.registry = lang_registry or registry()
        self.pivots = [self.registry.resolve(code).code for code in pivots]
        self.targets = (
            None if targets is None else {self.registry.resolve(code).code for code in targets}
        )
        shares = prompt_languages or DEFAULT_PROMPT_LANGUAGES
        self.prompt_languages = [
            (self.registry.resolve(code).code, share) for code, share in shares.items()
        ]
        self.seed = seed
        self.gate = RowGate(self.name, seed, self.pivots)  # type: ignore[attr-defined]


def checked_choices(values: Iterable[str], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``values`` as a tuple, or a ValueError naming the unknown ones and the allowed ones."""
    chosen = tuple(values)
    unknown = set(chosen) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; expected {allowed}")
    return chosen


def mixture_language(src: str, tgt: str, pivots: Sequence[str]) -> str:
    """The language a row counts under in the mixture: its non-pivot side, else its source."""
    return tgt if src in pivots and tgt not in pivots else src


# What a census records of each candidate row (the driver adds the task).
CENSUS_COLUMNS = ("mix_key", "src_lang", "tgt_lang", "direction")


class RowGate:
    """Which of its candidate rows a task makes.

    Every candidate row has a mixture key, ``stable_hash(seed, "mix", task, *record)``, computed
    from the record it is made of (segment, languages, variant) before anything is rendered.
    The mixture keeps, in each (task, language) group, the rows with the smallest keys, so a
    build that has planned how many rows each group keeps needs only the rows under the group's
    key limit: a task asks :meth:`admit` first and skips the rest of its work for a row that is
    not let in. A *census* gate lets nothing in and records every candidate's key and languages,
    which is what the plan is made from.
    """

    def __init__(
        self,
        task: str,
        seed: int,
        pivots: Sequence[str],
        limits: dict[str, int] | None = None,
        census: bool = False,
    ):
        self.task = task
        self.seed = seed
        self.pivots = tuple(pivots)
        #: The highest key each language's rows may have; None: every row is made.
        self.limits = limits
        self.census = census
        self.seen: dict[str, list[object]] = {name: [] for name in CENSUS_COLUMNS}
        #: ``prefixed_hash(gate.prefix, join_parts(*record)) == gate.key(*record)``, for loops.
        self.prefix = hash_prefix(seed, "mix", task)

    def key(self, *record: object) -> int:
        return stable_hash(self.seed, "mix", self.task, *record)

    def admit(self, key: int, src: str, tgt: str, direction: str) -> bool:
        if self.census:
            for name, value in zip(self.seen, (key, src, tgt, direction), strict=True):
                self.seen[name].append(value)
            return False
        if self.limits is None:
            return True
        limit = self.limits.get(mixture_language(src, tgt, self.pivots))
        return limit is not None and key <= limit

    def take_census(self) -> dict[str, list[object]]:
        """The candidates recorded since the last call."""
        seen = self.seen
        self.seen = {name: [] for name in seen}
        return seen


def append_row(out: dict[str, list[object]], **values: object) -> None:
    """Append one instruction row to column lists keyed by WORK_INSTRUCTION_SCHEMA's names.

    Every column must be given (src_text / tgt_text may be None; mix_key comes from the task's
    :class:`RowGate`): a missing one is a bug, and the KeyError says which.
    """
    for name, column in out.items():  # new_columns() made them in the schema's order
        column.append(values[name])


def new_columns() -> dict[str, list[object]]:
    """Empty column lists for :func:`append_row`."""
    return {name: [] for name in WORK_INSTRUCTION_SCHEMA.names}


def document_runs(doc_ids: Sequence[str | None]) -> list[tuple[int, int, str | None]]:
    """``(start, end, doc_id)`` of each run of equal doc ids in a batch (null ids included).

    Batches never split a document (``BatchBuilder``), so a run is a whole document.
    """
    runs: list[tuple[int, int, str | None]] = []
    start = 0
    for row in range(1, len(doc_ids) + 1):
        if row == len(doc_ids) or doc_ids[row] != doc_ids[start]:
            runs.append((start, row, doc_ids[start]))
            start = row
    return runs


# Rows a segment task holds before it hands them on as one batch: a batch of 1,000 segments in
# 200 languages makes 800,000 translation rows, which as Python objects would take gigabytes.
CHUNK_ROWS = 8192


class SegmentTask(Stage):
    """A generator from segment batches whose output comes in chunks of about
    :data:`CHUNK_ROWS` rows (a chunk ends with a whole segment's rows, :meth:`chunks`), so its
    memory does not grow with the number of languages. Subclasses implement :meth:`rows`,
    yielding a batch whenever ``out`` is full."""

    level = "task"

    def rows(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """All of a batch's rows as one batch (for use in a notebook; a build uses chunks)."""
        parts = list(self.rows(batch))
        if not parts:
            return pa.RecordBatch.from_pylist([], schema=WORK_INSTRUCTION_SCHEMA)
        return pa.concat_batches(parts)

    def chunks(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        """The batch's rows chunk by chunk, counted and timed like :meth:`Stage.__call__`."""
        if not self._ready:
            self.setup()
            self._ready = True
        self.stats.rows_in += batch.num_rows
        produced = self.rows(batch)
        while True:
            started = time.perf_counter()
            chunk = next(produced, None)
            self.stats.seconds += time.perf_counter() - started
            if chunk is None:
                return
            self.stats.rows_out += chunk.num_rows
            yield chunk


def full(out: dict[str, list[object]]) -> bool:
    return len(out["id"]) >= CHUNK_ROWS


def flush(out: dict[str, list[object]], messages: pa.Array | None = None) -> pa.RecordBatch:
    """The rows gathered in ``out`` as a batch; ``out`` is emptied. ``messages``: the messages
    column made already (:func:`single_turn_messages`), for a task that leaves ``out``'s empty."""
    columns: dict[str, object] = out if messages is None else {**out, "messages": messages}
    batch = pa.RecordBatch.from_pydict(columns, schema=WORK_INSTRUCTION_SCHEMA)
    for values in out.values():
        values.clear()
    return batch


def single_turn_messages(
    prompts: Sequence[str], answers: Sequence[str], systems: Sequence[str | None] | None = None
) -> pa.Array:
    """The messages column of single-turn rows (a system message where ``systems`` has one, the
    user's prompt, the answer) built from flat columns: Arrow made 61k rows' messages from
    dicts in 0.1 s, from these arrays in a few milliseconds."""
    n = len(prompts)
    with_system = (
        np.fromiter((text is not None for text in systems), bool, count=n)
        if systems is not None
        else np.zeros(n, bool)
    )
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(2 + with_system, out=offsets[1:])
    contents = np.empty(offsets[-1], dtype=object)
    roles = np.empty(offsets[-1], dtype=object)
    user = offsets[:-1] + with_system
    contents[user], roles[user] = prompts, "user"
    contents[user + 1], roles[user + 1] = answers, "assistant"
    if with_system.any():
        assert systems is not None
        where = offsets[:-1][with_system]
        contents[where] = [text for text in systems if text is not None]
        roles[where] = "system"
    message_type = WORK_INSTRUCTION_SCHEMA.field("messages").type.value_type
    entries = pa.StructArray.from_arrays(
        [pa.array(roles, pa.string()), pa.array(contents, pa.string())],
        fields=list(message_type),
    )
    return pa.ListArray.from_arrays(pa.array(offsets), entries)


class ItemTask(Stage):
    """A generator that reads its own input instead of segment batches."""

    level = "task"

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        raise TypeError(f"{self.name} reads its own input; call generate()")

    def generate(self) -> Iterator[pa.RecordBatch]:
        """Instruction batches (WORK_INSTRUCTION_SCHEMA), counted in ``self.stats``."""
        raise NotImplementedError
