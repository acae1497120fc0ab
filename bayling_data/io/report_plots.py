"""The report's plots, drawn at one fixed size whether a build has 5 languages or 204.

A plot that would grow with the number of languages or directions (one bar each) is unreadable at
Flores-200 scale once the page shrinks it, so each figure is :data:`FIGSIZE` at :data:`DPI`
(1,600 x 900 px) and groups what does not fit: languages by resource tier (each tier its own
panel, named bars only where they fit), directions by kind (to a pivot, from a pivot, ...).

The figures follow BayLing 2's: Fig. 2 the language distribution, Fig. 3 the instruction
categories (Chinese, English, cross-lingual, and the task families in each), Fig. 4 the length
of each instruction in tokens of a named tokenizer; and the build's funnel, in rows, ending with
the mixture.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bayling_data.io.html_report import ReportResult

FIGSIZE = (16.0, 9.0)
DPI = 100
MAX_NAMED = 40  # bars per panel that still get a readable label
TIER_COLOURS = {"high": "#1f77b4", "low": "#ff7f0e", "unknown": "#7f7f7f"}
CATEGORY_ORDER = ("Chinese", "English", "cross-lingual")
TASK_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)


def _save(fig: object, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=DPI)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]


def _thousands(axis: object) -> None:
    """Plain numbers with thousands separators (no ``1e6`` offset)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))  # type: ignore[attr-defined]


def _tier_order(tiers: set[str]) -> list[str]:
    known = [t for t in TIER_COLOURS if t in tiers]
    return known + sorted(tiers - set(known))


def plot_languages(result: ReportResult, path: Path) -> None:
    """Fig. 2: rows per language (a row counted once per language it involves), one panel per
    resource tier, sorted; each language is named where the panel has room, else the largest
    and smallest are. A last panel sums rows and languages per tier."""
    import matplotlib.pyplot as plt

    rows = result.language_rows
    tiers = _tier_order({result.tier_by_language.get(c, "unknown") for c in rows} or {"unknown"})
    members = {
        t: sorted(
            (c for c in rows if result.tier_by_language.get(c, "unknown") == t),
            key=lambda c: (-rows[c], c),
        )
        for t in tiers
    }
    widths = [max(len(members[t]), 3) for t in tiers]
    fig = plt.figure(figsize=FIGSIZE, layout="constrained")
    grid = fig.add_gridspec(1, 2, width_ratios=[4, 1])
    panels = grid[0].subgridspec(1, len(tiers), width_ratios=widths)
    first = None
    for index, tier in enumerate(tiers):
        ax = fig.add_subplot(panels[index], sharey=first)
        first = first or ax
        codes = members[tier]
        heights = [rows[c] for c in codes]
        # Bars grow from 0.5 so that a language with a single row still shows on the log scale.
        ax.bar(
            range(len(codes)),
            [h - 0.5 if h else 0 for h in heights],
            bottom=0.5,
            color=TIER_COLOURS.get(tier, "#7f7f7f"),
            width=0.85,
        )
        ax.set_yscale("log")
        ax.grid(axis="y", which="major", alpha=0.3)
        plural = "language" if len(codes) == 1 else "languages"
        ax.set_title(f"{tier} resource: {len(codes)} {plural}", fontsize=11)
        if len(codes) <= MAX_NAMED:
            ax.set_xticks(range(len(codes)), codes, rotation=70, ha="right", fontsize=9)
        else:  # too many to name: the largest and smallest, in words, inside the panel
            ax.set_xticks([])
            ax.set_xlabel(f"{len(codes)} languages, largest to smallest")
            listed = [f"{c}: {rows[c]:,}" for c in codes[:5]]
            listed += ["...", f"median: {int(np.median(heights)):,}", "..."]
            listed += [f"{c}: {rows[c]:,}" for c in codes[-5:]]
            ax.text(
                0.98,
                0.97,
                "\n".join(listed),
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=10,
                family="monospace",
                bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#999999"},
            )
        if index == 0:
            ax.set_ylabel("rows involving the language (log scale)")
        else:
            ax.tick_params(labelleft=False)
        ax.set_xlim(-0.6, max(len(codes), 3) - 0.4)
    summary = fig.add_subplot(grid[1])
    totals = [sum(rows[c] for c in members[t]) for t in tiers]
    summary.bar(range(len(tiers)), totals, color=[TIER_COLOURS.get(t, "#7f7f7f") for t in tiers])
    for i, (tier, total) in enumerate(zip(tiers, totals, strict=True)):
        summary.text(i, total, f"{total:,}\n{len(members[tier])} lang.", ha="center", va="bottom")
    summary.set_xticks(range(len(tiers)), tiers)
    _thousands(summary.yaxis)
    summary.set_ylim(0, max(totals, default=1) * 1.25 or 1)
    summary.set_title("rows per tier\n(a row counts for each language in it)", fontsize=11)
    fig.suptitle(
        f"Language distribution: {len(rows)} languages, {result.total_rows:,} rows", fontsize=13
    )
    _save(fig, path)


def plot_categories(result: ReportResult, path: Path) -> None:
    """Fig. 3: rows per category (Chinese, English, cross-lingual) split into task families, and
    the cross-lingual rows per kind of direction."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(
        1, 2, figsize=FIGSIZE, layout="constrained", width_ratios=[3, 2]
    )
    tasks = sorted(result.rows_by_task, key=lambda t: (-result.rows_by_task[t], t))
    colours = {t: TASK_COLOURS[i % len(TASK_COLOURS)] for i, t in enumerate(tasks)}
    total = result.total_rows or 1
    categories = list(CATEGORY_ORDER)
    widest = max((sum(result.rows_by_category.get(c, {}).values()) for c in categories), default=1)
    for y, category in enumerate(categories):
        start = 0
        per_task = result.rows_by_category.get(category, {})
        for task in tasks:
            n = per_task.get(task, 0)
            if n:
                left.barh(y, n, left=start, color=colours[task])
                if n / (widest or 1) > 0.12:  # room for the name inside the bar
                    left.text(start + n / 2, y, task, ha="center", va="center", fontsize=8)
                start += n
        left.text(start, y, f" {start:,} ({100 * start / total:.1f}%)", va="center", fontsize=11)
    left.set_yticks(range(len(categories)), categories, fontsize=12)
    left.invert_yaxis()
    left.set_xlim(0, (widest or 1) * 1.35)
    left.set_xlabel("rows")
    _thousands(left.xaxis)
    left.legend(
        handles=[plt.Rectangle((0, 0), 1, 1, color=colours[t]) for t in tasks],
        labels=[f"{t} ({result.rows_by_task[t]:,})" for t in tasks],
        title="task family",
        loc="lower right",
        fontsize=9,
    )
    left.set_title(
        "Categories: Chinese and English rows have source and target in that language;\n"
        "every other row is cross-lingual",
        fontsize=11,
    )
    kinds = [k for k, n in result.rows_by_direction_kind.items() if n]
    values = [result.rows_by_direction_kind[k] for k in kinds]
    right.barh(range(len(kinds)), values, color="#9467bd")
    right.set_yticks(range(len(kinds)), kinds, fontsize=10)
    right.invert_yaxis()
    for i, n in enumerate(values):
        right.text(n, i, f" {n:,}", va="center", fontsize=9)
    right.set_xlim(0, max(values, default=1) * 1.3)
    right.set_xlabel("rows")
    _thousands(right.xaxis)
    per = sorted(result.rows_by_direction.values())
    spread = (
        f"{len(per):,} directions; rows per direction: min {per[0]:,}, "
        f"median {int(np.median(per)):,}, max {per[-1]:,}"
        if per
        else "no rows"
    )
    right.set_title(f"Rows per kind of direction\n{spread}", fontsize=11)
    fig.suptitle(f"Instruction categories: {result.total_rows:,} rows", fontsize=13)
    _save(fig, path)


def plot_lengths(result: ReportResult, path: Path) -> None:
    """Fig. 4: per task family, how many rows have each length (all of a row's messages)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    tasks = list(result.length_histograms)
    cols = min(3, max(1, len(tasks)))
    rows = max(1, -(-len(tasks) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=FIGSIZE, squeeze=False, layout="constrained")
    unit = (
        f"tokens ({result.tokenizer_label})"
        if result.length_unit == "tokens"
        else "characters (no tokenizer: give report --tokenizer)"
    )
    for ax, task in zip(axes.flat, tasks, strict=False):
        counts, edges = result.length_histograms[task]
        ax.stairs(counts, edges, fill=True, color="#17becf")
        mean = result.mean_length.get(task)
        ax.set_title(
            f"{task}: {sum(counts):,} rows" + (f", mean {mean:,.0f}" if mean else ""), fontsize=10
        )
        ax.set_xlabel(result.length_unit, fontsize=9)
        ax.set_ylabel("rows", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # rows are whole numbers
        _thousands(ax.yaxis)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.set_visible(False)
    fig.suptitle(f"Length per instruction (all messages of a row), in {unit}", fontsize=13)
    _save(fig, path)


def plot_funnel(result: ReportResult, path: Path) -> None:
    """The funnel: segment filters in sides, then rows from the tasks to the mixture and the
    rows written, each part on its own axis; and the languages that lost the most sides."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=FIGSIZE, layout="constrained", width_ratios=[2, 2, 1])
    for ax, unit, title in (
        (axes[0], "sides", "Segment filters (sides: one language of a segment)"),
        (axes[1], "rows", "Rows: tasks, instruction filters, mixture, written"),
    ):
        stages = [s for s in result.funnel_rows if s["unit"] == unit]
        names = [s["stage"] for s in stages]
        kept = [s["out"] for s in stages]
        dropped = [max(s["dropped"], 0) for s in stages]
        ax.barh(range(len(stages)), kept, color="#2ca02c", label="kept")
        ax.barh(range(len(stages)), dropped, left=kept, color="#d62728", label="dropped")
        for i, s in enumerate(stages):
            text = f" {s['out']:,}" + (f"  (-{s['dropped']:,})" if s["dropped"] else "")
            ax.text(s["in"], i, text, va="center", fontsize=9)
        ax.set_yticks(range(len(stages)), names, fontsize=10)
        ax.invert_yaxis()
        ax.set_xlim(0, max((s["in"] for s in stages), default=1) * 1.45 or 1)
        ax.set_xlabel(unit)
        ax.set_title(title, fontsize=11)
        _thousands(ax.xaxis)
    axes[0].legend(loc="lower right", fontsize=9)
    lost = result.sides_dropped_by_language
    worst = sorted((c for c in lost if lost[c]), key=lambda c: (-lost[c], c))[:20]
    axes[2].barh(range(len(worst)), [lost[c] for c in worst], color="#d62728")
    axes[2].set_yticks(range(len(worst)), worst, fontsize=9)
    axes[2].invert_yaxis()
    for i, c in enumerate(worst):
        axes[2].text(lost[c], i, f" {lost[c]:,}", va="center", fontsize=8)
    axes[2].set_xlim(0, max((lost[c] for c in worst), default=1) * 1.4)
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    more = sum(1 for c in lost if lost[c]) - len(worst)
    axes[2].set_title(
        "Sides dropped per language\n"
        + (f"top {len(worst)}, and {more} more" if more > 0 else "every language with drops"),
        fontsize=11,
    )
    fig.suptitle(
        f"Filter funnel: {result.total_rows:,} rows written (sides before the tasks, rows after)",
        fontsize=13,
    )
    _save(fig, path)


PLOTS: dict[str, tuple[str, Callable[[ReportResult, Path], None]]] = {
    "languages": ("Language distribution (Fig. 2)", plot_languages),
    "categories": ("Instruction categories (Fig. 3)", plot_categories),
    "lengths": ("Length per instruction (Fig. 4)", plot_lengths),
    "funnel": ("Filter funnel", plot_funnel),
}
