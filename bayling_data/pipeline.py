"""Run a recipe: sources -> segment filters -> task generators -> instruction filters -> shards.

The driver reads the sources once, cutting them into work shards on disk; then every leg of the
chain (see :mod:`bayling_data.legs`) runs shard by shard on the executor, global steps in between;
the driver applies the mixture, and writes the kept rows, split and ordered, as the output shards.
Everything between the phases is a file in the build's work folder, so the executor (this
process, a process pool, Ray) never changes the output, and an interrupted build resumes.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bayling_data import __version__
from bayling_data.checks import SourceRead, sources_as_read
from bayling_data.errors import BaylingError, OutputError, RecipeError
from bayling_data.executors import Executor, make_executor
from bayling_data.executors.base import available_cores
from bayling_data.executors.local import start_fork_server
from bayling_data.filters import InstructionFilter, SegmentFilter, build_filter
from bayling_data.io.shards import (
    ShardInfo,
    finish_split,
    shard_rows,
    split_features,
    write_dataset_dict,
)
from bayling_data.io.staging import (
    MANIFEST_NAME,
    check_output_dir,
    clear_interrupted,
    staged_output,
)
from bayling_data.io.workdir import (
    ArrowSink,
    WorkDir,
    open_work_dir,
    read_json,
    update_state,
    work_dir_for,
    write_arrow,
    write_json,
)
from bayling_data.legs import (
    COUNT_COLUMNS,
    Job,
    Layout,
    Leg,
    Stages,
    add_counts,
    census_path,
    input_path,
    keep_path,
    limits_path,
    projection_path,
    read_limits,
    recipe_key,
    run_job,
    task_name,
    write_plan_path,
)
from bayling_data.mixture import (
    MixtureRows,
    apply_plan,
    can_drop,
    decide_mixture,
    describe,
    plan_limits,
    plan_quotas,
    shortfall_notes,
)
from bayling_data.progress import Progress, as_progress
from bayling_data.recipe import Recipe
from bayling_data.schema import INSTRUCTION_SCHEMA
from bayling_data.sources import Source, build_source
from bayling_data.stage import Stage, StageStats
from bayling_data.tasks import TaskContext, build_task

MANIFEST_FORMAT = "bayling-data-manifest/1"
# Rows per ordering bucket, about: the most rows the final write holds in memory at once (the
# bucket count never changes the order: buckets cut the order keys' range).
BUCKET_ROWS = 50_000


@dataclass
class BuildPlan:
    """Everything a build needs, constructed (and so checked) before anything is written."""

    recipe: Recipe
    sources: list[Source]
    built: Stages
    pivots: list[str]
    targets: list[str]
    absent_languages: list[str]
    #: Loud warnings for the summary and the manifest (training on evaluation data, ...).
    warnings: list[str] = field(default_factory=list)

    @property
    def segment_filters(self) -> list[Stage]:
        return self.built.segment_filters

    @property
    def tasks(self) -> list[Stage]:
        return self.built.tasks

    @property
    def instruction_filters(self) -> list[Stage]:
        return self.built.instruction_filters

    @property
    def stages(self) -> list[Stage]:
        return self.built.all


@dataclass
class BuildReport:
    out_dir: Path
    manifest: dict[str, object]
    stats: list[StageStats]
    seconds: dict[str, float] = field(default_factory=dict)
    #: Each source's segments as read, and what it skipped (for the zero-row warnings).
    sources: list[SourceRead] = field(default_factory=list)


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
    built = build_stages(recipe, pivots, set(targets))
    return BuildPlan(
        recipe=recipe,
        sources=sources,
        built=built,
        pivots=pivots,
        targets=targets,
        absent_languages=absent,
        warnings=evaluation_warnings(sources, built),
    )


def evaluation_warnings(sources: list[Source], built: Stages) -> list[str]:
    """What would make a model trained on this build look better than it is: a source read from
    an evaluation split with no decontamination, or a decontamination eval set not found."""
    from bayling_data.filters.decontaminate import Decontaminate
    from bayling_data.sources.flores import EVAL_SPLITS

    decontaminating = [f for f in built.segment_filters if isinstance(f, Decontaminate)]
    warnings = []
    for index, source in enumerate(sources):
        eval_splits = [s for s in getattr(source, "splits", []) or [] if s in EVAL_SPLITS]
        if eval_splits and not decontaminating:
            warnings.append(
                f"sources.{index} reads the evaluation split {', '.join(eval_splits)} and no "
                "decontaminate filter runs: the build trains on evaluation data"
            )
    for step in decontaminating:
        for missing in step.eval_sets_missing:
            warnings.append(f"decontaminate: no evaluation data found at {missing}")
    return warnings


def build_stages(recipe: Recipe, pivots: list[str], targets: set[str]) -> Stages:
    """The recipe's filters and tasks, constructed; what a worker needs (no source is opened)."""
    filters = [
        _keyed(f"filters.{i}", build_filter, config, recipe.sources)
        for i, config in enumerate(recipe.filters)
    ]
    context = TaskContext(pivots=pivots, targets=targets, seed=recipe.seed)
    return Stages(
        segment_filters=[f for f in filters if isinstance(f, SegmentFilter)],
        tasks=[
            _keyed(f"tasks.{i}", build_task, config, context)
            for i, config in enumerate(recipe.tasks)
        ],
        instruction_filters=[f for f in filters if isinstance(f, InstructionFilter)],
        task_names=[task_name(config) for config in recipe.tasks],
    )


def _sha256_of_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _templates_sha256() -> str:
    folder = Path(str(resources.files("bayling_data.tasks").joinpath("templates")))
    return _sha256_of_files(sorted(folder.glob("*.yaml")))


def recipe_record(recipe: Recipe) -> dict[str, Any]:
    """The recipe as the manifest keeps it: without ``execution``, which changes how a build runs,
    never what it writes (so that builds on 1 or 16 workers have the same manifest)."""
    content = recipe.model_dump(mode="json")
    del content["execution"]
    return content


def signature(recipe: Recipe) -> str:
    """A compact string naming everything that determines the output, sacreBLEU style."""
    content = recipe_record(recipe)
    del content["output"]["dir"]  # where the output goes does not change what it holds
    recipe_json = json.dumps(content, sort_keys=True, ensure_ascii=False)
    recipe_hash = hashlib.sha256(recipe_json.encode("utf-8")).hexdigest()[:12]
    return (
        f"bayling-data:{__version__}|recipe:{recipe_hash}|seed:{recipe.seed}"
        f"|templates:{_templates_sha256()[:12]}|arrow:{pa.__version__}"
    )


# --- the phases of a build ------------------------------------------------------------------------


def _read_sources(
    plan: BuildPlan, work: WorkDir, progress: Progress, seconds: dict[str, float]
) -> dict[str, Any]:
    """Cut the sources into work shards: consecutive whole batches (a document is never split),
    at most ``execution.shard_segments`` segments and ``execution.shard_cells`` texts each, one
    source per shard."""
    execution = plan.recipe.execution
    shards: list[dict[str, Any]] = []
    for source_index, source in enumerate(plan.sources):
        sink: ArrowSink | None = None
        width = max(1, len(source.languages))
        limit = max(1, min(execution.shard_segments, execution.shard_cells // width))
        with progress.phase(f"read {source.corpus}", source.num_segments, "segments") as advance:
            batches = source.iter_batches(plan.recipe.segments_per_batch(width))
            while True:
                started = time.perf_counter()
                batch = next(batches, None)
                seconds["read"] = seconds.get("read", 0.0) + time.perf_counter() - started
                if batch is None:
                    break
                if sink is not None and sink.rows + batch.num_rows > limit and sink.rows:
                    sink.commit()
                    sink = None
                if sink is None:
                    shards.append({"source": source_index, "segments": 0})
                    sink = ArrowSink(input_path(work, len(shards) - 1), batch.schema)
                sink.write(batch)
                shards[-1]["segments"] = sink.rows
                advance(batch.num_rows)
        if sink is not None:
            sink.commit()
    return {"shards": shards, "sources": [source.describe() for source in plan.sources]}


def _run_jobs(
    executor: Executor,
    work: WorkDir,
    jobs: list[Job],
    progress: Progress | None = None,
    phase: str = "",
    unit: str = "shards",
    sizes: list[int] | None = None,
) -> None:
    """Run the jobs not yet marked done, counting finished ones (a resumed build's included),
    or what each job does (``sizes``: its rows, say) in ``unit``."""
    todo = [index for index, job in enumerate(jobs) if not work.done(job.name)]
    if progress is None or not progress.enabled:
        executor.map(run_job, [jobs[index] for index in todo])
        return
    size = sizes or [1] * len(jobs)
    with progress.phase(phase, sum(size), unit) as advance:
        if len(todo) < len(jobs):
            advance(sum(size) - sum(size[index] for index in todo))  # finished before a resume
        executor.map(
            run_job,
            [jobs[index] for index in todo],
            on_done=lambda position: advance(size[todo[position]]),
        )


def _leg_phase(stages: Stages, leg: Any, legs: list[Any]) -> str:
    """A leg's progress label: its number and the stages it runs, first to last."""
    # A leg of no steps of its own (a recipe that opens with a global filter) shows that filter.
    steps = leg.steps or [step for step in (leg.opens_with, leg.closes_with) if step is not None]
    names = [
        "tasks" if step.kind == "tasks" else getattr(stages.stage(step), "name", step.kind)
        for step in steps
    ]
    span = names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}"
    return f"leg {leg.index + 1}/{len(legs)} ({span})"


# Generation rounds at most: the second makes every candidate of a group still short.
MAX_ROUNDS = 3


def _round_of(leg: Leg, tasks_leg: int, round_: int) -> int:
    """Legs before the tasks run once; the tasks' leg and those after it run every round."""
    return round_ if leg.index >= tasks_leg else 0


def _current_round(work: WorkDir) -> int:
    path = work / "plan/round.json"
    return int(read_json(path)["round"]) if path.exists() else 0


def _run_legs(
    plan: BuildPlan,
    work: WorkDir,
    executor: Executor,
    base: Job,
    legs: list[Leg],
    tasks_leg: int,
    round_: int,
    planning: bool,
    progress: Progress | None = None,
) -> None:
    """Run the legs (from the tasks' leg on, in a later round), with their global steps, and
    the census and plan between the segment filters and the tasks."""
    if round_ and not work.done(f"cleaned-r{round_}"):
        # What the last round made from the tasks on is made again: stale drops must not stay.
        for leg in legs[tasks_leg:]:
            shutil.rmtree(work / f"legs/{leg.index}", ignore_errors=True)
            if leg.index > tasks_leg:
                shutil.rmtree(work / f"global/{leg.index}", ignore_errors=True)
        shutil.rmtree(work / "final", ignore_errors=True)
        work.mark(f"cleaned-r{round_}")
    layout = base.layout
    for leg in legs[tasks_leg if round_ else 0 :]:
        leg_round = _round_of(leg, tasks_leg, round_)
        if leg.opens_with is not None and (round_ == 0 or leg.index > tasks_leg):
            stage = plan.built.stage(leg.opens_with)
            parts = plan.recipe.execution.partitions if stage.partitioned else 1  # type: ignore[union-attr]
            _run_jobs(
                executor,
                work,
                [
                    replace(base, kind="decide", index=leg.index, part=p, round=leg_round)
                    for p in range(parts)
                ],
                progress,
                f"decide {getattr(stage, 'name', 'global step')}",
                "partitions",
            )
        shards = layout.shards(leg, tasks_leg)
        if planning and leg.index == tasks_leg and not work.done("plan"):
            _run_jobs(
                executor,
                work,
                [replace(base, kind="census", index=leg.index, shard=k) for k in shards],
                progress,
                "census of the rows the tasks could make",
            )
            work.mark("plan", _plan(plan, work, shards))
        label = _leg_phase(plan.built, leg, legs)
        _run_jobs(
            executor,
            work,
            [replace(base, index=leg.index, shard=k, round=leg_round) for k in shards],
            progress,
            f"{label}, round {round_ + 1}" if round_ else label,
        )


def _fixable(work: WorkDir, round_: int, short: list[list[Any]]) -> list[list[Any]]:
    """The short groups that were not made whole: another round with a higher limit helps."""
    limits = read_limits(work, round_)
    if limits is None:
        return []  # every candidate was made (execution.plan_mixture false)
    top = (1 << 64) - 1
    return [entry for entry in short if limits.get(entry[0], {}).get(entry[1], top) < top]


def _merge_reports(stages: Stages, reports: list[dict[str, Any]]) -> list[tuple[StageStats, Any]]:
    """Every stage's counters and details, its shards' added up."""
    merged: list[tuple[StageStats, Any]] = [
        (StageStats(stage.name, stage.level), None) for stage in stages.all
    ]
    for report in reports:
        for position, entry in report.items():
            stats, details = merged[int(position)]
            stats.merge(StageStats.from_raw(entry["stats"]))
            merged[int(position)] = (stats, add_counts(details, entry["details"]))
    return merged


def _funnel_entry(stats: StageStats, details: Any) -> dict[str, Any]:
    entry = stats.to_dict()
    if details:
        entry["details"] = _sorted_keys(details)
    return entry


def _sorted_keys(value: Any) -> Any:
    """Nested dicts with sorted keys: shards report keys in the order they met them."""
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    return value


def _weights(plan: BuildPlan) -> dict[str, float]:
    weights: dict[str, float] = {}
    for config in plan.recipe.tasks:
        name = task_name(config)
        weights[name] = weights.get(name, 0.0) + config.weight
    return weights


def _plan(plan: BuildPlan, work: WorkDir, shards: list[int]) -> dict[str, Any]:
    """Decide the mixture on the census of candidate rows: each (task, language) group's quota,
    and the key limits of the first generation round. Returns the plan's record."""
    census = MixtureRows.of_files([census_path(work, shard) for shard in shards], plan.pivots)
    choice, report = decide_mixture(census, _weights(plan), plan.recipe.mixture)
    kept, _directions = choice.kept(census)
    quotas = plan_quotas(census, kept)
    if plan.recipe.execution.plan_mixture:
        write_json(limits_path(work, 0), plan_limits(census, quotas))
    return {
        "candidates": census.rows,
        "planned": int(kept.sum()),
        "quotas": [[task, lang, n] for (task, lang), n in sorted(quotas.items())],
        "report": report,
    }


def _next_limits(
    plan: BuildPlan, work: WorkDir, shards: list[int], planned: dict[str, Any], round_: int
) -> dict[str, dict[str, int]]:
    """Key limits for another round: each short group's slack grown by what it lacked (every
    candidate, the round after that)."""
    census = MixtureRows.of_files([census_path(work, shard) for shard in shards], plan.pivots)
    quotas = {(task, lang): n for task, lang, n in planned["quotas"]}
    short = {tuple(group): lacked for *group, lacked in planned.get("short", [])}
    if round_ >= MAX_ROUNDS - 1:
        slack = {group: float("inf") for group in short}
    else:
        slack = {group: 0.05 + 2.0 * lacked / quotas[group] for group, lacked in short.items()}  # type: ignore[index]
    previous = read_limits(work, round_ - 1) or {}
    limits = plan_limits(census, quotas, slack=slack, default_slack=0.05)  # type: ignore[arg-type]
    for task, by_lang in limits.items():  # a group not short keeps its limit
        for lang in by_lang:
            if (task, lang) not in short and lang in previous.get(task, {}):
                by_lang[lang] = previous[task][lang]
    return limits


def _mixture(
    plan: BuildPlan, work: WorkDir, shards: list[int], planned: dict[str, Any] | None
) -> tuple[dict[str, Any], int, list[list[Any]]]:
    """Apply the mixture to the projections of every shard's rows, streaming them (memory does
    not grow with the rows: :mod:`bayling_data.selection`); write each shard's keep mask.
    Returns the realised mixture, the rows kept, and the groups the plan left short."""
    rows = MixtureRows.of_files([projection_path(work, shard) for shard in shards], plan.pivots)
    weights = _weights(plan)
    short: list[list[Any]] = []
    if planned is None:
        choice, report = decide_mixture(rows, weights, plan.recipe.mixture)
        report["notes"] = shortfall_notes(report, plan.recipe.mixture)
    else:
        quotas = {(task, lang): n for task, lang, n in planned["quotas"]}
        choice, lacking = apply_plan(rows, quotas, plan.recipe.mixture)
        short = [[task, lang, n] for (task, lang), n in sorted(lacking.items())]
    kept = np.zeros(len(rows.group_sizes), np.int64)
    masks: list[np.ndarray] = []
    file = 0
    for codes, keep in choice.masks(rows):
        while file < codes.file:  # the shards before this batch's are whole: write them
            _write_keep(work, shards[file], masks)
            file += 1
        masks.append(keep)
        kept += np.bincount(codes.group[keep], minlength=len(kept))
    for rest in range(file, len(shards)):
        _write_keep(work, shards[rest], masks)
    if planned is not None:
        report = describe(rows, kept, weights, plan.recipe.mixture, planned["report"])
        report["planned"] = {"candidates": planned["candidates"], "rows": planned["planned"]}
        report["notes"] = shortfall_notes(planned["report"], plan.recipe.mixture)
    return report, int(kept.sum()), short


def _write_keep(work: WorkDir, shard: int, masks: list[np.ndarray]) -> None:
    """One shard's keep mask, from its batches' masks (none: a shard without rows)."""
    write_arrow(
        keep_path(work, shard), pa.table({"keep": np.concatenate([np.zeros(0, bool), *masks])})
    )
    masks.clear()


def _write_output(
    plan: BuildPlan,
    work: WorkDir,
    executor: Executor,
    base: Job,
    staging: Path,
    final_shards: list[int],
    progress: Progress,
) -> dict[str, Any]:
    """Write each split's buckets in order as the output shards, a range of shards a write item
    on the executor; returns the splits' manifest."""
    recipe = plan.recipe
    per_shard = recipe.output.rows_per_shard
    routed = [work.report(replace(base, kind="route", shard=k).name) for k in final_shards]
    rows: dict[str, int] = {}
    for report in routed:
        for split, n in report["rows"].items():
            rows[split] = rows.get(split, 0) + n
    if not rows:
        rows = {"train": 0}
        if recipe.output.validation_fraction > 0:
            rows["validation"] = 0
    jobs: dict[str, list[Job]] = {}
    for split, total in rows.items():
        in_buckets: dict[str, int] = {}
        for report in routed:
            for name, n in report.get("buckets", {}).get(split, {}).items():
                in_buckets[name] = in_buckets.get(name, 0) + n
        write_json(
            write_plan_path(work, split),
            {
                "staging": str(staging),
                "rows_per_shard": per_shard,
                "total": total,
                "buckets": sorted(in_buckets.items()),
            },
        )
        shards = max(1, math.ceil(total / per_shard))
        # A few items a worker, so that they share the work evenly (an item reads and sorts the
        # bucket it shares with the next one again: a few buckets in all).
        pieces = min(shards, 4 * max(1, executor.workers))
        cuts = [shards * i // pieces for i in range(pieces + 1)]
        jobs[split] = [
            replace(base, kind="write", split=split, shard=cuts[i], end=cuts[i + 1])
            for i in range(pieces)
        ]
    for marker in (work / "done").glob("write-*.done"):
        marker.unlink()  # an earlier attempt's output shards went with its staging folder
    everything = [job for split_jobs in jobs.values() for job in split_jobs]
    ranges = [shard_rows(rows[job.split], per_shard, job.shard, job.end) for job in everything]
    sizes = [end - start for start, end in ranges]
    _run_jobs(executor, work, everything, progress, "write", "rows", sizes)
    features = split_features(INSTRUCTION_SCHEMA)
    splits: dict[str, Any] = {}
    for split, split_jobs in jobs.items():
        shard_info: list[ShardInfo] = []
        counts: Any = None
        for job in split_jobs:
            written = work.report(job.name)
            shard_info.extend(ShardInfo(**info) for info in written["shards"])
            counts = add_counts(counts, written["counts"])
        finish_split(staging / split, features, shard_info)
        splits[split] = {
            "rows": rows[split],
            "shards": [info.to_dict() for info in shard_info],
            "counts": _sorted_counts(counts),
        }
    write_dataset_dict(staging, list(rows))
    return splits


def _sorted_counts(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The counts in the manifest's order: the columns as :data:`COUNT_COLUMNS` lists them,
    then languages, each column's values sorted (the write items report them in any order)."""
    return {column: dict(sorted(counts[column].items())) for column in (*COUNT_COLUMNS, "language")}


def _remove_leg_files(work: WorkDir) -> None:
    """The work shards, the legs' outputs and the global steps' keys and drops of a build that
    has routed its rows (the ordering buckets and every marker stay)."""
    for folder in ("input", "legs", "global"):
        shutil.rmtree(work / folder, ignore_errors=True)


def _pool_likely(plan: BuildPlan) -> bool:
    """Whether this build will want a process pool (more than one work item and core), judged
    before reading: the sources' sizes where they know them."""
    execution = plan.recipe.execution
    if execution.executor not in ("auto", "processes") or execution.workers == 1:
        return False
    if execution.executor == "auto" and available_cores() == 1:
        return False
    sizes = [source.num_segments for source in plan.sources]
    if any(size is None for size in sizes):
        return True
    shards = sum(
        math.ceil(
            size / max(1, min(execution.shard_segments, execution.shard_cells // max(1, width)))
        )
        for size, width in zip(sizes, [len(s.languages) for s in plan.sources], strict=True)
    )  # type: ignore[arg-type]
    return shards + len(plan.built.item_tasks) > 1


def run_build(
    recipe: Recipe,
    *,
    progress: Progress | bool = False,
    resume: bool = False,
    restart: bool = False,
    executor: Executor | None = None,
) -> BuildReport:
    """Build the recipe's output folder. Raises :class:`BaylingError` on a user's mistake.

    ``resume`` continues an interrupted build of the same recipe from its work folder and
    ``restart`` discards that folder's finished work; with neither, a work folder holding
    finished work is refused rather than lost. An ``executor`` (default: the one
    ``recipe.execution`` names) runs the shard-level work; ``progress`` shows each phase (see
    :mod:`bayling_data.progress`; True: as the CLI would).
    """
    progress = as_progress(progress)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    plan = plan_build(recipe)
    out_dir = Path(recipe.output.dir)
    check_output_dir(out_dir)
    stages, legs = plan.built, plan.built.cut()
    tasks_leg = next(leg.index for leg in legs if leg.has_tasks)
    seconds["plan"] = time.perf_counter() - started
    work, _ = open_work_dir(
        work_dir_for(out_dir),
        {
            "signature": signature(recipe),
            "shard_segments": recipe.execution.shard_segments,
            "shard_cells": recipe.execution.shard_cells,
        },
        resume,
        restart,
    )
    clear_interrupted(out_dir)  # a killed build's partial output; this build holds the lock now
    execution = recipe.execution
    if executor is None and _pool_likely(plan):
        start_fork_server()
    try:
        phase = time.perf_counter()
        if not work.done("read"):
            work.mark("read", _read_sources(plan, work, progress, seconds))
        read = work.report("read")
        layout = Layout(len(read["shards"]), tuple(stages.item_tasks))
        update_state(work, shards=layout.input_shards)
        seconds["read"] = time.perf_counter() - phase
        base = Job(
            kind="leg",
            recipe=recipe,
            recipe_key=recipe_key(recipe),
            pivots=tuple(plan.pivots),
            targets=tuple(plan.targets),
            work=str(work.root),
            layout=layout,
        )
        most_shards = layout.input_shards + len(layout.item_tasks)
        owned = executor is None
        if executor is None:
            executor = make_executor(
                execution.executor,
                execution.workers,
                ray_address=execution.ray_address,
                work_items=max(most_shards, execution.partitions),
            )
        try:
            phase = time.perf_counter()
            final_shards = layout.shards(legs[-1], tasks_leg)
            planning = can_drop(_weights(plan), recipe.mixture)
            round_ = _current_round(work)
            while True:
                _run_legs(plan, work, executor, base, legs, tasks_leg, round_, planning, progress)
                done_name = f"mixture-r{round_}" if round_ else "mixture"
                with progress.phase("mixture", len(final_shards), "shards") as advance:
                    if not work.done(done_name):
                        planned = work.report("plan") if planning else None
                        mixture, kept, short = _mixture(plan, work, final_shards, planned)
                        work.mark(done_name, {"mixture": mixture, "kept": kept, "short": short})
                    advance(len(final_shards))
                mixed = work.report(done_name)
                fixable = _fixable(work, round_, mixed["short"]) if planning else []
                if not fixable:
                    break
                planned = dict(work.report("plan"), short=fixable)
                limits = _next_limits(plan, work, final_shards, planned, round_ + 1)
                write_json(limits_path(work, round_ + 1), limits)
                round_ += 1
                write_json(work / "plan/round.json", {"round": round_})
            mixed["mixture"]["rounds"] = round_ + 1
            seconds["stages"] = time.perf_counter() - phase
            phase = time.perf_counter()
            bits = max(0, math.ceil(math.log2(max(1, mixed["kept"]) / BUCKET_ROWS)))
            _run_jobs(
                executor,
                work,
                [replace(base, kind="route", shard=k, bucket_bits=bits) for k in final_shards],
                progress,
                "route",
            )
            seconds["route"] = time.perf_counter() - phase
            phase = time.perf_counter()
            # Routed: the sources' and the legs' files are not read again, not even by a resume
            # (their markers stay). Removing them (1.4 s at 2M Moses pairs) overlaps the write.
            cleanup = threading.Thread(target=_remove_leg_files, args=(work,), daemon=True)
            cleanup.start()
            reports = [
                work.report(
                    replace(
                        base, index=leg.index, shard=k, round=_round_of(leg, tasks_leg, round_)
                    ).name
                )
                for leg in legs
                for k in layout.shards(leg, tasks_leg)
            ]
            stage_counts = _merge_reports(stages, reports)
            with staged_output(out_dir) as staging:
                splits = _write_output(plan, work, executor, base, staging, final_shards, progress)
                manifest = {
                    "format": MANIFEST_FORMAT,
                    "signature": signature(recipe),
                    "bayling_data_version": __version__,
                    "seed": recipe.seed,
                    "recipe": recipe_record(recipe),
                    "languages": {
                        "pivots": plan.pivots,
                        "targets": plan.targets,
                        "requested_but_absent": plan.absent_languages,
                    },
                    "warnings": plan.warnings,
                    "sources": read["sources"],
                    "funnel": [_funnel_entry(*merged) for merged in stage_counts],
                    "mixture": mixed["mixture"],
                    "splits": splits,
                }
                (staging / MANIFEST_NAME).write_text(
                    json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
                )
            cleanup.join()
        finally:
            if owned:
                executor.close()
        seconds["write"] = time.perf_counter() - phase
    except OutputError as err:
        # The output folder could not be written: the finished work is still good.
        raise OutputError(f"{err}; the finished work is kept for --resume") from None
    except BaylingError:
        work.remove()  # a user's mistake: nothing to resume
        raise
    finally:
        work.release()
    work.remove()
    seconds["total"] = time.perf_counter() - started
    segments = [0] * len(plan.sources)
    for shard in read["shards"]:
        segments[shard["source"]] += shard["segments"]
    return BuildReport(
        out_dir=out_dir,
        manifest=manifest,
        stats=[stats for stats, _ in stage_counts],
        seconds=seconds,
        sources=sources_as_read(read["sources"], segments),
    )
