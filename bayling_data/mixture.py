"""The mixture: how many rows of each task, language and direction the output keeps.

Three controls, applied to the filtered rows, all deterministic (a row's fate is a hash of the seed
and its id, so neither batch size nor worker count changes it) and never upsampling:

1. **Per language, within each task**: temperature sampling, ``p_lang ∝ n_lang ** alpha``
   (alpha 1 keeps the natural proportions, 0 makes languages equal), with an optional cap per
   language. A row's language is its non-pivot side (a row between pivots, or a pivot-language
   instruction, counts under its source language).
2. **Per task**: the tasks' shares follow their weights, within an optional total size.
3. **Per direction**: optional quotas, the most rows a direction keeps.

Without a total, each task keeps the most rows its proportions allow (the language that is
scarcest relative to its target share sets the size); with a total, targets are filled in turn
and a language that runs out leaves its share to the others ("water filling").

A build **plans** the mixture before it generates anything: the tasks first take a census of
the rows they could make from the filtered segments (each row's mixture key and languages, no
text), the mixture is decided on that census, and each (task, language) group gets a quota and a
key limit. The tasks then make only the rows under their group's limit (with some slack for what
the instruction filters drop), and :func:`apply_plan` keeps, in each group, the quota's rows with
the smallest keys among those that passed the filters. That is exactly the rows that generating
every candidate and applying the same plan would keep; a group whose slack ran out is generated
again with a higher limit (see ``pipeline``), so the plan never changes the bytes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from bayling_data.config import StrictModel
from bayling_data.hashing import stable_hash
from bayling_data.io.workdir import read_table
from bayling_data.selection import Cut, smallest


class MixtureConfig(StrictModel):
    """How the output is balanced across tasks, languages and directions."""

    total: int | None = Field(default=None, gt=0, description="Total rows to keep at most.")
    language_alpha: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Temperature sampling within each task: p_lang ∝ n_lang^alpha; "
        "null keeps every row.",
    )
    language_cap: int | None = Field(
        default=None, gt=0, description="Most rows a language keeps within a task."
    )
    direction_quotas: dict[str, int] = Field(
        default_factory=dict, description="Most rows a direction (src-tgt) keeps."
    )

    @field_validator("direction_quotas")
    @classmethod
    def _quotas(cls, value: dict[str, int]) -> dict[str, int]:
        from bayling_data.config import resolve_code

        resolved = {}
        for direction, quota in value.items():
            parts = direction.split("-")
            if len(parts) != 2 or quota < 0:
                raise ValueError(f"{direction}: expected SRC-TGT: a number of rows >= 0")
            resolved["-".join(resolve_code(part) for part in parts)] = quota
        return resolved


def target_shares(counts: dict[str, int], alpha: float) -> dict[str, float]:
    """``p_lang ∝ n_lang ** alpha`` over the languages with rows."""
    weights = {lang: float(n) ** alpha for lang, n in counts.items() if n > 0}
    total = sum(weights.values())
    return {lang: w / total for lang, w in weights.items()}


def allocate(
    counts: dict[str, int], shares: dict[str, float], total: int | None, cap: int | None
) -> dict[str, int]:
    """Rows per language: ``shares`` of the total, each at most its rows and the cap.

    Without a total, the largest size whose proportions every language can meet; with one,
    water filling: a language that runs out leaves the rest of its share to the others.
    """
    limits = {lang: min(n, cap) if cap else n for lang, n in counts.items() if lang in shares}
    if total is None:
        size = min(limits[lang] / shares[lang] for lang in shares)
        return {lang: min(limits[lang], round(size * shares[lang])) for lang in shares}
    allocation = {lang: 0 for lang in shares}
    open_langs = set(shares)
    remaining = min(total, sum(limits.values()))
    while remaining > 0 and open_langs:
        weight = sum(shares[lang] for lang in open_langs)
        progress = 0
        for lang in sorted(open_langs):
            want = int(remaining * shares[lang] / weight) or 1
            give = min(want, limits[lang] - allocation[lang], remaining - progress)
            allocation[lang] += give
            progress += give
        remaining -= progress
        open_langs = {lang for lang in open_langs if allocation[lang] < limits[lang]}
        if progress == 0:
            break
    return allocation


def can_drop(weights: dict[str, float], config: MixtureConfig) -> bool:
    """Whether this mixture may leave rows out (else every row is kept and nothing is planned)."""
    return (
        len(weights) > 1
        or config.total is not None
        or config.language_alpha is not None
        or config.language_cap is not None
        or bool(config.direction_quotas)
    )


class ShardCodes:
    """One batch of mixture rows as integer codes (into :class:`MixtureRows`' vocabularies)."""

    __slots__ = ("direction", "file", "group", "keys", "task")

    def __init__(
        self,
        file: int,
        task: np.ndarray,
        group: np.ndarray,
        direction: np.ndarray,
        keys: np.ndarray,
    ):
        self.file = file  # which of the rows' tables (a build's shard) the batch is from
        self.task = task
        self.group = group  # (task, language): task * languages + language
        self.direction = direction
        self.keys = keys


def _encoded(batch: pa.RecordBatch, name: str) -> pa.DictionaryArray:
    column = batch.column(name)
    if column.null_count:
        column = pc.fill_null(column.cast(pa.string()), "")
    return column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)


class MixtureRows:
    """The rows a mixture chooses among: a build's projections (or its census) shard by shard
    on disk, or one table in memory. Each pass reads one batch at a time as integer codes, into
    vocabularies taken in a first pass that also counts every group: no pass holds more than a
    batch, whatever the number of rows (see :mod:`bayling_data.selection`)."""

    def __init__(self, tables: Callable[[], Iterator[pa.Table]], pivots: list[str]):
        self._tables = tables
        combinations: Counter[tuple[str, str, str, str]] = Counter()
        for table in tables():
            for batch in table.to_batches():
                combinations.update(_combinations(batch))
        self.tasks = sorted({c[0] for c in combinations})
        self.languages = sorted({c[1] for c in combinations} | {c[2] for c in combinations})
        self.directions = sorted({c[3] for c in combinations})
        self._task = {name: i for i, name in enumerate(self.tasks)}
        self._language = {name: i for i, name in enumerate(self.languages)}
        self._direction = {name: i for i, name in enumerate(self.directions)}
        self._pivot = np.isin(np.asarray(self.languages, dtype=object), pivots)
        self.group_sizes = np.zeros(len(self.tasks) * len(self.languages), np.int64)
        self.direction_sizes = np.zeros(len(self.directions), np.int64)
        for (task, src, tgt, direction), n in combinations.items():
            language = tgt if src in pivots and tgt not in pivots else src
            self.group_sizes[self.group(task, language)] += n
            self.direction_sizes[self._direction[direction]] += n
        self.rows = int(self.group_sizes.sum())

    @classmethod
    def of_files(cls, paths: list[Path], pivots: list[str]) -> MixtureRows:
        return cls(lambda: (read_table(path) for path in paths), pivots)

    @classmethod
    def of_table(cls, table: pa.Table, pivots: list[str], seed: int) -> MixtureRows:
        """Rows in memory; without a ``mix_key`` column (rows made outside a build) each row's
        key is a hash of the seed and its id."""
        if "mix_key" not in table.column_names:
            ids = table.column("id").to_pylist()
            keys = np.fromiter((stable_hash(seed, "mix", i) for i in ids), np.uint64, len(ids))
            table = table.append_column("mix_key", pa.array(keys, pa.uint64()))
        return cls(lambda: iter([table]), pivots)

    def group(self, task: str, language: str) -> int:
        return self._task[task] * len(self.languages) + self._language[language]

    def group_name(self, group: int) -> tuple[str, str]:
        task, language = divmod(group, len(self.languages))
        return self.tasks[task], self.languages[language]

    def task_groups(self, task: str) -> dict[str, int]:
        """The task's rows per language, for the languages it has rows in."""
        if task not in self._task:
            return {}
        start = self._task[task] * len(self.languages)
        sizes = self.group_sizes[start : start + len(self.languages)].tolist()
        return {lang: n for lang, n in zip(self.languages, sizes, strict=True) if n}

    def direction_code(self, direction: str) -> int | None:
        return self._direction.get(direction)

    def task_code(self, task: str) -> int | None:
        return self._task.get(task)

    def shards(self) -> Iterator[ShardCodes]:
        """Every batch, in order, as codes."""
        width = len(self.languages)
        for file, table in enumerate(self._tables()):
            for batch in table.to_batches():
                task = self._codes(batch, "task", self._task)
                src = self._codes(batch, "src_lang", self._language)
                tgt = self._codes(batch, "tgt_lang", self._language)
                language = np.where(self._pivot[src] & ~self._pivot[tgt], tgt, src)
                yield ShardCodes(
                    file,
                    task,
                    task * width + language,
                    self._codes(batch, "direction", self._direction),
                    batch.column("mix_key").to_numpy(zero_copy_only=False),
                )

    @staticmethod
    def _codes(batch: pa.RecordBatch, name: str, index: dict[str, int]) -> np.ndarray:
        column = _encoded(batch, name)
        lookup = np.asarray([index[v] for v in column.dictionary.to_pylist()], np.int64)
        positions = column.indices.to_numpy(zero_copy_only=False)
        return lookup[positions]


def _combinations(batch: pa.RecordBatch) -> Counter[tuple[str, str, str, str]]:
    """Rows per (task, src_lang, tgt_lang, direction) in one batch."""
    columns = [_encoded(batch, name) for name in ("task", "src_lang", "tgt_lang", "direction")]
    combined = np.zeros(batch.num_rows, np.int64)
    for column in columns:
        combined = combined * len(column.dictionary) + column.indices.to_numpy(zero_copy_only=False)
    found: Counter[tuple[str, str, str, str]] = Counter()
    values, counts = np.unique(combined, return_counts=True)
    names = [column.dictionary.to_pylist() for column in columns]
    for value, n in zip(values.tolist(), counts.tolist(), strict=True):
        key = []
        for column, vocabulary in zip(reversed(columns), reversed(names), strict=True):
            value, position = divmod(value, len(column.dictionary))
            key.append(vocabulary[position])
        found[tuple(reversed(key))] += n  # type: ignore[index]
    return found


@dataclass
class Choice:
    """Which rows a mixture keeps: a :class:`~bayling_data.selection.Cut` per task, or per
    (task, language) group, then one per direction among the rows kept (direction quotas)."""

    by_task: bool
    cut: Cut
    directions: Cut | None = None
    limited: np.ndarray | None = None  # per direction: whether a quota applies

    def masks(self, rows: MixtureRows) -> Iterator[tuple[ShardCodes, np.ndarray]]:
        """Every batch's codes and keep mask, in order."""
        first = self.cut.masker()
        second = self.directions.masker() if self.directions is not None else None
        for codes in rows.shards():
            keep = first(codes.task if self.by_task else codes.group, codes.keys)
            if second is not None and self.limited is not None:
                limited = self.limited[codes.direction]
                chosen = second(np.where(keep & limited, codes.direction, -1), codes.keys)
                keep = np.where(limited, chosen, keep)
            yield codes, keep

    def kept(self, rows: MixtureRows) -> tuple[np.ndarray, np.ndarray]:
        """Rows kept per (task, language) group and per direction."""
        groups = np.zeros(len(rows.group_sizes), np.int64)
        directions = np.zeros(len(rows.direction_sizes), np.int64)
        for codes, keep in self.masks(rows):
            groups += np.bincount(codes.group[keep], minlength=len(groups))
            directions += np.bincount(codes.direction[keep], minlength=len(directions))
        return groups, directions


def _cut(rows: MixtureRows, by_task: bool, ranks: np.ndarray, sizes: np.ndarray) -> Cut:
    def shards() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for codes in rows.shards():
            yield (codes.task if by_task else codes.group), codes.keys

    return smallest(shards, ranks, sizes)


def _with_direction_quotas(
    rows: MixtureRows, choice: Choice, config: MixtureConfig, kept_directions: np.ndarray
) -> Choice:
    """The choice, with each quota'd direction cut to its quota's smallest keys among the rows
    the choice keeps (a direction within its quota keeps them all)."""
    quotas = np.zeros(len(rows.directions), np.int64)
    limited = np.zeros(len(rows.directions), bool)
    for direction, quota in config.direction_quotas.items():
        code = rows.direction_code(direction)
        if code is not None:
            quotas[code], limited[code] = quota, True
    if not limited.any():
        return choice

    def shards() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for codes, keep in choice.masks(rows):
            yield np.where(keep & limited[codes.direction], codes.direction, -1), codes.keys

    directions = smallest(shards, quotas, np.where(limited, kept_directions, 0))
    return Choice(choice.by_task, choice.cut, directions, limited)


def apply_mixture(
    table: pa.Table,
    weights: dict[str, float],
    config: MixtureConfig,
    pivots: list[str],
    seed: int,
) -> tuple[pa.Table, dict[str, object]]:
    """Keep the rows the mixture asks for; returns them, in order, and the realised mixture."""
    rows = MixtureRows.of_table(table, pivots, seed)
    choice, report = decide_mixture(rows, weights, config)
    masks = [keep for _codes, keep in choice.masks(rows)]
    keep = np.concatenate([np.zeros(0, bool), *masks])
    return table.filter(pa.array(keep)), report


Groups = dict[tuple[str, str], int]


def plan_quotas(rows: MixtureRows, kept: np.ndarray) -> Groups:
    """Rows the plan keeps per (task, language) group, from the census's kept counts."""
    return {rows.group_name(group): int(kept[group]) for group in np.flatnonzero(kept).tolist()}


def plan_limits(
    rows: MixtureRows,
    quotas: Groups,
    slack: dict[tuple[str, str], float] | None = None,
    default_slack: float = 0.05,
) -> dict[str, dict[str, int]]:
    """The highest mixture key each (task, language) group's rows may have to be made: the key
    of the group's candidate at rank ``quota * (1 + slack) + 16`` (rows the instruction filters
    will drop need replacements), or every candidate where that reaches the group's size."""
    ranks = np.zeros(len(rows.group_sizes), np.int64)
    wanted: list[int] = []
    for group in np.flatnonzero(rows.group_sizes).tolist():
        name = rows.group_name(group)
        quota = quotas.get(name, 0)
        if quota <= 0:
            continue
        extra = (slack or {}).get(name, default_slack)
        size = int(rows.group_sizes[group])
        ranks[group] = (
            size if math.isinf(extra) else min(size, math.ceil(quota * (1.0 + extra)) + 16)
        )
        wanted.append(group)
    cut = _cut(rows, False, ranks, rows.group_sizes)
    limits: dict[str, dict[str, int]] = {}
    for group in wanted:
        task, language = rows.group_name(group)
        limits.setdefault(task, {})[language] = int(cut.threshold[group])
    return limits


def apply_plan(
    rows: MixtureRows, quotas: Groups, config: MixtureConfig
) -> tuple[Choice, dict[tuple[str, str], int]]:
    """Keep each group's ``quota`` smallest-key rows, then the direction quotas; returns the
    choice and, per group, how many rows it lacked (rows made and filtered fell short)."""
    ranks = np.zeros(len(rows.group_sizes), np.int64)
    short = {}
    for name, quota in quotas.items():
        task, language = name
        present = rows.task_groups(task).get(language, 0)
        if present < quota:
            short[name] = quota - present
        if present:
            ranks[rows.group(task, language)] = quota
    choice = Choice(False, _cut(rows, False, ranks, rows.group_sizes))
    if config.direction_quotas:
        _groups, directions = choice.kept(rows)
        choice = _with_direction_quotas(rows, choice, config, directions)
    return choice, short


def describe(
    rows: MixtureRows,
    kept_groups: np.ndarray,
    weights: dict[str, float],
    config: MixtureConfig,
    plan_report: dict[str, Any],
) -> dict[str, object]:
    """The realised mixture of a planned build: per task and language, the census's candidate
    rows (``available``) and target shares from the plan, the rows made and kept."""
    planned_tasks: dict[str, Any] = plan_report["tasks"]
    report: dict[str, object] = {"tasks": {}}
    for task in weights:
        entry = planned_tasks[task]
        kept = {lang: int(kept_groups[rows.group(task, lang)]) for lang in rows.task_groups(task)}
        kept_total = sum(kept.values())
        report["tasks"][task] = {  # type: ignore[index]
            "weight": weights[task],
            "available": entry["available"],
            "sizes": entry["sizes"],
            "generated": sum(rows.task_groups(task).values()),
            "kept": kept_total,
            "languages": {
                lang: {
                    "available": planned["available"],
                    "target_share": planned["target_share"],
                    "kept": kept.get(lang, 0),
                    "kept_share": round(kept.get(lang, 0) / kept_total, 6) if kept_total else 0.0,
                }
                for lang, planned in entry["languages"].items()
            },
        }
    if config.direction_quotas:
        report["direction_quotas"] = dict(config.direction_quotas)
    report["config"] = config.model_dump(mode="json")
    return report


def shortfall_notes(report: dict[str, object], config: MixtureConfig) -> list[str]:
    """What held the mixture back, in words: the task whose rows cap the proportions, or the
    tasks that could not fill their share of the total, and the total the sources can reach."""
    tasks: dict[str, dict[str, object]] = report["tasks"]  # type: ignore[assignment]
    weights = {task: float(entry["weight"]) for task, entry in tasks.items()}  # type: ignore[arg-type]
    sizes = {task: int(entry["sizes"]) for task, entry in tasks.items() if "sizes" in entry}  # type: ignore[call-overload]
    if len(weights) < 2 or not sizes:
        return []
    weight_sum = sum(weights.values())
    # The largest total whose proportions every task can fill: the scarcest task sets it.
    reach = {task: sizes[task] * weight_sum / weights[task] for task in sizes}
    capping = min(reach, key=lambda task: (reach[task], task))
    reachable = int(reach[capping])
    kept_total = sum(int(entry["kept"]) for entry in tasks.values())  # type: ignore[call-overload]
    notes = []
    if config.total is None:
        others = sorted((t for t in reach if t != capping), key=lambda t: (reach[t], t))
        if others and reach[others[0]] > reach[capping] * 1.01:
            nxt = others[0]
            notes.append(
                f"mixture: {capping} caps the mixture at {kept_total:,} rows: it has "
                f"{sizes[capping]:,} rows for {weights[capping] / weight_sum:.0%} of the "
                f"weight; with more {capping} rows the recipe could reach {int(reach[nxt]):,} "
                f"rows (then {nxt} caps it)"
            )
        return notes
    for task in sorted(sizes):
        wanted = int(config.total * weights[task] / weight_sum)
        if sizes[task] < wanted:
            notes.append(
                f"mixture: total {config.total:,} asks {wanted:,} rows of {task} "
                f"({weights[task] / weight_sum:.0%} of the weight); its sources give "
                f"{sizes[task]:,}"
            )
    if notes:
        notes.append(
            f"mixture: {kept_total:,} of the {config.total:,} rows asked; in the recipe's "
            f"proportions these sources reach {reachable:,} rows ({capping} sets it)"
        )
    return notes


def decide_mixture(
    rows: MixtureRows, weights: dict[str, float], config: MixtureConfig
) -> tuple[Choice, dict[str, object]]:
    """Which rows the mixture keeps and the realised mixture (the rows' sampling keys are their
    ``mix_key``)."""
    report: dict[str, object] = {"tasks": {}}

    # 1. Languages within each task: how large can each task be in its target proportions?
    balanced: dict[str, dict[str, int]] = {}
    shares_by_task: dict[str, dict[str, float]] = {}
    for task in weights:
        counts = rows.task_groups(task)
        if config.language_alpha is None:
            shares = {lang: c / max(1, sum(counts.values())) for lang, c in counts.items()}
            balanced[task] = {
                lang: min(c, config.language_cap) if config.language_cap else c
                for lang, c in counts.items()
            }
        else:
            shares = target_shares(counts, config.language_alpha)
            balanced[task] = allocate(counts, shares, config.total, config.language_cap)
        shares_by_task[task] = shares

    # 2. Tasks by weight, within the total.
    sizes = {task: sum(balanced[task].values()) for task in weights}
    weight_sum = sum(weights.values())
    if config.total is not None:
        quotas = {
            task: min(sizes[task], int(config.total * w / weight_sum))
            for task, w in weights.items()
        }
    else:
        scale = min((sizes[task] / w for task, w in weights.items() if w > 0), default=0.0)
        quotas = {task: min(sizes[task], int(scale * w)) for task, w in weights.items()}

    # Each task's quota of smallest keys, or each of its languages' allocation.
    by_task = config.language_alpha is None and config.language_cap is None
    if by_task:
        ranks = np.zeros(len(rows.tasks), np.int64)
        task_sizes = np.zeros(len(rows.tasks), np.int64)
        for task, quota in quotas.items():
            code = rows.task_code(task)
            if code is not None:
                ranks[code] = quota
                task_sizes[code] = sum(rows.task_groups(task).values())
        choice = Choice(True, _cut(rows, True, ranks, task_sizes))
    else:
        ranks = np.zeros(len(rows.group_sizes), np.int64)
        for task, quota in quotas.items():
            counts = rows.task_groups(task)
            for lang, k in allocate(
                counts, shares_by_task[task], quota, config.language_cap
            ).items():
                ranks[rows.group(task, lang)] = k
        choice = Choice(False, _cut(rows, False, ranks, rows.group_sizes))
    kept_groups, kept_directions = choice.kept(rows)

    for task in quotas:
        counts = rows.task_groups(task)
        kept = {lang: int(kept_groups[rows.group(task, lang)]) for lang in counts}
        kept_total = sum(kept.values())
        report["tasks"][task] = {  # type: ignore[index]
            "weight": weights[task],
            "available": sum(counts.values()),
            "sizes": sizes[task],
            "kept": kept_total,
            "languages": {
                lang: {
                    "available": counts[lang],
                    "target_share": round(shares_by_task[task].get(lang, 0.0), 6),
                    "kept": kept[lang],
                    "kept_share": round(kept[lang] / kept_total, 6) if kept_total else 0.0,
                }
                for lang in sorted(counts)
            },
        }

    # 3. Direction quotas.
    if config.direction_quotas:
        choice = _with_direction_quotas(rows, choice, config, kept_directions)
        report["direction_quotas"] = dict(config.direction_quotas)
    report["config"] = config.model_dump(mode="json")
    return choice, report
