"""A self-contained HTML report of a finished build: plots (embedded PNG) and sample rows.

``write_report(out_dir)`` reads the build's ``manifest.json`` and its Arrow shards and writes
``report.html`` plus one PNG per plot into ``out_dir/report/`` (or ``to_dir``). The page embeds
the PNGs as base64 and uses no external JS, CSS or fonts, so it reads offline. The numbers behind
each plot are returned in :class:`ReportResult`, so tests (and scripts) can check them.

Plot labels use language codes (``zho_Hans``) rather than native names: the default matplotlib
fonts have no CJK glyphs.
"""

from __future__ import annotations

import base64
import html
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bayling_data.io.shards import iter_split_batches
from bayling_data.io.staging import output_errors
from bayling_data.progress import Progress
from bayling_data.report import read_manifest

REPORT_DIRNAME = "report"
HTML_NAME = "report.html"
TOP_DIRECTIONS = 20
SAMPLES_PER_TASK = 3
SAMPLE_CHARS = 400
HIST_BINS = 30
TIER_COLOURS = {"high": "#1f77b4", "low": "#ff7f0e", "unknown": "#7f7f7f"}


@dataclass
class ReportResult:
    """Where the report went and the numbers each plot was drawn from."""

    html_path: Path
    png_paths: dict[str, Path]
    rows_by_language: dict[str, int]
    """Rows per language, counted once per side (source and target), as the manifest's
    ``counts.language`` does: a monolingual row counts twice for its language."""
    tokens_by_language: dict[str, int]
    """Length units (tokens or characters) per language, attributed per side like the rows."""
    tier_by_language: dict[str, str]
    rows_by_task: dict[str, int]
    rows_by_direction: dict[str, int]
    length_unit: str
    """``characters`` or ``tokens``."""
    tokenizer: str | None
    length_histograms: dict[str, tuple[list[int], list[float]]]
    """Per task: (counts per bin, bin edges) of the length of each row's messages."""
    funnel: dict[str, dict[str, dict[str, int]]]
    """Per filter (in manifest order), per language: ``in``, ``dropped``, ``out``."""
    samples: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def _recipe_tokenizer(recipe: dict) -> str | None:
    """The first tokenizer a recipe's filters name, so lengths match what the filters measured."""
    for entry in recipe.get("filters") or []:
        name = entry.get("tokenizer") if isinstance(entry, dict) else None
        if name:
            return str(name)
    return None


def _length_counter(tokenizer: str | None) -> Callable[[list[str]], list[int]] | None:
    """Tokens per text with the recipe's tokenizer; None: characters, counted on the column."""
    if tokenizer is None:
        return None
    from bayling_data.filters.units import load_token_counter

    return load_token_counter(tokenizer)


def _tier(code: str) -> str:
    """The registry's resource tier; a code it does not know is ``unknown`` (no crash)."""
    from bayling_data.errors import UnknownLanguageError
    from bayling_data.languages import registry

    try:
        return str(registry().get(code).tier)
    except UnknownLanguageError:  # a report should not fail on an odd code
        return "unknown"


def _funnel(manifest: dict) -> dict[str, dict[str, dict[str, int]]]:
    """Filter stages only: segment filters count sides by language (``by_key``), instruction
    filters rows involving each language (``by_language``). Repeated names get a suffix."""
    funnel: dict[str, dict[str, dict[str, int]]] = {}
    for stage in manifest.get("funnel", []):
        level = stage.get("level")
        if level == "segment":
            by_lang = stage.get("by_key") or {}
        elif level == "instruction":
            by_lang = stage.get("by_language") or {}
        else:
            continue
        name = str(stage["name"])
        if name in funnel:
            index = 2
            while f"{name}#{index}" in funnel:
                index += 1
            name = f"{name}#{index}"
        funnel[name] = {
            lang: {k: int(entry[k]) for k in ("in", "dropped", "out")}
            for lang, entry in sorted(by_lang.items())
        }
    return funnel


def _char_sizes(messages: pa.ListArray) -> np.ndarray:
    """Per row, ``len("\\n".join(contents))`` in code points (a null content counts as empty),
    computed on the column rather than row by row."""
    per_row = pc.list_value_length(messages).fill_null(0).to_numpy(zero_copy_only=False)
    contents = pc.list_flatten(messages).field("content")
    chars = pc.utf8_length(contents).fill_null(0).to_numpy(zero_copy_only=False)
    parents = np.repeat(np.arange(len(messages)), per_row)
    total = np.bincount(parents, weights=chars, minlength=len(messages)).astype(np.int64)
    return total + np.maximum(per_row.astype(np.int64) - 1, 0)


def _token_sizes(messages: pa.ListArray, counter: Callable[[list[str]], list[int]]) -> np.ndarray:
    texts = ["\n".join(m["content"] or "" for m in msgs) for msgs in messages.to_pylist()]
    return np.asarray(counter(texts) if texts else [], dtype=np.int64)


def _count(target: Counter[str], values: pa.Array, weights: np.ndarray | None = None) -> None:
    """Add a column's value counts (or sums of ``weights`` per value) to ``target``."""
    if weights is None:
        counted = pc.value_counts(values)
        names, numbers = counted.field("values"), counted.field("counts")
    else:
        grouped = pa.table({"v": values, "w": weights}).group_by("v").aggregate([("w", "sum")])
        names, numbers = grouped.column("v"), grouped.column("w_sum")
    for name, number in zip(names.to_pylist(), numbers.to_pylist(), strict=True):
        target[name] += int(number)


def _collect(
    out_dir: Path,
    manifest: dict,
    counter: Callable[[list[str]], list[int]] | None,
    progress: Progress,
) -> dict:
    """One pass over every split's rows, batch by batch: per-language and per-task counts, each
    task's lengths as counts per distinct length, and a few samples; nothing here grows with the
    number of rows (``counter`` None: lengths in characters, on the column)."""
    rows_by_language: Counter[str] = Counter()
    tokens_by_language: Counter[str] = Counter()
    rows_by_task: Counter[str] = Counter()
    rows_by_direction: Counter[str] = Counter()
    lengths: dict[str, Counter[int]] = {}
    samples: dict[str, list[dict[str, str]]] = {}
    splits = manifest.get("splits", {})
    for split in sorted(splits):
        total = splits[split].get("rows") if isinstance(splits[split], dict) else None
        with progress.phase(f"read {split}", total, "rows") as advance:
            for batch in iter_split_batches(out_dir, split):
                messages = batch.column("messages")
                tasks = batch.column("task")
                sizes = (
                    _char_sizes(messages) if counter is None else _token_sizes(messages, counter)
                )
                _count(rows_by_task, tasks)
                _count(rows_by_direction, batch.column("direction"))
                for side in ("src_lang", "tgt_lang"):
                    _count(rows_by_language, batch.column(side))
                    _count(tokens_by_language, batch.column(side), sizes)
                grouped = (
                    pa.table({"task": tasks, "size": sizes})
                    .group_by(["task", "size"])
                    .aggregate([("size", "count")])
                )
                for task, size, n in zip(
                    *(grouped.column(c).to_pylist() for c in ("task", "size", "size_count")),
                    strict=True,
                ):
                    lengths.setdefault(task, Counter())[int(size)] += int(n)
                _pick_samples(samples, batch, split)
                advance(batch.num_rows)
    return {
        "rows_by_language": dict(sorted(rows_by_language.items())),
        "tokens_by_language": dict(sorted(tokens_by_language.items())),
        "rows_by_task": dict(sorted(rows_by_task.items())),
        "rows_by_direction": dict(sorted(rows_by_direction.items())),
        "lengths": dict(sorted(lengths.items())),
        "samples": dict(sorted(samples.items())),
    }


def _pick_samples(
    samples: dict[str, list[dict[str, str]]], batch: pa.RecordBatch, split: str
) -> None:
    """The first :data:`SAMPLES_PER_TASK` train rows of each task; a task with no train row gets
    the first row of the split it is in. Only the chosen rows become Python objects."""
    chosen: list[int] = []
    owners: list[str] = []
    taken: Counter[str] = Counter()
    for index, task in enumerate(batch.column("task").to_pylist()):
        have = len(samples.get(task, ())) + taken[task]
        if (split == "train" and have < SAMPLES_PER_TASK) or not have:
            chosen.append(index)
            owners.append(task)
            taken[task] += 1
    if not chosen:
        return
    rows = batch.select(["messages", "direction"]).take(chosen).to_pylist()
    for task, row in zip(owners, rows, strict=True):
        samples.setdefault(task, []).append(_sample(row["messages"], row["direction"], split))


def _sample(messages: list[dict], direction: str, split: str) -> dict[str, str]:
    """A row as plain strings: the first user turn and the first assistant turn, shortened."""

    def first(role: str) -> str:
        text = next((m["content"] for m in messages if m["role"] == role), "") or ""
        return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + " …"

    return {
        "split": split,
        "direction": direction,
        "turns": str(sum(1 for m in messages if m["role"] == "user")),
        "user": first("user"),
        "assistant": first("assistant"),
    }


def _histograms(lengths: dict[str, Counter[int]]) -> dict[str, tuple[list[int], list[float]]]:
    """Per task, counts over shared bin edges that span every row, so each total is its rows.
    ``lengths`` holds rows per distinct length: the same bins as the lengths themselves."""
    every = [n for values in lengths.values() for n in values]
    if not every:
        return {}
    low, high = min(every), max(every)
    edges = np.linspace(low, high if high > low else low + 1, HIST_BINS + 1)
    result = {}
    for task, values in lengths.items():
        sizes = np.fromiter(values.keys(), dtype=np.int64, count=len(values))
        weights = np.fromiter(values.values(), dtype=np.int64, count=len(values))
        counts, _ = np.histogram(sizes, bins=edges, weights=weights)
        result[task] = ([int(c) for c in counts], [float(e) for e in edges])
    return result


def _plot_languages(result: ReportResult, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    langs = sorted(result.rows_by_language, key=lambda c: (-result.rows_by_language[c], c))
    colours = [TIER_COLOURS.get(result.tier_by_language[c], "#7f7f7f") for c in langs]
    width = max(8.0, 0.45 * len(langs) + 2)
    fig, axes = plt.subplots(2, 1, figsize=(width, 8), sharex=True)
    unit = "tokens" if result.length_unit == "tokens" else "characters"
    for ax, values, label in (
        (axes[0], result.rows_by_language, "rows (per side)"),
        (axes[1], result.tokens_by_language, f"{unit} (per side)"),
    ):
        # Bars grow from 0.5 so that a language with a single row still shows on the log scale.
        heights = [max(values[c], 0) for c in langs]
        ax.bar(range(len(langs)), [h - 0.5 if h else 0 for h in heights], bottom=0.5, color=colours)
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5)
        ax.set_ylabel(f"{label}, log scale")
        ax.grid(axis="y", which="major", alpha=0.3)
    axes[1].set_xticks(range(len(langs)), langs, rotation=60, ha="right", fontsize=8)
    tiers = sorted(set(result.tier_by_language.values()))
    axes[0].legend(
        handles=[Patch(color=TIER_COLOURS.get(t, "#7f7f7f"), label=f"{t} resource") for t in tiers],
        title="registry tier",
        loc="upper right",
    )
    axes[0].set_title("Language distribution (a row counts for its source and its target)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_categories(result: ReportResult, path: Path) -> None:
    import matplotlib.pyplot as plt

    tasks = sorted(result.rows_by_task, key=lambda t: (-result.rows_by_task[t], t))
    directions = sorted(result.rows_by_direction, key=lambda d: (-result.rows_by_direction[d], d))
    top = directions[:TOP_DIRECTIONS]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(14, max(4.5, 0.3 * max(len(top), len(tasks)) + 1.5))
    )
    total = sum(result.rows_by_task.values()) or 1
    left.barh(range(len(tasks)), [result.rows_by_task[t] for t in tasks], color="#2ca02c")
    left.set_yticks(range(len(tasks)), tasks)
    left.invert_yaxis()
    for i, t in enumerate(tasks):
        n = result.rows_by_task[t]
        left.text(n, i, f" {n:,} ({100 * n / total:.1f}%)", va="center", fontsize=8)
    left.set_xlim(0, max(result.rows_by_task.values(), default=1) * 1.35)
    left.set_xlabel("rows")
    left.set_title("Rows per task family")
    right.barh(range(len(top)), [result.rows_by_direction[d] for d in top], color="#9467bd")
    right.set_yticks(range(len(top)), top, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("rows")
    shown = f"top {len(top)} of {len(directions)}" if len(directions) > len(top) else "all"
    right.set_title(f"Rows per direction ({shown})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_lengths(result: ReportResult, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    tasks = list(result.length_histograms)
    cols = min(3, max(1, len(tasks)))
    rows = max(1, -(-len(tasks) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(max(8, 5 * cols), 3.2 * rows + 1), squeeze=False)
    if result.tokenizer:
        unit = f"tokens ({Path(result.tokenizer).name})"
    else:
        unit = "characters (no tokenizer in the recipe)"
    for ax, task in zip(axes.flat, tasks, strict=False):
        counts, edges = result.length_histograms[task]
        ax.stairs(counts, edges, fill=True, color="#17becf")
        ax.set_title(f"{task} ({sum(counts):,} rows)", fontsize=10)
        ax.set_xlabel(unit, fontsize=8)
        ax.set_ylabel("rows", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # rows are whole numbers
    for ax in list(axes.flat)[len(tasks) :]:
        ax.set_visible(False)
    fig.suptitle(f"Length per instruction (all messages)\nunit: {unit}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_funnel(result: ReportResult, path: Path) -> None:
    import matplotlib.pyplot as plt

    filters = list(result.funnel) or ["(no filters)"]
    langs = sorted({lang for per in result.funnel.values() for lang in per})
    fig, axes = plt.subplots(
        1, len(filters), figsize=(max(8, 2.6 * len(filters)), 0.3 * len(langs) + 2.5), sharey=True
    )
    axes = np.atleast_1d(axes)
    positions = range(len(langs))
    for ax, name in zip(axes, filters, strict=True):
        per = result.funnel.get(name, {})
        kept = [per.get(lang, {}).get("out", 0) for lang in langs]
        dropped = [per.get(lang, {}).get("dropped", 0) for lang in langs]
        ax.barh(positions, kept, color="#2ca02c", label="kept")
        ax.barh(positions, dropped, left=kept, color="#d62728", label="dropped")
        for i, (k, d) in enumerate(zip(kept, dropped, strict=True)):
            if d:
                ax.text(k + d, i, f" -{d}", va="center", fontsize=7, color="#d62728")
        ax.set_title(f"{name}\n{sum(dropped):,} dropped (sum over langs)", fontsize=9)
        ax.tick_params(axis="x", labelsize=7, rotation=30)
        ax.set_xlim(0, max((k + d for k, d in zip(kept, dropped, strict=True)), default=1) * 1.25)
    axes[0].set_yticks(list(positions), langs, fontsize=8)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=8, ncols=2)
    fig.suptitle(
        "Filter funnel per language (segment filters: sides; instruction filters: rows "
        "involving the language)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


PLOTS: dict[str, tuple[str, Callable[[ReportResult, Path], None]]] = {
    "languages": ("Language distribution", _plot_languages),
    "categories": ("Instruction categories", _plot_categories),
    "lengths": ("Length per instruction", _plot_lengths),
    "funnel": ("Filter funnel", _plot_funnel),
}


def _html(result: ReportResult, manifest: dict) -> str:
    """The page: every PNG inlined as a data URI, every text from the data escaped."""
    esc = html.escape
    recipe = manifest.get("recipe", {})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>bayling-data report: {esc(str(recipe.get('name', '')))}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
        "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;text-align:left}"
        "td.t{white-space:pre-wrap;max-width:40em}</style></head><body>",
        f"<h1>Build report: {esc(str(recipe.get('name', '')))}</h1>",
        f"<p>{esc(str(recipe.get('description') or ''))}</p>",
        f"<p>Rows: {sum(result.rows_by_task.values()):,}; "
        f"splits: {esc(', '.join(sorted(manifest.get('splits', {}))))}; "
        f"length unit: {esc(result.length_unit)}"
        f"{' (' + esc(result.tokenizer) + ')' if result.tokenizer else ''}.</p>",
    ]
    for key, (title, _) in PLOTS.items():
        data = base64.b64encode(result.png_paths[key].read_bytes()).decode("ascii")
        parts.append(
            f'<h2>{esc(title)}</h2>\n<img alt="{esc(title)}" src="data:image/png;base64,{data}">'
        )
    parts.append("<h2>Sample rows per task family</h2>")
    parts.append(
        "<table><tr><th>task</th><th>split</th><th>direction</th><th>turns</th>"
        "<th>first user message</th><th>first assistant message</th></tr>"
    )
    for task, rows in result.samples.items():
        for row in rows:
            parts.append(
                f"<tr><td>{esc(task)}</td><td>{esc(row['split'])}</td>"
                f"<td>{esc(row['direction'])}</td><td>{esc(row['turns'])}</td>"
                f'<td class="t">{esc(row["user"])}</td>'
                f'<td class="t">{esc(row["assistant"])}</td></tr>'
            )
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def write_report(
    out_dir: str | Path, to_dir: str | Path | None = None, *, progress: Progress | None = None
) -> ReportResult:
    """Write ``report.html`` and the plots' PNGs for the build in ``out_dir``.

    Files go to ``to_dir`` or ``out_dir/report`` (``datasets.load_from_disk`` ignores it). The
    shards are read batch by batch, so memory does not grow with the build.
    """
    progress = progress or Progress.off()
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot's import

    out_dir = Path(out_dir)
    target = Path(to_dir) if to_dir is not None else out_dir / REPORT_DIRNAME
    manifest = read_manifest(out_dir)  # a one-line error when out_dir is not a build
    key = "--to" if to_dir is not None else "report"
    # The folder before the reading: a folder that cannot be made fails at once, not after
    # minutes of progress lines.
    with output_errors(target, key):
        target.mkdir(parents=True, exist_ok=True)
    tokenizer = _recipe_tokenizer(manifest.get("recipe", {}))
    collected = _collect(out_dir, manifest, _length_counter(tokenizer), progress)
    result = ReportResult(
        html_path=target / HTML_NAME,
        png_paths={key: target / f"{key}.png" for key in PLOTS},
        rows_by_language=collected["rows_by_language"],
        tokens_by_language=collected["tokens_by_language"],
        tier_by_language={code: _tier(code) for code in collected["rows_by_language"]},
        rows_by_task=collected["rows_by_task"],
        rows_by_direction=collected["rows_by_direction"],
        length_unit="tokens" if tokenizer else "characters",
        tokenizer=tokenizer,
        length_histograms=_histograms(collected["lengths"]),
        funnel=_funnel(manifest),
        samples=collected["samples"],
    )
    with output_errors(target, key):
        with progress.phase("plot", len(PLOTS), "plots") as advance:
            for name, (_, plot) in PLOTS.items():
                plot(result, result.png_paths[name])
                advance(1)
        # The page last and under a temporary name: a report.html is always a whole one.
        partial = target / f".{HTML_NAME}.partial"
        partial.write_text(_html(result, manifest), "utf-8")
        os.replace(partial, result.html_path)
    return result
