"""Run a recipe: sources -> segment filters -> task generators -> instruction filters -> shards.

The flow is written as a plan of stages over input batches, with data handed between the
generation pass and the writing pass through an Arrow file on disk, so that a later executor can
run the per-batch stages in other processes or machines without changing them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bayling_data import __version__
from bayling_data.errors import BaylingError, RecipeError
from bayling_data.filters import InstructionFilter, SegmentFilter, build_filter
from bayling_data.hashing import stable_hash, unit_interval
from bayling_data.io.shards import ShardInfo, write_dataset_dict, write_split
from bayling_data.io.staging import MANIFEST_NAME, check_output_dir, staged_output
from bayling_data.mixture import apply_mixture
from bayling_data.recipe import Recipe
from bayling_data.schema import INSTRUCTION_SCHEMA
from bayling_data.sources import Source, build_source
from bayling_data.stage import Stage, StageStats
from bayling_data.tasks import ItemTask, TaskContext, build_task

MANIFEST_FORMAT = "bayling-data-manifest/1"
COUNT_COLUMNS = ("task", "direction", "src_lang", "tgt_lang", "prompt_lang")


@dataclass
class BuildPlan:
    """Everything a build needs, constructed (and so checked) before anything is written."""

    recipe: Recipe
    sources: list[Source]
    segment_filters: list[SegmentFilter]
    tasks: list[Stage]
    instruction_filters: list[InstructionFilter]
    pivots: list[str]
    targets: list[str]
    absent_languages: list[str]

    @property
    def stages(self) -> list[Stage]:
        return [*self.segment_filters, *self.tasks, *self.instruction_filters]


@dataclass
class BuildReport:
    out_dir: Path
    manifest: dict[str, object]
    stats: list[StageStats]
    seconds: dict[str, float] = field(default_factory=dict)


def _keyed(key: str, factory: Callable[..., Any], *args: object) -> Any:
    """Build one recipe entry; a user error names the entry's key path."""
    try:
        return factory(*args)
    except BaylingError as err:
        raise type(err)(f"{key}: {err}") from None


def plan_build(recipe: Recipe) -> BuildPlan:
    """Open the sources and construct the stages; every user mistake surfaces here."""
    pivots = list(recipe.pivot_languages)
    explicit = recipe.target_codes()
    wanted = sorted(set(pivots) | recipe.named_set_codes())
    sources = []
    for index, config in enumerate(recipe.sources):
        try:
            sources.append(build_source(config, wanted))
        except BaylingError as err:
            raise type(err)(f"sources.{index}: {err}") from None
    present = {code for source in sources for code in source.languages}
    if explicit is not None:
        for code in explicit:
            if code not in present:
                raise RecipeError(
                    f"target_languages: {code} is in no source "
                    f"(the sources hold: {', '.join(sorted(present)) or 'nothing'})"
                )
    if not set(pivots) & present:
        raise RecipeError(
            f"pivot_languages: none of {', '.join(pivots)} is in any source "
            f"(the sources hold: {', '.join(sorted(present)) or 'nothing'})"
        )
    targets = sorted((set(explicit) if explicit is not None else present) - set(pivots))
    targets = [code for code in targets if code in present]
    absent = sorted(set(explicit or []) - present) if explicit is not None else []
    filters = [
        _keyed(f"filters.{i}", build_filter, config) for i, config in enumerate(recipe.filters)
    ]
    context = TaskContext(pivots=pivots, targets=set(targets), seed=recipe.seed)
    return BuildPlan(
        recipe=recipe,
        sources=sources,
        segment_filters=[f for f in filters if isinstance(f, SegmentFilter)],
        tasks=[
            _keyed(f"tasks.{i}", build_task, config, context)
            for i, config in enumerate(recipe.tasks)
        ],
        instruction_filters=[f for f in filters if isinstance(f, InstructionFilter)],
        pivots=pivots,
        targets=targets,
        absent_languages=absent,
    )


class _Progress:
    """A rich progress bar over segments read, or nothing when not on a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    @contextmanager
    def track(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        if not self.enabled:
            yield lambda _n: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)


def _generate(plan: BuildPlan, spill: Path, progress: _Progress, seconds: dict[str, float]) -> int:
    """The per-batch pass: every source batch through every stage, instructions spilled to disk."""
    rows = 0
    with pa.OSFile(str(spill), "wb") as sink, pa.ipc.new_stream(sink, INSTRUCTION_SCHEMA) as out:
        for source in plan.sources:
            with progress.track(f"reading {source.corpus}", source.num_segments) as advance:
                batches = source.iter_batches()
                while True:
                    started = time.perf_counter()
                    batch = next(batches, None)
                    seconds["load"] = seconds.get("load", 0.0) + time.perf_counter() - started
                    if batch is None:
                        break
                    for segment_filter in plan.segment_filters:
                        batch = segment_filter(batch)
                    for config, task in zip(plan.recipe.tasks, plan.tasks, strict=True):
                        if isinstance(task, ItemTask):
                            continue
                        rows += _finish(plan, config, task(batch), out)
                    advance(batch.num_rows)
        # Item tasks read their own inputs (QA items, instruction sets), once.
        for config, task in zip(plan.recipe.tasks, plan.tasks, strict=True):
            if isinstance(task, ItemTask):
                with progress.track(f"generating {task_name(config)}", None) as advance:
                    for instructions in task.generate():
                        rows += _finish(plan, config, instructions, out)
                        advance(instructions.num_rows)
    return rows


def task_name(config: object) -> str:
    """The name a task's rows carry in the `task` column: its `name`, else its type."""
    return getattr(config, "name", None) or config.type  # type: ignore[attr-defined]


def _finish(plan: BuildPlan, config: object, instructions: pa.RecordBatch, out) -> int:
    """Name, filter and spill one batch of generated instructions; returns the rows spilled."""
    name = task_name(config)
    if instructions.num_rows and name != config.type:  # type: ignore[attr-defined]
        index = instructions.schema.get_field_index("task")
        instructions = instructions.set_column(
            index, instructions.schema.field(index), pa.array([name] * instructions.num_rows)
        )
    for instruction_filter in plan.instruction_filters:
        instructions = instruction_filter(instructions)
    if instructions.num_rows:
        # Work columns stay behind: only output columns are spilled.
        out.write_batch(instructions.select(INSTRUCTION_SCHEMA.names))
    return instructions.num_rows


def _hash_column(values: list[str], *salt: object) -> np.ndarray:
    return np.fromiter((stable_hash(*salt, v) for v in values), dtype=np.uint64, count=len(values))


def _split(table: pa.Table, recipe: Recipe) -> dict[str, pa.Table]:
    """Train and an optional validation split, chosen per source segment: every instruction made
    from one sentence lands in the same split, so validation never shares a sentence with train."""
    fraction = recipe.output.validation_fraction
    if fraction <= 0:
        return {"train": table}
    corpus = table.column("source_corpus").to_pylist()
    split = table.column("source_split").to_pylist()
    segment = table.column("source_segment_id").to_pylist()
    held = np.fromiter(
        (
            unit_interval(recipe.seed, "validation", c, s, g) < fraction
            for c, s, g in zip(corpus, split, segment, strict=True)
        ),
        dtype=bool,
        count=table.num_rows,
    )
    return {"train": table.filter(pa.array(~held)), "validation": table.filter(pa.array(held))}


def _order(table: pa.Table, recipe: Recipe) -> pa.Table:
    if not recipe.output.shuffle or table.num_rows < 2:
        return table
    keys = _hash_column(table.column("id").to_pylist(), recipe.seed, "order")
    return table.take(pa.array(np.argsort(keys, kind="stable")))


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


def _funnel_entry(stage: Stage) -> dict[str, object]:
    entry = stage.stats.to_dict()
    details = stage.details()
    if details:
        entry["details"] = details
    return entry


def _sha256_of_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _templates_sha256() -> str:
    folder = Path(str(resources.files("bayling_data.tasks").joinpath("templates")))
    return _sha256_of_files(sorted(folder.glob("*.yaml")))


def signature(recipe: Recipe) -> str:
    """A compact string naming everything that determines the output, sacreBLEU style."""
    content = recipe.model_dump(mode="json")
    del content["output"]["dir"]  # where the output goes does not change what it holds
    recipe_json = json.dumps(content, sort_keys=True, ensure_ascii=False)
    recipe_hash = hashlib.sha256(recipe_json.encode("utf-8")).hexdigest()[:12]
    return (
        f"bayling-data:{__version__}|recipe:{recipe_hash}|seed:{recipe.seed}"
        f"|templates:{_templates_sha256()[:12]}|arrow:{pa.__version__}"
    )


def run_build(recipe: Recipe, *, progress: bool = False) -> BuildReport:
    """Build the recipe's output folder. Raises :class:`BaylingError` on a user's mistake."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    plan = plan_build(recipe)
    out_dir = Path(recipe.output.dir)
    check_output_dir(out_dir)
    seconds["plan"] = time.perf_counter() - started
    bar = _Progress(progress)
    with staged_output(out_dir) as staging:
        work = staging / "_work"
        work.mkdir()
        spill = work / "instructions.arrow"
        phase = time.perf_counter()
        _generate(plan, spill, bar, seconds)
        seconds["generate"] = time.perf_counter() - phase - seconds.get("load", 0.0)
        phase = time.perf_counter()
        with pa.memory_map(str(spill)) as source:
            table = pa.ipc.open_stream(source).read_all()
        weights: dict[str, float] = {}
        for config in recipe.tasks:
            name = task_name(config)
            weights[name] = weights.get(name, 0.0) + config.weight
        table, mixture = apply_mixture(table, weights, recipe.mixture, plan.pivots, recipe.seed)
        splits = {name: _order(part, recipe) for name, part in _split(table, recipe).items()}
        shard_info: dict[str, list[ShardInfo]] = {}
        for name, part in splits.items():
            shard_info[name] = write_split(part, staging / name, recipe.output.rows_per_shard)
        write_dataset_dict(staging, list(splits))
        manifest = {
            "format": MANIFEST_FORMAT,
            "signature": signature(recipe),
            "bayling_data_version": __version__,
            "seed": recipe.seed,
            "recipe": recipe.model_dump(mode="json"),
            "languages": {
                "pivots": plan.pivots,
                "targets": plan.targets,
                "requested_but_absent": plan.absent_languages,
            },
            "sources": [source.describe() for source in plan.sources],
            "funnel": [_funnel_entry(stage) for stage in plan.stages],
            "mixture": mixture,
            "splits": {
                name: {
                    "rows": part.num_rows,
                    "shards": [shard.to_dict() for shard in shard_info[name]],
                    "counts": count_rows(part),
                }
                for name, part in splits.items()
            },
        }
        del table, splits
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
        (staging / MANIFEST_NAME).write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        seconds["write"] = time.perf_counter() - phase
    seconds["total"] = time.perf_counter() - started
    return BuildReport(
        out_dir=out_dir, manifest=manifest, stats=[s.stats for s in plan.stages], seconds=seconds
    )
