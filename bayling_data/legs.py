"""The recipe's chain of stages as legs of shard-level work, and the work items that run them.

The chain is the segment filters, the task generators, then the instruction filters, in recipe
order. Every stage of it runs per *work shard* (a run of consecutive source batches, or one item
task's output), except that a global filter (exact or near dedup) needs the whole build: it cuts
the chain. The leg before it ends by writing each row's keys into hash partitions; one *decide*
item per partition finds the repeats; the leg after it starts by dropping them (see
:mod:`~bayling_data.filters.global_filter`). The last leg also writes what the mixture needs to
know of each row, and a *route* item per shard sends the kept rows to their split and to an
ordering bucket, which the driver writes out bucket by bucket.

Every work item is a :class:`Job` (plain data) run by :func:`run_job` in whatever process the
executor picks; it reads and writes only files of the work folder and ends with a completion
marker that carries its counters, so that a build can be killed at any moment and resumed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from bayling_data.filters.global_filter import KEY_SCHEMA, GlobalFilter, slot_masks
from bayling_data.hashing import hash_prefix, unit_interval
from bayling_data.io.shards import SplitWriter, shard_rows
from bayling_data.io.workdir import (
    ArrowSink,
    WorkDir,
    arrow_sink,
    read_batches,
    read_json,
    read_schema,
    read_table,
    read_tables,
    write_arrow,
)
from bayling_data.recipe import Recipe
from bayling_data.schema import INSTRUCTION_SCHEMA, WORK_INSTRUCTION_SCHEMA
from bayling_data.stage import Stage
from bayling_data.tasks import ItemTask
from bayling_data.tasks.base import RowGate, SegmentTask

SEGMENT, TASKS, INSTRUCTION = "segment", "tasks", "instruction"
# Columns the driver's mixture reads of every row (the mix key stands in for the row's id).
PROJECTION_SCHEMA = pa.schema(
    [
        ("mix_key", pa.uint64()),
        ("task", pa.dictionary(pa.int32(), pa.string())),
        ("src_lang", pa.dictionary(pa.int32(), pa.string())),
        ("tgt_lang", pa.dictionary(pa.int32(), pa.string())),
        ("direction", pa.dictionary(pa.int32(), pa.string())),
    ]
)
ORDER_COLUMNS = ("_order", "_ordinal")
COUNT_COLUMNS = ("task", "direction", "src_lang", "tgt_lang", "prompt_lang")
#: Keys one decide step holds at once, at most (about 60 bytes each while sorting).
DECIDE_KEYS = 2_000_000


@dataclass(frozen=True)
class Step:
    """One link of the chain: a segment filter, the task generators, or an instruction filter
    (``index`` into the plan's list of that kind)."""

    kind: str
    index: int = 0


@dataclass(frozen=True)
class Leg:
    """Consecutive steps run per shard in one pass. ``opens_with``: a global filter whose decided
    drops the leg applies first; ``closes_with``: the global filter whose keys it writes last."""

    index: int
    steps: tuple[Step, ...]
    opens_with: Step | None
    closes_with: Step | None

    @property
    def has_tasks(self) -> bool:
        return any(step.kind == TASKS for step in self.steps)


@dataclass
class Stages:
    """The constructed stages of a recipe, as a worker needs them (no sources opened)."""

    segment_filters: list[Stage]
    tasks: list[Stage]
    instruction_filters: list[Stage]
    task_names: list[str]

    @property
    def all(self) -> list[Stage]:
        return [*self.segment_filters, *self.tasks, *self.instruction_filters]

    def stage(self, step: Step) -> Stage | None:
        if step.kind == SEGMENT:
            return self.segment_filters[step.index]
        if step.kind == INSTRUCTION:
            return self.instruction_filters[step.index]
        return None

    @property
    def item_tasks(self) -> list[int]:
        return [i for i, task in enumerate(self.tasks) if isinstance(task, ItemTask)]

    def cut(self) -> list[Leg]:
        chain = [
            *(Step(SEGMENT, i) for i in range(len(self.segment_filters))),
            Step(TASKS),
            *(Step(INSTRUCTION, i) for i in range(len(self.instruction_filters))),
        ]
        legs: list[Leg] = []
        current: list[Step] = []
        opens: Step | None = None
        for step in chain:
            if isinstance(self.stage(step), GlobalFilter):
                legs.append(Leg(len(legs), tuple(current), opens, step))
                current, opens = [step], step
            else:
                current.append(step)
        legs.append(Leg(len(legs), tuple(current), opens, None))
        return legs


@dataclass(frozen=True)
class Layout:
    """How the build's work is cut: ``input_shards`` shards of source segments, then one shard
    per item task (its index in the recipe's tasks)."""

    input_shards: int
    item_tasks: tuple[int, ...]

    def shards(self, leg: Leg, tasks_leg: int) -> list[int]:
        """The shards that hold data in a leg: item shards exist from the tasks' leg on."""
        extra = len(self.item_tasks) if leg.index >= tasks_leg else 0
        return list(range(self.input_shards + extra))


@dataclass(frozen=True)
class Job:
    """One work item. ``kind``: leg (run leg ``index`` on ``shard``), decide (global step opening
    leg ``index``, partition ``part``) or route (the last leg's ``shard`` to splits and buckets)."""

    kind: str
    recipe: Recipe
    recipe_key: str
    pivots: tuple[str, ...]
    targets: tuple[str, ...]
    work: str
    layout: Layout
    index: int = 0
    shard: int = 0
    part: int = 0
    bucket_bits: int = 0
    #: Generation round: a planned build makes its rows again, with higher key limits, when the
    #: instruction filters left a group short of its quota (see ``pipeline``).
    round: int = 0
    #: A write item: the output shards ``shard`` to ``end`` (exclusive) of ``split``.
    split: str = ""
    end: int = 0

    @property
    def name(self) -> str:
        if self.kind == "census":
            return f"census-shard-{self.shard:05d}"
        if self.kind == "write":
            return f"write-{self.split}-{self.shard:05d}"
        if self.kind == "decide":
            name = f"decide-{self.index}-part-{self.part:03d}"
        elif self.kind == "route":
            name = f"route-shard-{self.shard:05d}"
        else:
            name = f"leg-{self.index}-shard-{self.shard:05d}"
        return f"{name}-r{self.round}" if self.round else name


def recipe_key(recipe: Recipe) -> str:
    return hashlib.sha256(recipe.model_dump_json().encode("utf-8")).hexdigest()


# --- paths ----------------------------------------------------------------------------------------


def input_path(work: WorkDir, shard: int) -> Path:
    return work / f"input/shard-{shard:05d}.arrow"


def leg_path(work: WorkDir, leg: int, shard: int) -> Path:
    return work / f"legs/{leg}/shard-{shard:05d}.arrow"


def keys_path(work: WorkDir, leg: int, part: int, shard: int) -> Path:
    """Keys that the shard's leg ``leg - 1`` wrote for the global step opening ``leg``."""
    return work / f"global/{leg}/keys/part-{part:03d}/shard-{shard:05d}.arrow"


def drops_folder(work: WorkDir, leg: int, shard: int) -> Path:
    return work / f"global/{leg}/drops/shard-{shard:05d}"


def projection_path(work: WorkDir, shard: int) -> Path:
    return work / f"final/project/shard-{shard:05d}.arrow"


def keep_path(work: WorkDir, shard: int) -> Path:
    return work / f"final/keep/shard-{shard:05d}.arrow"


def bucket_name(bucket: int) -> str:
    return f"bucket-{bucket:05d}"


def bucket_path(work: WorkDir, split: str, bucket: int, shard: int) -> Path:
    return work / f"final/buckets/{split}/{bucket_name(bucket)}/shard-{shard:05d}.arrow"


def census_path(work: WorkDir, shard: int) -> Path:
    return work / f"plan/census/shard-{shard:05d}.arrow"


def limits_path(work: WorkDir, round_: int) -> Path:
    """The key limits of a generation round (task -> language -> highest key); none: no plan."""
    return work / f"plan/limits-{round_}.json"


def read_limits(work: WorkDir, round_: int) -> dict[str, dict[str, int]] | None:
    path = limits_path(work, round_)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# --- the worker side ------------------------------------------------------------------------------

_CACHE: dict[str, tuple[Stages, list[Leg]]] = {}


def worker_stages(job: Job) -> tuple[Stages, list[Leg]]:
    """The recipe's stages, built once per worker process and reused for all its jobs (models
    load in each stage's ``setup``, once)."""
    if job.recipe_key not in _CACHE:
        from bayling_data.pipeline import build_stages

        stages = build_stages(job.recipe, list(job.pivots), set(job.targets))
        _CACHE.clear()
        _CACHE[job.recipe_key] = (stages, stages.cut())
    return _CACHE[job.recipe_key]


def run_job(job: Job) -> str:
    """Run one work item and mark it done (with its counters). Returns the job's name."""
    work = WorkDir(Path(job.work))
    stages, legs = worker_stages(job)
    runner: Callable[[Job, WorkDir, Stages, list[Leg]], Any] = {
        "leg": _run_leg,
        "census": _run_census,
        "decide": _run_decide,
        "route": _run_route,
        "write": _run_write,
    }[job.kind]
    report = runner(job, work, stages, legs)
    work.mark(job.name, report)
    return job.name


def task_name(config: object) -> str:
    """The name a task's rows carry in the `task` column: its `name`, else its type."""
    return getattr(config, "name", None) or config.type  # type: ignore[attr-defined]


def _named(instructions: pa.RecordBatch, name: str, default: str) -> pa.RecordBatch:
    if instructions.num_rows and name != default:
        index = instructions.schema.get_field_index("task")
        instructions = instructions.set_column(
            index, instructions.schema.field(index), pa.array([name] * instructions.num_rows)
        )
    return instructions


def _leg_stages(stages: Stages, leg: Leg) -> list[Stage]:
    found = []
    for step in leg.steps:
        found.extend(stages.tasks if step.kind == TASKS else [stages.stage(step)])
    return found  # type: ignore[return-value]


def _apply_drops(
    batches: Iterator[pa.RecordBatch], stage: Stage, work: WorkDir, leg: int, shard: int
) -> Iterator[pa.RecordBatch]:
    assert isinstance(stage, GlobalFilter)
    folder = drops_folder(work, leg, shard)
    parts = sorted(folder.glob("part-*.arrow")) if folder.is_dir() else []
    drops = pa.concat_tables([read_table(p) for p in parts]) if parts else None
    offset = 0
    for batch in batches:
        masks = slot_masks(drops, batch.num_rows, offset) if drops is not None else {}
        offset += batch.num_rows
        yield stage.timed(stage.apply, batch, masks)


def _generate(
    batches: Iterator[pa.RecordBatch], stages: Stages, job: Job
) -> Iterator[pa.RecordBatch]:
    """Segment batches -> every source task's instructions, batch by batch, in task order; or an
    item shard's task output."""
    configs = job.recipe.tasks
    if job.shard >= job.layout.input_shards:
        index = job.layout.item_tasks[job.shard - job.layout.input_shards]
        task = stages.tasks[index]
        assert isinstance(task, ItemTask)
        for instructions in task.generate():
            yield _named(instructions, stages.task_names[index], configs[index].type)
        return
    for batch in batches:
        for index, task in enumerate(stages.tasks):
            if isinstance(task, ItemTask):
                continue
            name, default = stages.task_names[index], configs[index].type
            if isinstance(task, SegmentTask):
                for chunk in task.chunks(batch):
                    yield _named(chunk, name, default)
            else:
                yield _named(task(batch), name, default)


def _set_gates(job: Job, work: WorkDir, stages: Stages) -> None:
    """Give every task the gate this job's rows pass: a census, the round's key limits, or
    none (every row is made, when the build did not plan)."""
    limits = read_limits(work, job.round) if job.kind == "leg" else None
    for index, task in enumerate(stages.tasks):
        name = stages.task_names[index]
        task.gate = RowGate(  # type: ignore[attr-defined]
            name,
            job.recipe.seed,
            job.pivots,
            limits=None if limits is None else limits.get(name, {}),
            census=job.kind == "census",
        )


def _run_census(job: Job, work: WorkDir, stages: Stages, legs: list[Leg]) -> dict[str, Any]:
    """Every candidate row the shard's tasks could make: its key and languages, no text."""
    for stage in _leg_stages(stages, legs[job.index]):
        stage.reset_counters()  # tasks with state across batches (a ring of partners) start clean
    batches, _ = _leg_batches(job, work, stages, legs, until_tasks=True)
    for _batch in batches:
        pass  # a census gate lets no row in: the batches are empty
    columns: dict[str, list[Any]] = {name: [] for name in PROJECTION_SCHEMA.names}
    for index, task in enumerate(stages.tasks):
        seen = task.gate.take_census()  # type: ignore[attr-defined]
        for name, values in seen.items():
            columns[name].extend(values)
        columns["task"].extend([stages.task_names[index]] * len(seen["mix_key"]))
    table = pa.table(
        {
            "mix_key": pa.array(columns["mix_key"], pa.uint64()),
            **{
                name: pc.dictionary_encode(pa.array(columns[name], pa.string()))
                for name in PROJECTION_SCHEMA.names[1:]
            },
        }
    )
    write_arrow(census_path(work, job.shard), table.cast(PROJECTION_SCHEMA))
    return {"candidates": table.num_rows}


def _leg_batches(
    job: Job, work: WorkDir, stages: Stages, legs: list[Leg], until_tasks: bool = False
) -> tuple[Iterator[pa.RecordBatch], pa.Schema]:
    """The leg's steps chained over the shard's input, lazily; ``until_tasks``: stop after the
    task generators (a census)."""
    leg = legs[job.index]
    _set_gates(job, work, stages)
    item_shard = job.shard >= job.layout.input_shards
    if job.index == 0:
        source = input_path(work, job.shard)
    else:
        source = leg_path(work, job.index - 1, job.shard)
    batches: Iterator[pa.RecordBatch] = iter(())
    schema = WORK_INSTRUCTION_SCHEMA
    if source.exists():
        schema = read_schema(source)
        batches = read_batches(source)
    segments = not item_shard and not any(
        step.kind in (TASKS, INSTRUCTION) for step in _steps_before(legs, leg)
    )
    for position, step in enumerate(leg.steps):
        if step.kind == TASKS:
            batches = _generate(batches, stages, job)
            segments, schema = False, WORK_INSTRUCTION_SCHEMA
            if until_tasks:
                break
            continue
        if step.kind == SEGMENT and not segments:
            continue  # an item shard has no segments
        stage = stages.stage(step)
        assert stage is not None
        if position == 0 and leg.opens_with is not None:
            batches = _apply_drops(batches, stage, work, job.index, job.shard)
        else:
            batches = map(stage, batches)
    return batches, schema


def _run_leg(job: Job, work: WorkDir, stages: Stages, legs: list[Leg]) -> dict[str, Any]:
    leg = legs[job.index]
    involved = _leg_stages(stages, leg)
    for stage in involved:
        stage.reset_counters()
    batches, schema = _leg_batches(job, work, stages, legs)
    last = job.index == len(legs) - 1
    out_schema = INSTRUCTION_SCHEMA if last else schema
    closing = stages.stage(leg.closes_with) if leg.closes_with is not None else None
    keys: list[pa.Table] = []
    projections: list[pa.Table] = []
    with arrow_sink(leg_path(work, job.index, job.shard), out_schema) as sink:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if isinstance(closing, GlobalFilter):
                found = closing.keys(batch)
                offset = pa.array(np.full(found.num_rows, sink.rows, np.uint32))
                keys.append(found.set_column(1, "row", pc.add(found.column("row"), offset)))
            if last:
                projections.append(_project(batch))
                batch = batch.select(INSTRUCTION_SCHEMA.names)
            sink.write(batch)
    if isinstance(closing, GlobalFilter):
        _write_keys(work, job.index + 1, job.shard, keys, closing, job.recipe)
    if last:
        table = pa.concat_tables(projections) if projections else PROJECTION_SCHEMA.empty_table()
        write_arrow(projection_path(work, job.shard), table.cast(PROJECTION_SCHEMA))
    return {
        str(stages.all.index(stage)): {"stats": stage.stats.to_raw(), "details": stage.details()}
        for stage in involved
    }


def _steps_before(legs: list[Leg], leg: Leg) -> list[Step]:
    return [step for earlier in legs[: leg.index] for step in earlier.steps]


def _write_keys(
    work: WorkDir, leg: int, shard: int, keys: list[pa.Table], stage: GlobalFilter, recipe: Recipe
) -> None:
    """The shard's keys, split into the global step's hash partitions (one when it cannot be
    partitioned). Every partition gets a file, empty or not, so a decide item knows it is whole."""
    table = pa.concat_tables(keys) if keys else None
    partitions = recipe.execution.partitions if stage.partitioned else 1
    if table is None:
        table = KEY_SCHEMA.empty_table()
    part = pc.cast(pc.bit_wise_and(table.column("key"), pa.scalar(0xFFFF, pa.uint64())), pa.int64())
    part = pc.remainder(part, partitions) if partitions > 1 else None
    for index in range(partitions):
        chosen = table if part is None else table.filter(pc.equal(part, index))
        write_arrow(keys_path(work, leg, index, shard), chosen)


def _run_decide(job: Job, work: WorkDir, stages: Stages, legs: list[Leg]) -> dict[str, Any]:
    leg = legs[job.index]
    assert leg.opens_with is not None
    stage = stages.stage(leg.opens_with)
    assert isinstance(stage, GlobalFilter)
    tasks_leg = next(leg.index for leg in legs if leg.has_tasks)
    shards = job.layout.shards(legs[job.index - 1], tasks_leg)

    paths = [(shard, keys_path(work, job.index, job.part, shard)) for shard in shards]
    # A partition larger than DECIDE_KEYS is decided in slices of its keys' high bits (keys in
    # different slices never meet), each read from the memory-mapped key files: the decide
    # step's memory stays bounded however many rows the build has.
    slices = 1
    if stage.partitioned:
        total = sum(read_table(path).num_rows for _shard, path in paths)
        slices = max(1, math.ceil(total / DECIDE_KEYS))

    def tables(part: int) -> Iterator[tuple[int, pa.Table]]:
        for shard, path in paths:
            keys = read_table(path)
            if slices > 1:
                high = pc.shift_right(keys.column("key"), pa.scalar(32, pa.uint64()))
                keys = keys.filter(pc.equal(pc.remainder(high, slices), part))
            yield shard, keys

    repeats = stage.decide(tables(0))
    if slices > 1:
        repeats = pa.concat_tables([repeats, *(stage.decide(tables(p)) for p in range(1, slices))])
    shard_column = repeats.column("shard").to_numpy()
    for shard in np.unique(shard_column).tolist():
        chosen = repeats.filter(pa.array(shard_column == shard)).select(["row", "slot"])
        write_arrow(drops_folder(work, job.index, shard) / f"part-{job.part:03d}.arrow", chosen)
    return {"repeats": repeats.num_rows}


def _project(batch: pa.RecordBatch) -> pa.Table:
    columns: list[Any] = [batch.column("mix_key")]
    for name in PROJECTION_SCHEMA.names[1:]:
        columns.append(pc.dictionary_encode(batch.column(name)))
    return pa.Table.from_arrays(columns, names=PROJECTION_SCHEMA.names)


# Routed rows held before they are cut into buckets and written: the bucket pieces of one
# leg batch are a few dozen rows (2,000 rows over 64-256 buckets), and an IPC write costs about
# 80 us whatever its size, so writing each batch's pieces spent 5.0 of the route's 8.7 s at 2M
# Moses pairs; gathering ~32 MiB first writes each (shard, bucket) file in one or a few pieces.
ROUTE_BUFFER_BYTES = 32 * 1024 * 1024


def _run_route(job: Job, work: WorkDir, stages: Stages, legs: list[Leg]) -> dict[str, Any]:
    """Send the shard's kept rows to their split, with their order key, into ordering buckets,
    batch by batch (a shard of a many-language corpus holds millions of rows)."""
    recipe = job.recipe
    keep_all = read_table(keep_path(work, job.shard)).column("keep").to_numpy(zero_copy_only=False)
    splits = ["train"] + (["validation"] if recipe.output.validation_fraction > 0 else [])
    counts = dict.fromkeys(splits, 0)
    router = _BucketRouter(work, job.shard)
    offset = 0
    try:
        source = leg_path(work, len(legs) - 1, job.shard)
        for batch in read_batches(source) if source.exists() else iter(()):
            keep = keep_all[offset : offset + batch.num_rows]
            ordinals = np.arange(offset, offset + batch.num_rows, dtype=np.uint64) | (
                np.uint64(job.shard) << np.uint64(32)
            )
            offset += batch.num_rows
            table = pa.Table.from_batches([batch]).filter(pa.array(keep))
            ordinals = ordinals[keep]
            if table.num_rows == 0:
                continue
            if recipe.output.shuffle:
                # stable_hash(seed, "order", id), its leading parts joined once.
                prefix = hash_prefix(recipe.seed, "order")
                order = np.fromiter(
                    (
                        xxhash.xxh3_64_intdigest((prefix + i).encode())
                        for i in table.column("id").to_pylist()
                    ),
                    dtype=np.uint64,
                    count=table.num_rows,
                )
                buckets = order >> np.uint64(64 - job.bucket_bits) if job.bucket_bits else None
            else:
                order = ordinals
                buckets = None  # unshuffled: the shard is its own bucket, shards in order
            table = table.append_column("_order", pa.array(order)).append_column(
                "_ordinal", pa.array(ordinals)
            )
            held = _held_out(table, recipe)
            for split, mask in (("train", ~held), ("validation", held)):
                if split not in counts:
                    continue
                part = table.filter(pa.array(mask))
                counts[split] += part.num_rows
                if not recipe.output.shuffle:
                    in_bucket = np.full(part.num_rows, job.shard, np.uint64)
                elif buckets is not None:
                    in_bucket = buckets[mask]
                else:
                    in_bucket = np.zeros(part.num_rows, np.uint64)
                router.add(split, part, in_bucket)
        router.flush()
    except BaseException:
        router.abort()
        raise
    router.commit()
    return {"rows": counts, "buckets": router.in_buckets}


class _BucketRouter:
    """A route item's bucket files: rows gathered per split up to :data:`ROUTE_BUFFER_BYTES`,
    then grouped by bucket (in the order they came, which the write phase's sort does not
    depend on) and appended to each bucket's file."""

    def __init__(self, work: WorkDir, shard: int):
        self.work, self.shard = work, shard
        self.in_buckets: dict[str, dict[str, int]] = {}
        self._sinks: dict[tuple[str, int], ArrowSink] = {}
        self._held: dict[str, list[tuple[pa.Table, np.ndarray]]] = {}
        self._held_bytes = 0

    def add(self, split: str, part: pa.Table, in_bucket: np.ndarray) -> None:
        if part.num_rows == 0:
            return
        self._held.setdefault(split, []).append((part, in_bucket))
        self._held_bytes += part.nbytes
        if self._held_bytes >= ROUTE_BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        for split, held in self._held.items():
            part = pa.concat_tables([table for table, _ in held])
            in_bucket = np.concatenate([buckets for _, buckets in held])
            by_bucket = self.in_buckets.setdefault(split, {})
            for bucket, chosen in _by_bucket(part, in_bucket):
                name = bucket_name(bucket)
                by_bucket[name] = by_bucket.get(name, 0) + chosen.num_rows
                sink = self._sinks.get((split, bucket))
                if sink is None:
                    path = bucket_path(self.work, split, bucket, self.shard)
                    sink = self._sinks[(split, bucket)] = ArrowSink(path, chosen.schema)
                sink.write(chosen)
        self._held.clear()
        self._held_bytes = 0

    def commit(self) -> None:
        for sink in self._sinks.values():
            sink.commit()

    def abort(self) -> None:
        for sink in self._sinks.values():
            sink.abort()


def _by_bucket(part: pa.Table, in_bucket: np.ndarray) -> Iterator[tuple[int, pa.Table]]:
    """The rows of each bucket, in their order: one stable sort by bucket and slices (a filter
    per bucket cost a pass over the batch per bucket: 256 of them at 10M pairs)."""
    found = np.unique(in_bucket)
    if len(found) <= 1:
        yield from ((int(bucket), part) for bucket in found.tolist())
        return
    order = np.argsort(in_bucket, kind="stable")
    grouped = part.take(pa.array(order))
    starts = np.searchsorted(in_bucket[order], found, side="left")
    ends = np.append(starts[1:], len(order))
    for bucket, start, end in zip(found.tolist(), starts.tolist(), ends.tolist(), strict=True):
        yield int(bucket), grouped.slice(start, end - start)


def count_rows(table: pa.Table) -> dict[str, dict[str, int]]:
    """Rows per value of each of :data:`COUNT_COLUMNS`, and per language on either side."""
    counts: dict[str, dict[str, int]] = {}
    for column in COUNT_COLUMNS:
        if table.num_rows == 0:
            counts[column] = {}
            continue
        values = pc.value_counts(table.column(column))
        counts[column] = dict(
            sorted(
                zip(
                    values.field("values").to_pylist(),
                    values.field("counts").to_pylist(),
                    strict=True,
                )
            )
        )
    language: Counter[str] = Counter()
    for column in ("src_lang", "tgt_lang"):
        language.update(counts[column])
    counts["language"] = dict(sorted(language.items()))
    return counts


def add_counts(total: Any, more: Any) -> Any:
    """Counters added key by key (nested dicts of numbers); None is nothing."""
    if more is None:
        return total
    if total is None:
        return more
    if isinstance(total, dict):
        keys = list(total) + [key for key in more if key not in total]
        return {key: add_counts(total.get(key), more.get(key)) for key in keys}
    return total + more


def write_plan_path(work: WorkDir, split: str) -> Path:
    """What a split's write items need: the staging folder, its buckets in order and their
    rows (see ``pipeline``)."""
    return work / f"final/write-{split}.json"


def _sorted_bucket(bucket: Path) -> pa.Table:
    """A shuffled bucket's rows from every shard, in output order, without the order columns."""
    table = pa.concat_tables(read_tables(sorted(bucket.glob("shard-*.arrow"))))
    # numpy's lexsort of the two key columns, then one take: 2.6x faster than Arrow's sort_by
    # over the bucket's ~120 chunks (16 buckets of 487,296 rows: 0.39 s against 1.01 s). Both
    # sorts are stable; the ordinals are unique, so there are no ties either way.
    keys = [table.column(name).to_numpy() for name in reversed(ORDER_COLUMNS)]
    return table.drop_columns(list(ORDER_COLUMNS)).take(np.lexsort(keys))


def _bucket_rows(pieces: list[tuple[Path, int, int]], shuffle: bool) -> Iterator[pa.Table]:
    """The rows ``lo`` to ``hi`` of each bucket, in output order. A shuffled bucket is read and
    sorted whole, the next one in a thread while this one is written (Arrow's sort and IPC
    writing release the GIL; 500k rows: 0.8-0.9 s against 1.1-1.6 s, two runs each); an
    unshuffled one is one shard's rows, already in order, streamed."""
    if not shuffle:
        for bucket, lo, hi in pieces:
            offset = 0
            for path in sorted(bucket.glob("shard-*.arrow")):
                for batch in read_batches(path):
                    start, end = max(lo, offset), min(hi, offset + batch.num_rows)
                    if start < end:
                        table = pa.Table.from_batches([batch.slice(start - offset, end - start)])
                        yield table.drop_columns(list(ORDER_COLUMNS))
                    offset += batch.num_rows
        return
    with ThreadPoolExecutor(max_workers=1) as reader:
        ahead = [reader.submit(_sorted_bucket, bucket) for bucket, _, _ in pieces[:1]]
        for index, (_bucket, lo, hi) in enumerate(pieces):
            table = ahead.pop().result()
            if index + 1 < len(pieces):
                ahead.append(reader.submit(_sorted_bucket, pieces[index + 1][0]))
            yield table.slice(lo, hi - lo)


def _run_write(job: Job, work: WorkDir, stages: Stages, legs: list[Leg]) -> dict[str, Any]:
    """Write output shards ``job.shard`` to ``job.end`` of a split from its ordering buckets:
    the rows those shards hold, cut into batches as one writer of the whole split would cut
    them, so that write items on any number of workers give the same bytes."""
    plan = read_json(write_plan_path(work, job.split))
    per_shard, total = plan["rows_per_shard"], plan["total"]
    start, end = shard_rows(total, per_shard, job.shard, job.end)
    pieces, offset = [], 0
    for name, rows in plan["buckets"]:
        lo, hi = max(start, offset), min(end, offset + rows)
        if lo < hi:
            pieces.append((work / f"final/buckets/{job.split}/{name}", lo - offset, hi - offset))
        offset += rows
    writer = SplitWriter(
        Path(plan["staging"]) / job.split,
        INSTRUCTION_SCHEMA,
        per_shard,
        total,
        shards=(job.shard, job.end),
    )
    counts = count_rows(INSTRUCTION_SCHEMA.empty_table())
    for table in _bucket_rows(pieces, job.recipe.output.shuffle):
        writer.write(table)
        counts = add_counts(counts, count_rows(table))
    return {"shards": [shard.to_dict() for shard in writer.close()], "counts": counts}


def _held_out(table: pa.Table, recipe: Recipe) -> np.ndarray:
    """Validation rows, chosen per source segment: every instruction made from one sentence
    lands in the same split, so validation never shares a sentence with train."""
    fraction = recipe.output.validation_fraction
    if fraction <= 0:
        return np.zeros(table.num_rows, dtype=bool)
    corpus = table.column("source_corpus").to_pylist()
    split = table.column("source_split").to_pylist()
    segment = table.column("source_segment_id").to_pylist()
    return np.fromiter(
        (
            unit_interval(recipe.seed, "validation", c, s, g) < fraction
            for c, s, g in zip(corpus, split, segment, strict=True)
        ),
        dtype=bool,
        count=table.num_rows,
    )
