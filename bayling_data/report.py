"""Tables for people: the build summary, ``inspect`` and ``langs`` output (rich)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bayling_data.io.shards import iter_split_batches
from bayling_data.io.staging import MANIFEST_NAME
from bayling_data.languages import Language


def _n(value: int) -> str:
    return f"{value:,}"


def build_summary(report: object, console: Console) -> None:
    """Rows in and out of every stage with its time, and rows written per task and language."""
    manifest = report.manifest  # type: ignore[attr-defined]
    seconds = report.seconds  # type: ignore[attr-defined]
    stages = Table(
        title="stages",
        title_justify="left",
        caption="a stage's seconds are added up over all workers",
        caption_justify="left",
    )
    for column in ("stage", "counts", "in", "dropped", "out", "seconds"):
        stages.add_column(column, justify="left" if column in ("stage", "counts") else "right")
    segments = sum(int(sum(s.get("splits", {}).values())) for s in manifest["sources"])
    stages.add_row("read", "segments", "", "", _n(segments), f"{seconds.get('read', 0.0):.2f}")
    for stats in report.stats:  # type: ignore[attr-defined]
        if stats.by_key:
            total_in = sum(entry["in"] for entry in stats.by_key.values())
            unit = "sides" if stats.level == "segment" else "rows"
            stages.add_row(
                stats.name,
                unit,
                _n(total_in),
                _n(stats.dropped),
                _n(total_in - stats.dropped),
                f"{stats.seconds:.2f}",
            )
        else:
            stages.add_row(
                stats.name,
                "segments -> rows",
                _n(stats.rows_in),
                "",
                _n(stats.rows_out),
                f"{stats.seconds:.2f}",
            )
    stages.add_row("write", "rows", "", "", "", f"{seconds.get('write', 0.0):.2f}")
    console.print(stages)

    drops = Table(
        title="dropped/in by filter and language (segment filters count sides, instruction "
        "filters rows involving the language)",
        title_justify="left",
    )
    filters = [s for s in report.stats if s.level in ("segment", "instruction") and s.by_key]  # type: ignore[attr-defined]
    if filters:
        drops.add_column("language")
        for stats in filters:
            drops.add_column(stats.name, justify="right")
        per_language = [stats.by_language() for stats in filters]
        languages = sorted({code for table in per_language for code in table})
        for code in languages:
            cells = []
            for table in per_language:
                entry = table.get(code, {"in": 0, "dropped": 0})
                cells.append(f"{entry['dropped']}/{entry['in']}")
            drops.add_row(code, *cells)
        console.print(drops)
        reasons: dict[str, int] = {}
        for stats in filters:
            for entry in stats.by_key.values():
                for reason, n in entry["reasons"].items():
                    key = f"{stats.name}: {reason}"
                    reasons[key] = reasons.get(key, 0) + n
        if reasons:
            why = Table(title="why rows were dropped", title_justify="left")
            why.add_column("filter: reason")
            why.add_column("dropped", justify="right")
            for key, n in sorted(reasons.items(), key=lambda item: -item[1]):
                why.add_row(key, _n(n))
            console.print(why)
    skipped_table(manifest, console)
    mixture_table(manifest, console)
    written_table(manifest, console)
    console.print(
        f"wrote {_n(sum(s['rows'] for s in manifest['splits'].values()))} rows to "
        f"{report.out_dir} in {seconds.get('total', 0.0):.1f}s"  # type: ignore[attr-defined]
    )
    console.print(f"signature: {manifest['signature']}")
    warnings_lines(manifest, console)


def warnings_lines(manifest: dict[str, object], console: Console) -> None:
    """The manifest's warnings (training on evaluation data, eval sets not found), loud; and
    what held the mixture back (a task too small for its weight)."""
    for warning in manifest.get("warnings", []) or []:  # type: ignore[union-attr]
        console.print(f"[bold red]warning:[/bold red] {warning}")
    mixture = manifest.get("mixture") or {}
    for note in mixture.get("notes", []) or []:  # type: ignore[union-attr]
        console.print(f"[bold yellow]note:[/bold yellow] {note}")


def mixture_table(manifest: dict[str, object], console: Console) -> None:
    """Per task: rows it could make (the plan's census), made, and kept by the mixture."""
    mixture: dict[str, Any] = manifest.get("mixture") or {}  # type: ignore[assignment]
    tasks = mixture.get("tasks") or {}
    if len(tasks) < 2 and "planned" not in mixture:
        return
    table = Table(title="mixture (rows per task)", title_justify="left")
    for column in ("task", "weight", "candidates", "made", "kept"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task, entry in tasks.items():
        made = entry.get("generated", entry["available"])
        table.add_row(
            task, f"{entry['weight']:g}", _n(entry["available"]), _n(made), _n(entry["kept"])
        )
    console.print(table)


def task_skips(manifest: dict[str, object]) -> list[tuple[str, str, int]]:
    """(stage, what: reason, count) for every skip a stage reports in its manifest ``details``:
    ``skipped`` ({reason: n} of items), ``skipped_<unit>`` ({reason: n}) or ``skipped_<reason>``
    (n)."""
    found: list[tuple[str, str, int]] = []
    for entry in manifest.get("funnel", []):  # type: ignore[attr-defined]
        details = entry.get("details")
        if not isinstance(details, dict):
            continue
        for key, value in details.items():
            if not key.startswith("skipped"):
                continue
            suffix = key[len("skipped") :].lstrip("_")
            if isinstance(value, dict):
                unit = suffix or "items"
                found += [(entry["name"], f"{unit}: {why}", n) for why, n in value.items() if n]
            elif isinstance(value, int) and value:
                found.append((entry["name"], suffix, value))
    return found


def skipped_table(manifest: dict[str, object], console: Console) -> None:
    """What the tasks skipped, and why (nothing is printed when they skipped nothing)."""
    skips = task_skips(manifest)
    if not skips:
        return
    table = Table(title="skipped by tasks (not turned into rows)", title_justify="left")
    table.add_column("task")
    table.add_column("reason")
    table.add_column("skipped", justify="right")
    for name, why, n in skips:
        table.add_row(name, why, _n(n))
    console.print(table)


def written_table(manifest: dict[str, object], console: Console, limit: int | None = None) -> None:
    """Rows written per split and task, then per language (as source and as target); with
    ``limit``, only the ``limit`` languages with most rows and a line for the rest."""
    splits = manifest["splits"]  # type: ignore[assignment]
    by_task = Table(title="rows written by task", title_justify="left")
    by_task.add_column("task")
    for name in splits:
        by_task.add_column(name, justify="right")
    tasks = sorted({task for split in splits.values() for task in split["counts"]["task"]})
    for task in tasks:
        by_task.add_row(
            task, *(_n(split["counts"]["task"].get(task, 0)) for split in splits.values())
        )
    console.print(by_task)
    by_lang = Table(title="rows written by language (all splits)", title_justify="left")
    for column in ("language", "as source", "as target", "prompts in"):
        by_lang.add_column(column, justify="left" if column == "language" else "right")
    columns = ("src_lang", "tgt_lang", "prompt_lang")
    totals = {
        code: [sum(split["counts"][c].get(code, 0) for split in splits.values()) for c in columns]
        for code in sorted({c for split in splits.values() for c in split["counts"]["language"]})
    }
    order = list(totals)
    if limit is not None:
        order.sort(key=lambda code: (-sum(totals[code][:2]), code))
    shown, rest = _top(order, limit)
    for code in shown:
        by_lang.add_row(code, *(_n(n) for n in totals[code]))
    if rest:
        sums = [sum(totals[code][i] for code in rest) for i in range(len(columns))]
        by_lang.add_row(f"… and {len(rest)} more", *(_n(n) for n in sums), style="dim")
    console.print(by_lang)


def _top(items: list[str], limit: int | None) -> tuple[list[str], list[str]]:
    """The first ``limit`` items and the rest (all of them, and none, without a limit)."""
    if limit is None or len(items) <= limit:
        return items, []
    return items[:limit], items[limit:]


def read_manifest(out_dir: Path) -> dict[str, object]:
    from bayling_data.errors import BaylingError

    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        raise BaylingError(
            f"{out_dir}: no {MANIFEST_NAME} here; is it a bayling-data build folder?"
        )
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise BaylingError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


INSPECT_TOP = 8  # languages and directions ``inspect`` lists without --all


def inspect_output(
    out_dir: Path, console: Console, samples: int = 3, show_all: bool = False
) -> None:
    """Counts by split, task, direction and language, plus a few sample rows. Without
    ``show_all`` the languages and directions are the top :data:`INSPECT_TOP` with a line for
    the rest, and each sample message is cut to one line, so a 204-language build fits a
    screen."""
    manifest = read_manifest(out_dir)
    limit = None if show_all else INSPECT_TOP
    console.print(f"[bold]{out_dir}[/bold]  {manifest['signature']}")
    warnings_lines(manifest, console)
    splits = manifest["splits"]
    overview = Table(title="splits", title_justify="left")
    for column in ("split", "rows", "shards"):
        overview.add_column(column, justify="left" if column == "split" else "right")
    for name, split in splits.items():
        overview.add_row(name, _n(split["rows"]), str(len(split["shards"])))
    console.print(overview)
    written_table(manifest, console, limit)
    merged = _merged(manifest, "direction")
    title = "rows by direction (all splits)"
    if limit is not None and len(merged) > limit:
        title = f"rows by direction (all splits; the {limit} largest of {len(merged):,})"
    directions = Table(title=title, title_justify="left")
    directions.add_column("direction")
    directions.add_column("rows", justify="right")
    order = sorted(merged) if limit is None else sorted(merged, key=lambda d: (-merged[d], d))
    shown, rest = _top(order, limit)
    for direction in shown:
        directions.add_row(direction, _n(merged[direction]))
    if rest:
        directions.add_row(
            f"… and {len(rest):,} more", _n(sum(merged[d] for d in rest)), style="dim"
        )
    console.print(directions)
    if samples > 0 and "train" in splits and splits["train"]["rows"]:
        for row in _first_rows(out_dir, "train", samples):
            console.rule(
                f"{row['task']} {row['direction']} ({row['template_id']}) {row['id'][:12]}"
            )
            for message in row["messages"]:
                text = message["content"] or ""
                if not show_all:
                    first = text.splitlines()[0] if text else ""
                    cut = len(first) > 140 or first != text
                    text = first[:140] + (" …" if cut else "")
                console.print(f"[bold]{message['role']}:[/bold] {escape(text)}")
    if limit is not None:
        console.print("[dim](inspect --all lists every language and direction)[/dim]")


def _merged(manifest: dict[str, Any], key: str) -> dict[str, int]:
    merged: dict[str, int] = {}
    for split in manifest["splits"].values():
        for name, count in split["counts"][key].items():
            merged[name] = merged.get(name, 0) + count
    return merged


def inspect_json(out_dir: Path, samples: int = 3) -> dict[str, Any]:
    """What ``inspect`` shows, whole and machine-readable (``inspect --json``)."""
    manifest: dict[str, Any] = read_manifest(out_dir)  # type: ignore[assignment]
    splits = manifest["splits"]
    rows = (
        _first_rows(out_dir, "train", samples)
        if samples > 0 and "train" in splits and splits["train"]["rows"]
        else []
    )
    return {
        "out_dir": str(out_dir),
        "signature": manifest["signature"],
        "rows": sum(split["rows"] for split in splits.values()),
        "splits": {
            name: {
                "rows": split["rows"],
                "shards": [shard["file"] for shard in split["shards"]],
                "counts": split["counts"],
            }
            for name, split in splits.items()
        },
        "warnings": list(manifest.get("warnings") or []),
        "notes": list((manifest.get("mixture") or {}).get("notes") or []),
        "samples": [
            {k: row[k] for k in ("id", "task", "direction", "template_id", "messages")}
            for row in rows
        ],
    }


def build_json(report: object) -> dict[str, Any]:
    """A finished build, machine-readable (``build --json``): where, what, how long."""
    manifest = report.manifest  # type: ignore[attr-defined]
    splits = manifest["splits"]
    return {
        "out_dir": str(report.out_dir),  # type: ignore[attr-defined]
        "signature": manifest["signature"],
        "rows": {name: split["rows"] for name, split in splits.items()},
        "total_rows": sum(split["rows"] for split in splits.values()),
        "tasks": _merged(manifest, "task"),
        "languages": len(_merged(manifest, "language")),
        "directions": len(_merged(manifest, "direction")),
        "warnings": list(manifest.get("warnings") or []),
        "seconds": round(float(report.seconds.get("total", 0.0)), 3),  # type: ignore[attr-defined]
    }


def _first_rows(out_dir: Path, split: str, n: int) -> list[dict]:
    """The split's first ``n`` rows, reading only the batches that hold them."""
    rows: list[dict] = []
    for batch in iter_split_batches(out_dir, split):
        rows += batch.slice(0, n - len(rows)).to_pylist()
        if len(rows) >= n:
            break
    return rows


def languages_table(languages: list[Language], console: Console) -> None:
    """One language (or a few): every field, one per line. More: one row each, main fields."""
    if len(languages) <= 3:
        for lang in languages:
            record = Table.grid(padding=(0, 2))
            record.add_column(style="bold")
            record.add_column()
            for key, value in lang.as_dict().items():
                record.add_row(key, value or "-")
            console.print(record)
            console.print()
        return
    table = Table()
    columns = (
        "flores200",
        "flores101",
        "iso639_1",
        "script",
        "name_en",
        "name_zh",
        "lid176",
        "tier",
    )
    for column in columns:
        table.add_column(column, no_wrap=True)
    for lang in languages:
        table.add_row(*(getattr(lang, column) for column in columns))
    console.print(table)
