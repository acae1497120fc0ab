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
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from bayling_data.config import StrictModel
from bayling_data.hashing import stable_hash


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


def row_languages(table: pa.Table, pivots: list[str]) -> np.ndarray:
    """Each row's language for balancing: the first non-pivot side, else the source."""
    src = _objects(table.column("src_lang"))
    tgt = _objects(table.column("tgt_lang"))
    pivot_src = np.isin(src, pivots)
    return np.where(pivot_src & ~np.isin(tgt, pivots), tgt, src)


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


def _take_first(keys: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` rows (indices) with the smallest keys: a deterministic, order-free sample."""
    return rows[np.argsort(keys[rows], kind="stable")[:n]]


def apply_mixture(
    table: pa.Table,
    weights: dict[str, float],
    config: MixtureConfig,
    pivots: list[str],
    seed: int,
) -> tuple[pa.Table, dict[str, object]]:
    """Keep the rows the mixture asks for; returns them, in order, and the realised mixture."""
    keep, report = mixture_keep(table, weights, config, pivots, seed)
    return table.filter(pa.array(keep)), report


def _objects(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A string column as a numpy object array whose equal values share one Python string
    (a few bytes a row, where ``to_pylist`` would make a string per row)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    encoded = pc.dictionary_encode(column)
    values = np.asarray([*encoded.dictionary.to_pylist(), None], dtype=object)
    indices = pc.fill_null(encoded.indices, len(values) - 1).to_numpy(zero_copy_only=False)
    return values[indices]


def can_drop(weights: dict[str, float], config: MixtureConfig) -> bool:
    """Whether this mixture may leave rows out (else every row is kept and nothing is planned)."""
    return (
        len(weights) > 1
        or config.total is not None
        or config.language_alpha is not None
        or config.language_cap is not None
        or bool(config.direction_quotas)
    )


Groups = dict[tuple[str, str], int]


def _group_columns(table: pa.Table, pivots: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return _objects(table.column("task")), row_languages(table, pivots)


def _codes(column: pa.ChunkedArray | pa.Array, vocabulary: pa.Array) -> np.ndarray:
    """Each value's position in ``vocabulary`` (an int array: no Python string per row)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.string())
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pc.index_in(column, value_set=vocabulary).to_numpy(zero_copy_only=False)


def group_codes(table: pa.Table, pivots: list[str]) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Each row's (task, language) group as an integer, and the groups those integers name;
    integer codes keep a census of tens of millions of rows in a few bytes a row."""

    def vocabulary(*names: str) -> pa.Array:
        values: set[str] = set()
        for name in names:
            column = table.column(name)
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            values.update(v for v in pc.unique(column).to_pylist() if v is not None)
        return pa.array(sorted(values), pa.string())

    tasks_vocab, langs_vocab = vocabulary("task"), vocabulary("src_lang", "tgt_lang")
    task = _codes(table.column("task"), tasks_vocab).astype(np.int64)
    src = _codes(table.column("src_lang"), langs_vocab).astype(np.int64)
    tgt = _codes(table.column("tgt_lang"), langs_vocab).astype(np.int64)
    is_pivot = np.isin(np.asarray(langs_vocab.to_pylist(), dtype=object), pivots)
    if len(is_pivot) == 0:
        return np.zeros(0, np.int64), []
    language = np.where(is_pivot[src] & ~is_pivot[tgt], tgt, src)
    width = len(langs_vocab)
    names = [(t, lang) for t in tasks_vocab.to_pylist() for lang in langs_vocab.to_pylist()]
    return task * width + language, names


def plan_quotas(table: pa.Table, keep: np.ndarray, pivots: list[str]) -> Groups:
    """Rows the plan keeps per (task, language) group, from the census and its keep mask."""
    codes, names = group_codes(table, pivots)
    counts = np.bincount(codes[keep], minlength=len(names)) if len(names) else []
    return {names[i]: int(n) for i, n in enumerate(counts) if n}


def _sorted_groups(codes: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by group then key, and where each group's run starts."""
    order = np.lexsort((keys, codes))
    sorted_codes = codes[order]
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = sorted_codes[1:] != sorted_codes[:-1]
    return order, np.flatnonzero(new_group)


def plan_limits(
    table: pa.Table,
    keys: np.ndarray,
    quotas: Groups,
    pivots: list[str],
    slack: dict[tuple[str, str], float] | None = None,
    default_slack: float = 0.05,
) -> dict[str, dict[str, int]]:
    """The highest mixture key each (task, language) group's rows may have to be made: the key
    of the group's candidate at rank ``quota * (1 + slack) + 16`` (rows the instruction filters
    will drop need replacements), or every candidate where that reaches the group's size."""
    codes, names = group_codes(table, pivots)
    limits: dict[str, dict[str, int]] = {}
    if not len(codes):
        return limits
    order, starts = _sorted_groups(codes, keys)
    ends = np.append(starts[1:], len(order))
    sorted_keys = keys[order]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        group = names[int(codes[order[start]])]
        quota = quotas.get(group, 0)
        if quota <= 0:
            continue
        extra = (slack or {}).get(group, default_slack)
        size = end - start
        rank = size if math.isinf(extra) else min(size, math.ceil(quota * (1.0 + extra)) + 16)
        limit = (1 << 64) - 1 if rank >= size else int(sorted_keys[start + rank - 1])
        limits.setdefault(group[0], {})[group[1]] = limit
    return limits


def apply_plan(
    table: pa.Table,
    keys: np.ndarray,
    quotas: Groups,
    config: MixtureConfig,
    pivots: list[str],
) -> tuple[np.ndarray, dict[tuple[str, str], int]]:
    """Keep each group's ``quota`` smallest-key rows, then the direction quotas; returns the
    mask and, per group, how many rows it lacked (rows made and filtered fell short)."""
    codes, names = group_codes(table, pivots)
    keep = np.zeros(table.num_rows, dtype=bool)
    present = (
        dict(zip(names, np.bincount(codes, minlength=len(names)).tolist(), strict=True))
        if len(names)
        else {}
    )
    short = {g: q - present.get(g, 0) for g, q in quotas.items() if present.get(g, 0) < q}
    if table.num_rows:
        order, starts = _sorted_groups(codes, keys)
        lengths = np.diff(np.append(starts, len(order)))
        rank = np.arange(len(order)) - np.repeat(starts, lengths)
        allowed = np.asarray(
            [quotas.get(names[int(codes[order[s]])], 0) for s in starts.tolist()], dtype=np.int64
        )
        keep[order[rank < np.repeat(allowed, lengths)]] = True
    _direction_quotas(table, keep, keys, config)
    return keep, short


def _direction_quotas(
    table: pa.Table, keep: np.ndarray, keys: np.ndarray, config: MixtureConfig
) -> None:
    if not config.direction_quotas:
        return
    directions = _objects(table.column("direction"))
    for direction, quota in config.direction_quotas.items():
        rows = np.flatnonzero(keep & (directions == direction))
        if len(rows) > quota:
            keep[rows] = False
            keep[_take_first(keys, rows, quota)] = True


def describe(
    table: pa.Table,
    keep: np.ndarray,
    weights: dict[str, float],
    config: MixtureConfig,
    pivots: list[str],
    plan_report: dict[str, Any],
) -> dict[str, object]:
    """The realised mixture of a planned build: per task and language, the census's candidate
    rows (``available``) and target shares from the plan, the rows made and kept."""
    tasks, languages = _group_columns(table, pivots)
    planned_tasks: dict[str, Any] = plan_report["tasks"]
    report: dict[str, object] = {"tasks": {}}
    for task in weights:
        entry = planned_tasks[task]
        in_task = tasks == task
        kept = Counter(languages[keep & in_task].tolist())
        kept_total = sum(kept.values())
        report["tasks"][task] = {  # type: ignore[index]
            "weight": weights[task],
            "available": entry["available"],
            "sizes": entry["sizes"],
            "generated": int(in_task.sum()),
            "kept": kept_total,
            "languages": {
                lang: {
                    "available": planned["available"],
                    "target_share": planned["target_share"],
                    "kept": kept[lang],
                    "kept_share": round(kept[lang] / kept_total, 6) if kept_total else 0.0,
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


def mixture_keep(
    table: pa.Table,
    weights: dict[str, float],
    config: MixtureConfig,
    pivots: list[str],
    seed: int,
    keys: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, object]]:
    """Which rows the mixture keeps (a mask) and the realised mixture. ``table`` needs the
    columns task, src_lang, tgt_lang and direction; the rows' sampling ``keys`` are its
    ``mix_key`` column (a build's rows), else ``stable_hash(seed, "mix", id)``."""
    n = table.num_rows
    if keys is None and "mix_key" in table.column_names:
        keys = table.column("mix_key").to_numpy(zero_copy_only=False)
    if keys is None:  # rows made outside a build: a key from the row's content
        ids = table.column("id").to_pylist()
        keys = np.fromiter((stable_hash(seed, "mix", i) for i in ids), dtype=np.uint64, count=n)
    tasks = _objects(table.column("task"))
    languages = row_languages(table, pivots)
    keep = np.zeros(n, dtype=bool)
    report: dict[str, object] = {"tasks": {}}

    # 1. Languages within each task: how large can each task be in its target proportions?
    balanced: dict[str, dict[str, int]] = {}
    shares_by_task: dict[str, dict[str, float]] = {}
    for task in weights:
        counts = Counter(languages[tasks == task].tolist())
        if config.language_alpha is None:
            shares = {lang: c / max(1, sum(counts.values())) for lang, c in counts.items()}
            limits = {
                lang: min(c, config.language_cap) if config.language_cap else c
                for lang, c in counts.items()
            }
            balanced[task] = limits
        else:
            shares = target_shares(dict(counts), config.language_alpha)
            balanced[task] = allocate(dict(counts), shares, config.total, config.language_cap)
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

    for task, quota in quotas.items():
        in_task = tasks == task
        counts = Counter(languages[in_task].tolist())
        if config.language_alpha is None and config.language_cap is None:
            per_language = None
        else:
            per_language = allocate(dict(counts), shares_by_task[task], quota, config.language_cap)
        if per_language is None:
            chosen = _take_first(keys, np.flatnonzero(in_task), quota)
            keep[chosen] = True
        else:
            for lang, k in per_language.items():
                rows = np.flatnonzero(in_task & (languages == lang))
                keep[_take_first(keys, rows, k)] = True
        kept = Counter(languages[keep & in_task].tolist())
        kept_total = sum(kept.values())
        report["tasks"][task] = {  # type: ignore[index]
            "weight": weights[task],
            "available": int(in_task.sum()),
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
    _direction_quotas(table, keep, keys, config)
    if config.direction_quotas:
        report["direction_quotas"] = dict(config.direction_quotas)
    report["config"] = config.model_dump(mode="json")
    return keep, report
