"""The dataset card (README.md) of a published build, made with huggingface_hub's card machinery.

The metadata is a :class:`huggingface_hub.DatasetCardData` and the body is huggingface_hub's own
dataset card template, so the card has the sections the Hub expects (Uses, Dataset Structure,
Bias, Risks, and Limitations, Citation, ...). Every section the build can answer is filled from
the manifest and from a census of the published rows; the rest keep the template's
"[More Information Needed]" for the publisher to write.

Nothing local is published: a source or task path becomes ``sample:NAME`` (bundled) or
``<local>/NAME`` (its last component), so the card never shows the build machine's folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from bayling_data.errors import BaylingError

# Task type -> Hub task categories. Every task is instruction data, so ``text-generation`` is
# always listed as well.
_TASK_CATEGORIES = {
    "translation": ["translation"],
    "constrained_translation": ["translation"],
    "pivot_qa": ["question-answering"],
    "comprehension": ["question-answering", "text-classification"],
}
# Task type -> Hub task ids (the finer labels under a category).
_TASK_IDS = {
    "chat": ["dialogue-modeling"],
    "pivot_qa": ["open-domain-qa"],
    "comprehension": ["language-identification", "semantic-similarity-classification"],
}

# Licenses of the corpora we know; anything else is shown as unknown rather than guessed.
_SOURCE_LICENSES = {"flores200": "cc-by-sa-4.0", "flores101": "cc-by-sa-4.0"}
# Everything bundled under ``sample:`` is original text by the bayling-data authors, CC BY-SA 4.0
# (bayling_data/data/*/README.md).
_SAMPLE_LICENSE = "cc-by-sa-4.0"
_FLORES_HUB_ID = "facebook/flores"

# The Hub's ``size_categories`` buckets, as (upper bound exclusive, label).
_SIZE_BUCKETS = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
]
_LANGUAGE_COLUMNS = ("src_lang", "tgt_lang", "prompt_lang")
# Recipe keys whose string values are filesystem paths (or globs), at any depth.
_PATH_KEYS = {"path", "paths", "dir", "eval_dirs", "calibration", "file"}
# Keys that take a local path or a Hub name: shortened only when the value is a local path.
_NAME_KEYS = {"tokenizer", "model"}

# What each column of a row holds (the Dataset Structure section).
COLUMNS = {
    "id": "stable id of the row (a hash of its task and messages)",
    "messages": "the conversation: a list of {role, content}, roles system / user / assistant",
    "task": "task family that made the row (translation, chat, instructions_zh, ...)",
    "direction": "SRC-TGT language codes (Flores-200 style); SRC-SRC for a monolingual row",
    "src_lang": "language of the source side",
    "tgt_lang": "language of the target side (the answer)",
    "prompt_lang": "language the instruction is written in (a pivot: zho_Hans or eng_Latn)",
    "template_id": "id of the prompt template used (see the Templates table)",
    "source_corpus": "corpus the row was made from (see Source Data)",
    "source_split": "split of that corpus",
    "source_segment_id": "segment or item id within that corpus split",
}

CITATIONS = {
    "bayling2": """@article{zhang2024bayling2,
  title   = {BayLing 2: A Multilingual Large Language Model with Efficient Language Alignment},
  author  = {Zhang, Shaolei and Zhang, Kehao and Fang, Qingkai and Guo, Shoutao and Zhou, Yan
             and Liu, Xiaodong and Feng, Yang},
  journal = {arXiv preprint arXiv:2411.16300},
  year    = {2024}
}""",
    "flores": """@article{nllb2022,
  title   = {No Language Left Behind: Scaling Human-Centered Machine Translation},
  author  = {{NLLB Team} and Costa-juss{\\`a}, Marta R. and others},
  journal = {arXiv preprint arXiv:2207.04672},
  year    = {2022}
}

@article{goyal2022flores,
  title   = {The {Flores-101} Evaluation Benchmark for Low-Resource and Multilingual Machine
             Translation},
  author  = {Goyal, Naman and Gao, Cynthia and Chaudhary, Vishrav and Chen, Peng-Jen and
             Wenzek, Guillaume and Ju, Da and Krishnan, Sanjana and Ranzato, Marc'Aurelio and
             Guzm{\\'a}n, Francisco and Fan, Angela},
  journal = {Transactions of the Association for Computational Linguistics},
  volume  = {10},
  pages   = {522--538},
  year    = {2022}
}""",
}
APA = {
    "bayling2": "Zhang, S., Zhang, K., Fang, Q., Guo, S., Zhou, Y., Liu, X., & Feng, Y. (2024). "
    "BayLing 2: A multilingual large language model with efficient language alignment. "
    "arXiv:2411.16300.",
    "flores": "NLLB Team et al. (2022). No Language Left Behind: Scaling human-centered machine "
    "translation. arXiv:2207.04672. Goyal, N., et al. (2022). The Flores-101 evaluation "
    "benchmark for low-resource and multilingual machine translation. TACL, 10, 522-538.",
}


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    for bound, label in _SIZE_BUCKETS:
        if n < bound:
            return label
    return "n>1T"


def _lookup(code: str) -> Any:
    from bayling_data.languages import registry

    try:
        return registry().get(code)
    except BaylingError:
        return None


def hub_language(code: str) -> str:
    """ISO 639-1 where the registry has one, else ISO 639-3 (what the Hub's ``language`` takes)."""
    lang = _lookup(code)
    if lang is None:
        return code.split("_")[0]
    return lang.iso639_1 or lang.iso639_3 or code.split("_")[0]


def bcp47(code: str) -> str:
    """A BCP-47 tag with the script: ``zho_Hans`` -> ``zh-Hans``, ``zho_Hant`` -> ``zh-Hant`` (the
    Hub's ``language`` alone folds both into ``zh``)."""
    lang = _lookup(code)
    script = lang.script if lang is not None else [*code.split("_"), ""][1]
    base = hub_language(code)
    return f"{base}-{script}" if script else base


@dataclass
class SplitCensus:
    """What the dataset card says about a split, gathered batch by batch: rows, the languages,
    tasks and source corpora it holds, and the template ids each task used (all bounded by the
    recipe, not by the number of rows)."""

    rows: int = 0
    languages: set[str] = field(default_factory=set)
    task_rows: dict[str, int] = field(default_factory=dict)
    templates: dict[str, set[str]] = field(default_factory=dict)
    source_rows: dict[tuple[str, str], int] = field(default_factory=dict)
    """(task, source_corpus) -> rows."""
    language_rows: dict[str, int] = field(default_factory=dict)
    """Rows that involve a language (as source or target, a row counted once per language)."""

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        names = batch.schema.names
        for column in _LANGUAGE_COLUMNS:
            if column in names:
                self.languages.update(v for v in pc.unique(batch.column(column)).to_pylist() if v)
        if "src_lang" in names and "tgt_lang" in names:
            src, tgt = batch.column("src_lang"), batch.column("tgt_lang")
            _add_counts(self.language_rows, src)
            _add_counts(self.language_rows, pc.filter(tgt, pc.not_equal(src, tgt)))
        if "task" not in names:
            return
        counted = pc.value_counts(batch.column("task"))
        for task, n in zip(
            counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
        ):
            if task:
                self.task_rows[task] = self.task_rows.get(task, 0) + n
                self.templates.setdefault(task, set())
        if "source_corpus" in names:
            pairs = pa.table({"t": batch.column("task"), "c": batch.column("source_corpus")})
            grouped = pairs.group_by(["t", "c"]).aggregate([("t", "count")])
            for task, corpus, n in zip(
                *(grouped.column(c).to_pylist() for c in ("t", "c", "t_count")), strict=True
            ):
                key = (task, corpus)
                self.source_rows[key] = self.source_rows.get(key, 0) + n
        if "template_id" in names:
            pairs = pa.table({"t": batch.column("task"), "id": batch.column("template_id")})
            distinct = pairs.group_by(["t", "id"]).aggregate([])
            for task, template in zip(
                distinct.column("t").to_pylist(), distinct.column("id").to_pylist(), strict=True
            ):
                if task and template:
                    self.templates[task].add(template)

    @property
    def tasks(self) -> set[str]:
        return set(self.task_rows)


def _add_counts(target: dict[str, int], values: pa.Array) -> None:
    counted = pc.value_counts(values)
    for value, n in zip(
        counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
    ):
        if value:
            target[value] = target.get(value, 0) + n


# --- paths never published -------------------------------------------------------------------


def public_path(value: str) -> str:
    """A path as the card may show it: ``<local>/LAST_PART``; a bundled ``sample:NAME``, an
    unexpanded ``${VAR}`` or a bare name without a folder stays as written."""
    if not value or value.startswith(("sample:", "${")) or not re.search(r"[\\/]", value):
        return value  # empty, bundled, unexpanded or a bare name (``auto``): nothing local
    last = [part for part in re.split(r"[\\/]+", value) if part]
    return f"<local>/{last[-1]}" if last else "<local>"


_ABSOLUTE = re.compile(r"(?<![\w:/.>])(?:~|[A-Za-z]:)?[\\/][^\s()'\",;:]*[^\s()'\",;:.]")


def public_text(text: str, local: Iterable[str] = (), guess: bool = True) -> str:
    """``text`` with each of the ``local`` paths, and (``guess``) anything else that looks like
    an absolute path, shortened by :func:`public_path` (for warnings that quote a path)."""
    for path in sorted({p for p in local if p}, key=len, reverse=True):
        text = text.replace(path, public_path(path))
    return _ABSOLUTE.sub(lambda m: public_path(m.group(0)), text) if guess else text


def _looks_local(value: str) -> bool:
    return (
        os.path.isabs(value)
        or value.startswith(("~", "./", "../"))
        or re.match(r"^[A-Za-z]:[\\/]", value) is not None
    )


def public_recipe(value: Any, key: str = "") -> Any:
    """The recipe with every path shortened by :func:`public_path` and ``output.dir`` dropped:
    the build machine's folders mean nothing on the Hub and may name people or projects."""
    if isinstance(value, dict):
        return {
            k: public_recipe(v, str(k))
            for k, v in value.items()
            if not (key == "output" and k == "dir")
        }
    if isinstance(value, list):
        return [public_recipe(v, key) for v in value]
    if isinstance(value, str) and (
        key in _PATH_KEYS or _looks_local(value) or (key in _NAME_KEYS and os.path.exists(value))
    ):
        return public_path(value)
    return value


# --- sources and their licences ---------------------------------------------------------------


@dataclass
class CardSource:
    """One corpus the published rows came from."""

    corpus: str
    kind: str  # the source or task type that read it (flores, pivot_instructions, pivot_qa ...)
    origin: str  # public_path of what the recipe named
    license: str | None  # None: not known to bayling-data
    rows: int
    tasks: list[str]

    @property
    def bundled(self) -> bool:
        return self.origin.startswith("sample:")

    @property
    def license_text(self) -> str:
        return self.license or "unknown: check the source's terms"


def _task_entries(recipe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Task column value (its name, else its type) -> the recipe's entry for it."""
    entries = {}
    for entry in recipe.get("tasks") or []:
        if isinstance(entry, dict):
            entries[str(entry.get("name") or entry.get("type"))] = entry
    return entries


def card_sources(manifest: dict[str, Any], census: dict[str, SplitCensus]) -> list[CardSource]:
    """Every corpus with rows in the published splits, with the licence bayling-data knows for
    it and its row count. A parallel corpus is matched to the recipe's source that read it, an
    instruction or QA file to the task that read it (``sample:`` paths are the bundled samples)."""
    recipe = manifest.get("recipe") or {}
    recipe_sources = recipe.get("sources") or []
    read: dict[str, tuple[str, str]] = {}  # corpus -> (source type, path as written)
    for index, source in enumerate(manifest.get("sources") or []):
        written = recipe_sources[index] if index < len(recipe_sources) else {}
        corpus = str(source.get("corpus") or source.get("type") or "?")
        raw = str((written or {}).get("path") or source.get("path") or "")
        read.setdefault(corpus, (str(source.get("type") or "?"), raw))
    tasks = _task_entries(recipe)
    rows: dict[str, int] = {}
    used_by: dict[str, set[str]] = {}
    for split in census.values():
        for (task, corpus), n in split.source_rows.items():
            rows[corpus] = rows.get(corpus, 0) + n
            used_by.setdefault(corpus, set()).add(task)
    found = []
    for corpus in sorted(set(rows) | set(read)):
        task_names = sorted(used_by.get(corpus, ()))
        if corpus in read:
            kind, raw = read[corpus]
        else:
            entry = next((tasks[t] for t in task_names if t in tasks), {})
            kind, raw = str(entry.get("type") or "?"), str(entry.get("path") or "")
        bundled = raw.startswith("sample:")
        license_ = _SAMPLE_LICENSE if bundled else _SOURCE_LICENSES.get(corpus)
        found.append(
            CardSource(corpus, kind, public_path(raw), license_, rows.get(corpus, 0), task_names)
        )
    return found


def combined_license(sources: list[CardSource]) -> tuple[str | list[str], str | None]:
    """The card's ``license`` and, for ``other``, a ``license_name``: the one licence every
    source has; the list of them when all are known but differ; ``other`` when any is unknown
    (then the Sources table says which)."""
    with_rows = [s for s in sources if s.rows] or sources
    known = sorted({s.license for s in with_rows if s.license})
    if not with_rows or any(s.license is None for s in with_rows):
        return "other", "mixed-see-sources"
    if len(known) == 1:
        return known[0], None
    return known, None


# --- the card ---------------------------------------------------------------------------------


def _table(header: list[str], body: Iterable[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines)


def _template_counts(census: dict[str, SplitCensus]) -> dict[str, dict[str, int]]:
    """Per task: distinct template ids used and rows, over all splits."""
    templates: dict[str, set[str]] = {}
    rows: dict[str, int] = {}
    for split in census.values():
        for task, n in split.task_rows.items():
            rows[task] = rows.get(task, 0) + n
            templates.setdefault(task, set()).update(split.templates.get(task, ()))
    return {
        task: {"templates": len(templates[task]), "rows": rows[task]} for task in sorted(templates)
    }


def funnel_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The build's funnel as the card and the report show it, stage by stage, ending with the
    mixture and the rows written. Segment filters count sides (one language of a multi-way
    segment), since they drop sides; everything after the tasks counts rows."""
    stages: list[dict[str, Any]] = []
    task_in = task_out = 0
    tasks: list[str] = []
    last_rows: int | None = None
    for stage in manifest.get("funnel") or []:
        level = stage.get("level")
        if level == "segment":
            by_key = stage.get("by_key") or {}
            sides_in = sum(int(e["in"]) for e in by_key.values())
            sides_out = sum(int(e["out"]) for e in by_key.values())
            stages.append(_stage(stage["name"], level, "sides", sides_in, sides_out))
        elif level == "task":
            tasks.append(str(stage["name"]))
            task_in = max(task_in, int(stage.get("rows_in") or 0))
            task_out += int(stage.get("rows_out") or 0)
        elif level == "instruction":
            if tasks:
                stages.append(_tasks_stage(tasks, task_out))
                tasks = []
            stages.append(_stage(stage["name"], level, "rows", stage["rows_in"], stage["rows_out"]))
            last_rows = int(stage["rows_out"])
    if tasks:
        stages.append(_tasks_stage(tasks, task_out))
        last_rows = task_out
    mixture = (manifest.get("mixture") or {}).get("tasks") or {}
    kept = sum(int(entry.get("kept", 0)) for entry in mixture.values())
    if mixture:
        into = last_rows if last_rows is not None else kept
        stages.append(_stage("mixture", "mixture", "rows", into, kept))
    written = sum(int(s.get("rows", 0)) for s in (manifest.get("splits") or {}).values())
    stages.append(_stage("written", "output", "rows", written, written))
    return stages


def _stage(name: str, level: str, unit: str, rows_in: int, rows_out: int) -> dict[str, Any]:
    return {
        "stage": str(name),
        "level": level,
        "unit": unit,
        "in": int(rows_in),
        "out": int(rows_out),
        "dropped": int(rows_in) - int(rows_out),
    }


def _tasks_stage(tasks: list[str], rows: int) -> dict[str, Any]:
    name = "tasks" if len(tasks) > 1 else tasks[0]
    return {**_stage(name, "task", "rows", rows, rows), "dropped": 0, "made": rows}


def _dataset_info(
    manifest: dict[str, Any], features: list[dict[str, Any]], sizes: dict[str, int]
) -> dict[str, Any]:
    """The Hub's ``dataset_info``: features, and rows and bytes per split."""
    splits = manifest.get("splits") or {}
    split_info = [
        {
            "name": name,
            "num_bytes": sum(int(s.get("bytes", 0)) for s in info.get("shards") or []),
            "num_examples": int(info.get("rows", 0)),
        }
        for name, info in splits.items()
    ]
    return {
        "features": features,
        "splits": split_info,
        "download_size": int(sum(sizes.values())),
        "dataset_size": int(sum(s["num_bytes"] for s in split_info)),
    }


def build_card(
    manifest: dict[str, Any],
    repo: str,
    census: dict[str, SplitCensus],
    data_files: dict[str, list[str]],
    *,
    features: list[dict[str, Any]] | None = None,
    file_sizes: dict[str, int] | None = None,
) -> str:
    """The README.md dataset card: ``DatasetCardData`` in the front matter and huggingface_hub's
    dataset card template as the body, filled from the manifest where the build knows."""
    from huggingface_hub import DatasetCard, DatasetCardData

    recipe = dict(manifest.get("recipe") or {})
    codes = sorted({c for split in census.values() for c in split.languages})
    tasks = sorted({task for split in census.values() for task in split.tasks})
    entries = _task_entries(recipe)
    types = {task: str(entries.get(task, {}).get("type") or task) for task in tasks}
    categories = sorted({c for t in types.values() for c in _TASK_CATEGORIES.get(t, [])})
    task_ids = sorted({i for t in types.values() for i in _TASK_IDS.get(t, [])})
    total = sum(split.rows for split in census.values())
    sources = card_sources(manifest, census)
    license_, license_name = combined_license(sources)
    real_flores = [s for s in sources if s.corpus.startswith("flores") and not s.bundled]
    source_datasets = sorted(
        {f"extended|{_FLORES_HUB_ID}" for _ in real_flores}
        | ({"original"} if any(s.bundled for s in sources) else set())
        | {f"extended|other-{s.corpus}" for s in sources if not s.bundled and s.license is None}
    )
    creators = {
        "expert-generated" if s in real_flores else "found" if s.license is None else "other"
        for s in sources
    }
    translation = any(t in ("translation", "constrained_translation") for t in types.values())
    multilinguality = ["multilingual" if len(codes) > 2 else "monolingual"]
    if translation:
        multilinguality.append("translation")
    pretty = str(recipe.get("name") or repo.split("/")[-1])
    data = DatasetCardData(
        pretty_name=pretty,
        license=license_,
        language=sorted({hub_language(c) for c in codes}),
        language_details=sorted({bcp47(c) for c in codes}),
        multilinguality=sorted(set(multilinguality)),
        annotations_creators=["machine-generated"],
        language_creators=sorted(creators) or ["other"],
        source_datasets=source_datasets or None,
        task_categories=sorted(set(categories) | {"text-generation"}),
        task_ids=task_ids or None,
        size_categories=[size_category(total)],
        tags=["bayling-data", "instruction-tuning", "cross-lingual"],
        configs=[
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": f"data/{split}-*.parquet"} for split in data_files
                ],
            }
        ],
    )
    if license_name:
        data.license_name = license_name
        data.license_details = (
            "Per source, see the Sources table in the card: some sources have no licence "
            "bayling-data knows."
        )
    if features is not None:
        data.dataset_info = _dataset_info(manifest, features, file_sizes or {})
    body = _sections(manifest, repo, census, sources, license_, codes, tasks, types)
    card = DatasetCard.from_template(data, **body)
    # A last guard: no path of the build machine that the manifest records reaches the Hub.
    local = [str(s.get("path") or "") for s in manifest.get("sources") or []]
    return public_text(str(card), [p for p in local if os.path.isabs(p)], guess=False)


def _license_line(license_: str | list[str], sources: list[CardSource]) -> str:
    if isinstance(license_, list):
        text = "each row under the licence of its source: " + ", ".join(license_)
    elif license_ == "other":
        unknown = ", ".join(s.corpus for s in sources if s.license is None)
        text = f"other: each row under the licence of its source; not known for {unknown}"
    else:
        text = f"{license_} (every source)"
    return text + " (see Source Data)"


def _sections(
    manifest: dict[str, Any],
    repo: str,
    census: dict[str, SplitCensus],
    sources: list[CardSource],
    license_: str | list[str],
    codes: list[str],
    tasks: list[str],
    types: dict[str, str],
) -> dict[str, str]:
    """The template's fields the build can answer."""
    recipe = dict(manifest.get("recipe") or {})
    total = sum(split.rows for split in census.values())
    version = manifest.get("bayling_data_version", "?")
    signature = manifest.get("signature", "?")
    pivots = (manifest.get("languages") or {}).get("pivots") or recipe.get("pivot_languages") or []
    summary = [
        str(recipe.get("description") or "Cross-lingual instruction-tuning data."),
        "",
        f"{total:,} rows in {len(census)} split(s), {len(codes)} languages, "
        f"{len(tasks)} task families, around the pivot languages {', '.join(pivots)}. "
        f"Built with bayling-data {version}; manifest signature: `{signature}`.",
        "",
        "```python",
        "import datasets",
        "",
        f'ds = datasets.load_dataset("{repo}")',
        "```",
    ]
    description = [
        "BayLing 2 style instruction data: general instructions in the pivot languages and "
        "cross-lingual instructions (translation and other tasks) that align every other "
        "language to the pivots. Each row is a conversation (`messages`) with its task, "
        "direction and provenance.",
    ]
    per_split = [[s, f"{c.rows:,}"] for s, c in census.items()]
    language_rows = []
    split_counts = [
        ((manifest.get("splits") or {}).get(s) or {}).get("counts") or {} for s in census
    ]
    for code in codes:
        counts = [
            sum(c.get(col, {}).get(code, 0) for c in split_counts)
            for col in ("src_lang", "tgt_lang", "prompt_lang")
        ]
        involved = sum(c.language_rows.get(code, 0) for c in census.values())
        lang = _lookup(code)
        name = lang.name_en if lang is not None else "?"
        language_rows.append(
            [code, bcp47(code), name, f"{involved:,}", *(f"{n:,}" for n in counts)]
        )
    templates = [[t, c["templates"], f"{c['rows']:,}"] for t, c in _template_counts(census).items()]
    structure = [
        "Each row is one conversation in the `messages` format that TRL, LLaMA-Factory, axolotl "
        "and `datasets` read as is. Columns:",
        "",
        _table(["column", "meaning"], [[f"`{k}`", v] for k, v in COLUMNS.items()]),
        "",
        "### Splits",
        "",
        _table(["split", "rows"], per_split),
        "",
        "The validation split is cut from the same build (the recipe's "
        "`output.validation_fraction`); it is not an evaluation set.",
        "",
        "### Languages",
        "",
        "`rows` counts each row once for every language it involves (source or target); "
        "`as source`, `as target` and `prompts` count the columns.",
        "",
        _table(
            ["language", "BCP-47", "name", "rows", "as source", "as target", "prompts"],
            language_rows,
        ),
        "",
        "### Templates",
        "",
        _table(["task", "templates used", "rows"], templates),
    ]
    mixture = (manifest.get("mixture") or {}).get("tasks") or {}
    mixture_rows = [
        [t, f"{e.get('weight', 0):g}", f"{e.get('available', 0):,}", f"{e.get('kept', 0):,}"]
        for t, e in mixture.items()
    ]
    rationale = [
        "The mixture follows BayLing 2: general instructions in Chinese and English keep the "
        "model's abilities in the pivots, and cross-lingual instructions transfer them to the "
        "other languages. Rows per task, as the recipe weighted them:",
        "",
        _table(["task", "weight", "available", "kept"], mixture_rows),
    ]
    for note in (manifest.get("mixture") or {}).get("notes") or []:
        rationale += ["", f"Note: {public_text(str(note))}"]
    source_rows = [
        [
            s.corpus,
            s.kind,
            f"`{s.origin}`" if s.origin else "-",
            ", ".join(s.tasks) or "-",
            f"{s.rows:,}",
            s.license_text,
        ]
        for s in sources
    ]
    funnel = [
        [f["stage"], f["unit"], f"{f['in']:,}", f"{f['dropped']:,}", f"{f['out']:,}"]
        for f in funnel_rows(manifest)
    ]
    public = public_recipe(recipe)
    collection = [
        "##### Sources",
        "",
        _table(["corpus", "read by", "path", "tasks", "rows", "license"], source_rows),
        "",
        f"License of the data set: {_license_line(license_, sources)}.",
    ]
    if recipe.get("license"):
        collection += [
            "",
            f"The recipe declares `license: {recipe['license']}`; the table above is what "
            "bayling-data knows of each source.",
        ]
    collection += [
        "",
        "##### Filter funnel",
        "",
        "Segment filters count sides (one language of a multi-way segment); from the tasks on, "
        "the unit is rows. The last stages are the mixture and the rows written.",
        "",
        _table(["stage", "unit", "in", "dropped", "out"], funnel),
        "",
        "##### Recipe",
        "",
        "Local paths are shortened to `<local>/NAME`; the output folder is left out.",
        "",
        "```yaml",
        yaml.safe_dump(public, sort_keys=False, allow_unicode=True).rstrip(),
        "```",
    ]
    producers = []
    for s in sources:
        if s.bundled:
            who = "original text written for bayling-data by its authors (a small sample)"
        elif s.corpus.startswith("flores"):
            who = "Flores: Wikimedia sentences translated by professional translators (NLLB team)"
        else:
            who = "not recorded by the build; see the source's own documentation"
        producers.append(f"- `{s.corpus}`: {who}.")
    annotation = [
        "No human annotation. The instructions are made by filling prompt templates (see "
        "Templates) with the source segments; the answers are the sources' own text "
        "(for translation, the reference translation).",
    ]
    limitations = [
        "- The rows are templated: prompts come from a fixed set of templates, in the pivot "
        "languages only.",
        "- The languages are not balanced (see Languages); the pivots appear in most rows.",
        "- Text quality is that of the sources; filters (language ID, length, deduplication, "
        "decontamination) remove only what they can detect.",
    ]
    if any(s.bundled for s in sources):
        limitations.append(
            "- Built from bayling-data's bundled samples: far too small to train on; for "
            "smoke tests and examples."
        )
    for warning in manifest.get("warnings") or []:
        limitations.append(f"- Build warning: {public_text(str(warning))}")
    real_flores = any(s.corpus.startswith("flores") and not s.bundled for s in sources)
    citations = ["bayling2", *(["flores"] if real_flores else [])]
    return {
        "dataset_summary": "\n".join(summary),
        "dataset_description": "\n".join(description),
        "language": f"{len(codes)} languages ({', '.join(codes[:8])}"
        + (f", ... and {len(codes) - 8} more" if len(codes) > 8 else "")
        + "; see Languages)",
        "license": _license_line(license_, sources),
        "repo": f"https://huggingface.co/datasets/{repo}",
        "paper": "BayLing 2 (arXiv:2411.16300), the recipe this data follows",
        "direct_use": "Supervised fine-tuning (instruction tuning) of language models for "
        "cross-lingual ability around Chinese and English: load it with `datasets`, or give "
        "the `messages` column to TRL's SFTTrainer, LLaMA-Factory or axolotl.",
        "out_of_scope_use": "Evaluating machine translation: the rows come from training "
        "splits (Flores dev), and the evaluation splits were held out by the build's "
        "decontamination. Not a source of facts.",
        "dataset_structure": "\n".join(structure),
        "curation_rationale_section": "\n".join(rationale),
        "data_collection_and_processing_section": "\n".join(collection),
        "source_data_producers_section": "\n".join(producers) or "-",
        "annotation_process_section": "\n".join(annotation),
        "who_are_annotators_section": "No annotators: the instructions are templated by "
        "bayling-data.",
        "personal_and_sensitive_information": "Not checked by the build."
        + (
            " Flores text is from Wikimedia projects (Wikinews, Wikijunior, Wikivoyage)."
            if "flores" in citations
            else ""
        ),
        "bias_risks_limitations": "\n".join(limitations),
        "citation_bibtex": "```bibtex\n" + "\n\n".join(CITATIONS[c] for c in citations) + "\n```",
        "citation_apa": " ".join(APA[c] for c in citations),
        "more_information": f"bayling-data {version}, signature `{signature}`.",
    }
