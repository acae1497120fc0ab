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

from bayling_data.errors import BaylingError
from bayling_data.io.card import funnel_rows, hub_language
from bayling_data.io.report_plots import PLOTS
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
    total_rows: int = 0
    language_rows: dict[str, int] = field(default_factory=dict)
    """Rows per language, a row counted once for each language it involves (source or target):
    what the language figure shows."""
    rows_by_category: dict[str, dict[str, int]] = field(default_factory=dict)
    """``Chinese`` / ``English`` / ``cross-lingual`` -> task -> rows (BayLing 2's Fig. 3). A row
    is Chinese (English) when its source and target are both Chinese (English)."""
    rows_by_direction_kind: dict[str, int] = field(default_factory=dict)
    """Rows per kind of direction: to a pivot, from a pivot, between the pivots, monolingual."""
    funnel_rows: list[dict[str, object]] = field(default_factory=list)
    """The build's stages in sides (segment filters) and rows (tasks to the rows written), as
    :func:`bayling_data.io.card.funnel_rows` gives them."""
    sides_dropped_by_language: dict[str, int] = field(default_factory=dict)
    mean_length: dict[str, float] = field(default_factory=dict)
    tokenizer_label: str | None = None
    """The tokenizer as the plots name it (a local path's last part, or the Hub name)."""


def _recipe_tokenizer(recipe: dict) -> str | None:
    """The first tokenizer a recipe's filters name, so lengths match what the filters measured."""
    for entry in recipe.get("filters") or []:
        name = entry.get("tokenizer") if isinstance(entry, dict) else None
        if name:
            return str(name)
    return None


def tokenizer_label(name: str) -> str:
    """A tokenizer as a plot names it: a local file or folder by its last part (the report may
    be shared), a Hub name as given."""
    path = Path(name)
    return path.name if path.exists() else name


def _length_counter(tokenizer: str | None) -> Callable[[list[str]], list[int]] | None:
    """Tokens per text with ``tokenizer``; None: characters, counted on the column.

    A ``tokenizer.json`` (the ``tokenizers`` library), a SentencePiece ``.model`` file or a
    tokenizer folder load from local files only; any other name is a Hub tokenizer, which needs
    the network or a cached copy, and is refused in one line when the Hub is offline.
    """
    if tokenizer is None:
        return None
    from bayling_data.filters.units import load_token_counter

    path = Path(tokenizer).expanduser()
    if path.is_dir() and not (path / "tokenizer_config.json").is_file():
        for inner in ("tokenizer.json", "tokenizer.model", "spiece.model", "sentencepiece.model"):
            if (path / inner).is_file():
                path = path / inner
                break
    if path.is_file() and path.suffix == ".json":
        return _json_tokenizer(path)
    if path.exists():
        return load_token_counter(str(path))
    if tokenizer.startswith((".", "/", "~")) or tokenizer.endswith((".json", ".model")):
        raise BaylingError(f"--tokenizer {tokenizer}: no such file or folder")
    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(tokenizer, "tokenizer_config.json")
        except ValueError:  # not a valid repo id
            cached = None
        if not isinstance(cached, str):
            raise BaylingError(
                f"--tokenizer {tokenizer}: a Hub name, and the Hub is offline (HF_HUB_OFFLINE) "
                "with no cached copy; give a tokenizer.json, a SentencePiece .model or a "
                "tokenizer folder"
            )
    return load_token_counter(tokenizer)


def _json_tokenizer(path: Path) -> Callable[[list[str]], list[int]]:
    """Tokens per text with a ``tokenizers`` JSON file (what a Hub tokenizer folder holds)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise BaylingError(
            f"--tokenizer {path}: tokenizer.json files need `pip install tokenizers`"
        ) from None
    try:
        loaded = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises its own Exception type for a bad file
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BaylingError(f"--tokenizer {path}: not a tokenizers JSON file ({first})") from None
    return lambda texts: [
        len(encoded.ids) for encoded in loaded.encode_batch(texts, add_special_tokens=False)
    ]


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
    pairs: Counter[tuple[str, str, str]] = Counter()
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
                triples = (
                    pa.table({c: batch.column(c) for c in ("task", "src_lang", "tgt_lang")})
                    .group_by(["task", "src_lang", "tgt_lang"])
                    .aggregate([("task", "count")])
                )
                for task, src, tgt, n in zip(
                    *(
                        triples.column(c).to_pylist()
                        for c in ("task", "src_lang", "tgt_lang", "task_count")
                    ),
                    strict=True,
                ):
                    pairs[(task, src, tgt)] += int(n)
                _pick_samples(samples, batch, split)
                advance(batch.num_rows)
    return {
        "rows_by_language": dict(sorted(rows_by_language.items())),
        "tokens_by_language": dict(sorted(tokens_by_language.items())),
        "rows_by_task": dict(sorted(rows_by_task.items())),
        "rows_by_direction": dict(sorted(rows_by_direction.items())),
        "lengths": dict(sorted(lengths.items())),
        "pairs": dict(sorted(pairs.items())),
        "samples": dict(sorted(samples.items())),
    }


def _category(src: str, tgt: str) -> str:
    """BayLing 2's three kinds of instruction: Chinese, English, cross-lingual."""
    if src == tgt:
        code = hub_language(src)
        if code == "zh":
            return "Chinese"
        if code == "en":
            return "English"
    return "cross-lingual"


def _direction_kind(src: str, tgt: str, pivots: list[str]) -> str:
    """A direction by how it meets the pivots: ``X -> eng_Latn``, ``zho_Hans -> X`` ..."""
    if src == tgt:
        return f"monolingual {src}" if src in pivots else "monolingual, other language"
    if src in pivots and tgt in pivots:
        return "between the pivots"
    if tgt in pivots:
        return f"X -> {tgt}"
    if src in pivots:
        return f"{src} -> X"
    return "X -> Y (no pivot)"


def _derived(pairs: dict[tuple[str, str, str], int], pivots: list[str]) -> dict[str, dict]:
    """Per-language rows (once per language a row involves), categories and direction kinds,
    from the rows per (task, source, target)."""
    language_rows: Counter[str] = Counter()
    categories: dict[str, Counter[str]] = {}
    kinds: Counter[str] = Counter()
    for (task, src, tgt), n in pairs.items():
        language_rows[src] += n
        if tgt != src:
            language_rows[tgt] += n
        categories.setdefault(_category(src, tgt), Counter())[task] += n
        kinds[_direction_kind(src, tgt, pivots)] += n
    order = [
        *(f"X -> {p}" for p in pivots),
        *(f"{p} -> X" for p in pivots),
        "between the pivots",
        *(f"monolingual {p}" for p in pivots),
        "monolingual, other language",
        "X -> Y (no pivot)",
    ]
    return {
        "language_rows": dict(sorted(language_rows.items())),
        "rows_by_category": {
            c: dict(sorted(categories[c].items()))
            for c in ("Chinese", "English", "cross-lingual")
            if c in categories
        },
        "rows_by_direction_kind": {k: kinds[k] for k in order if kinds.get(k)},
    }


def _sides_dropped(funnel: dict[str, dict[str, dict[str, int]]], manifest: dict) -> dict[str, int]:
    """Sides each language lost in the segment filters."""
    stages = manifest.get("funnel", [])
    segment = {str(stage["name"]) for stage in stages if stage.get("level") == "segment"}
    lost: Counter[str] = Counter()
    for name, per in funnel.items():
        if name.split("#")[0] in segment:
            for lang, entry in per.items():
                lost[lang] += entry["dropped"]
    return dict(sorted(lost.items()))


def _means(lengths: dict[str, Counter[int]]) -> dict[str, float]:
    means = {}
    for task, values in lengths.items():
        rows = sum(values.values())
        if rows:
            means[task] = sum(size * n for size, n in values.items()) / rows
    return means


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


def _html(result: ReportResult, manifest: dict) -> str:
    """The page: every PNG inlined as a data URI, every text from the data escaped."""
    esc = html.escape
    recipe = manifest.get("recipe", {})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>bayling-data report: {esc(str(recipe.get('name', '')))}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1650px}"
        "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;text-align:left}"
        "td.t{white-space:pre-wrap;max-width:40em}</style></head><body>",
        f"<h1>Build report: {esc(str(recipe.get('name', '')))}</h1>",
        f"<p>{esc(str(recipe.get('description') or ''))}</p>",
        f"<p>Rows: {sum(result.rows_by_task.values()):,}; "
        f"splits: {esc(', '.join(sorted(manifest.get('splits', {}))))}; "
        f"length unit: {esc(result.length_unit)}"
        f"{' (' + esc(result.tokenizer_label or '') + ')' if result.tokenizer else ''}.</p>",
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
    out_dir: str | Path,
    to_dir: str | Path | None = None,
    *,
    tokenizer: str | None = None,
    progress: Progress | None = None,
) -> ReportResult:
    """Write ``report.html`` and the plots' PNGs for the build in ``out_dir``.

    Files go to ``to_dir`` or ``out_dir/report`` (``datasets.load_from_disk`` ignores it). The
    shards are read batch by batch, so memory does not grow with the build. Lengths are in
    tokens of ``tokenizer`` (else of the first tokenizer the recipe's filters name), else in
    characters.
    """
    progress = progress or Progress.off()
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot's import

    out_dir = Path(out_dir)
    target = Path(to_dir) if to_dir is not None else out_dir / REPORT_DIRNAME
    manifest = read_manifest(out_dir)  # a one-line error when out_dir is not a build
    key = "--to" if to_dir is not None else "report"
    tokenizer = tokenizer or _recipe_tokenizer(manifest.get("recipe", {}))
    counter = _length_counter(tokenizer)  # a bad tokenizer fails before any reading
    # The folder before the reading: a folder that cannot be made fails at once, not after
    # minutes of progress lines.
    with output_errors(target, key):
        target.mkdir(parents=True, exist_ok=True)
    collected = _collect(out_dir, manifest, counter, progress)
    pivots = list((manifest.get("languages") or {}).get("pivots") or [])
    derived = _derived(collected["pairs"], pivots)
    funnel = _funnel(manifest)
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
        funnel=funnel,
        samples=collected["samples"],
        total_rows=sum(collected["rows_by_task"].values()),
        language_rows=derived["language_rows"],
        rows_by_category=derived["rows_by_category"],
        rows_by_direction_kind=derived["rows_by_direction_kind"],
        funnel_rows=funnel_rows(manifest),
        sides_dropped_by_language=_sides_dropped(funnel, manifest),
        mean_length=_means(collected["lengths"]),
        tokenizer_label=tokenizer_label(tokenizer) if tokenizer else None,
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


def figures_json(result: ReportResult) -> dict[str, object]:
    """The numbers behind the figures, for ``report --json``."""
    return {
        "total_rows": result.total_rows,
        "rows_by_task": result.rows_by_task,
        "rows_by_category": result.rows_by_category,
        "rows_by_direction_kind": result.rows_by_direction_kind,
        "language_rows": result.language_rows,
        "tier_by_language": result.tier_by_language,
        "funnel": result.funnel_rows,
        "length_unit": result.length_unit,
        "tokenizer": result.tokenizer_label,
        "mean_length": {t: round(v, 2) for t, v in result.mean_length.items()},
    }
