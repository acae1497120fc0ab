"""Cross-lingual QA through a pivot, from a QA set that holds the same item in several languages.

Input is JSON Lines (or a JSON array) in which one row is one language version of an item and rows
sharing an id are the same item (XQuAD, MLQA, Bactrian-X style). For an item with a version in a
pivot P (a prompt language) and in another language X, three variants teach the model to carry
knowledge across the pivot:

* ``answer_in_pivot``: X question, P answer; the prompt, written in P, names X.
* ``answer_in_target``: P question asking for an answer in X; X answer.
* ``pivot_step``: X question; the answer restates the question in P, answers in P, then in X.
* ``chat``: a two-turn conversation: the X question answered in P, then a follow-up asking for
  the answer in X, answered with the X version (QA turns mixed into a cross-lingual chat).

Answers are the item's own versions, never machine output, so every row is right by construction.
A question never goes out without the passage it depends on: when any version of an item has a
context (``context_field``, ``context`` by default), every row shows the context of the version
whose question it asks, and a row whose asked version has none is not generated (counted in
``details()["skipped_rows"]``; an item left with no row at all in ``skipped``).
Items are grouped by id in memory (a QA set is small next to a parallel corpus); rows come out in
the order items were first seen, and each choice of P and template is a hash of the seed, item id,
X and variant.
"""

from __future__ import annotations

import fnmatch
import string
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from bayling_data.config import resolve_code
from bayling_data.errors import BaylingError, CorpusError, UnknownLanguageError
from bayling_data.hashing import content_id, stable_hash, unit_interval, weighted_choice
from bayling_data.languages import LanguageRegistry, registry
from bayling_data.schema import WORK_INSTRUCTION_SCHEMA
from bayling_data.tasks.base import ItemTask, RowGate, TaskContext, TaskFields, checked_choices
from bayling_data.tasks.instructions import file_stem, iter_json_records, resolve_item_paths
from bayling_data.tasks.templates import Template, TemplateSet, bundled_templates

VARIANTS = ("answer_in_pivot", "answer_in_target", "pivot_step", "chat")
Variant = Literal["answer_in_pivot", "answer_in_target", "pivot_step", "chat"]
BATCH_ROWS = 1000

# Template groups (the second part of a template id) and the placeholders each must use / may use.
_OPTIONAL = {"pivot_name"}
GROUPS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "pivot": (frozenset({"question", "lang_name"}), frozenset(_OPTIONAL)),
    "target": (frozenset({"question", "lang_name"}), frozenset(_OPTIONAL)),
    "step": (frozenset({"question", "lang_name"}), frozenset(_OPTIONAL)),
    "layout": (
        frozenset({"pivot_question", "pivot_answer", "answer", "lang_name"}),
        frozenset(_OPTIONAL),
    ),
    "ctx": (frozenset({"context", "question"}), frozenset()),
    "followup": (frozenset({"lang_name"}), frozenset(_OPTIONAL)),
}
_VARIANT_GROUP = {
    "answer_in_pivot": "pivot",
    "answer_in_target": "target",
    "pivot_step": "step",
    "chat": "pivot",
}
_ALL_PLACEHOLDERS = frozenset().union(*(req | opt for req, opt in GROUPS.values()))
CONTEXT_FIELD = "context"
# Why a row of an item that has a passage is not generated: the version it asks has none.
NO_CONTEXT = "no_context_in_asked_language"


class PivotQAConfig(TaskFields):
    """Cross-lingual QA through a pivot from a multilingual QA set keyed by item id."""

    type: Literal["pivot_qa"]
    path: str = Field(description="JSONL or JSON-array file(s): a file, a glob, or sample:qa.")
    id_field: str = Field(default="id", description="The key that ties language versions.")
    language_field: str | None = Field(
        default="lang", description="The key holding a row's language (any registry code)."
    )
    languages: dict[str, str] = Field(
        default_factory=dict,
        description="File-name glob -> language, for files whose rows carry no language key.",
    )
    question_field: str = Field(default="question")
    answer_field: str = Field(default="answer")
    context_field: str | None = Field(
        default=CONTEXT_FIELD,
        description="The passage a question depends on, shown with it (null: rows have none).",
    )
    variants: list[Variant] = Field(default=list(VARIANTS), min_length=1)
    split: str = Field(default="train", description="What the rows record as source_split.")

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: dict[str, str]) -> dict[str, str]:
        return {pattern: resolve_code(code) for pattern, code in value.items()}

    @model_validator(mode="after")
    def _some_language_source(self) -> PivotQAConfig:
        if self.language_field is None and not self.languages:
            raise ValueError("give language_field or languages (file glob -> language)")
        return self


@dataclass(frozen=True)
class Version:
    """One language version of an item, and where it was read."""

    question: str
    answer: str
    context: str | None
    corpus: str


def _as_text(value: Any) -> str | None:
    """A field as text: a string, or the first of a list (SQuAD-style answer lists), or the
    ``text`` of an answer object."""
    if isinstance(value, dict):
        value = value.get("text")
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


class PivotQATask(ItemTask):
    """Reads a multilingual QA set, groups it by item id and yields the pivot variants."""

    name = "pivot_qa"

    def __init__(
        self,
        path: str | Path,
        pivots: Sequence[str],
        targets: Iterable[str] | None = None,
        *,
        id_field: str = "id",
        language_field: str | None = "lang",
        languages: dict[str, str] | None = None,
        question_field: str = "question",
        answer_field: str = "answer",
        context_field: str | None = CONTEXT_FIELD,
        variants: Iterable[str] = VARIANTS,
        prompt_languages: dict[str, float] | None = None,
        split: str = "train",
        seed: int = 0,
        templates: TemplateSet | None = None,
        lang_registry: LanguageRegistry | None = None,
        batch_rows: int = BATCH_ROWS,
    ):
        super().__init__()
        self.registry = lang_registry or registry()
        self.path = path
        self.pivots = [self.registry.resolve(code).code for code in pivots]
        self.targets = (
            None if targets is None else {self.registry.resolve(code).code for code in targets}
        )
        self.id_field, self.language_field = id_field, language_field
        self.languages = {
            pattern: self.registry.resolve(code).code for pattern, code in (languages or {}).items()
        }
        if language_field is None and not self.languages:
            raise ValueError("give language_field or languages (file glob -> language)")
        self.question_field, self.answer_field = question_field, answer_field
        self.context_field = context_field
        self.variants = checked_choices(dict.fromkeys(variants), VARIANTS, "variants")
        shares = prompt_languages or {"zho_Hans": 0.5, "eng_Latn": 0.5}
        self.prompt_languages = [
            (self.registry.resolve(code).code, share) for code, share in shares.items() if share > 0
        ]
        self.split = split
        self.seed = seed
        self.gate = RowGate(self.name, seed, self.pivots)
        self.batch_rows = batch_rows
        self.templates = templates or bundled_templates("pivot_qa", frozenset(), _ALL_PLACEHOLDERS)
        self.groups = {
            code: group_templates(self.templates, code) for code, _ in self.prompt_languages
        }
        self.skipped: Counter[str] = Counter()  # items, by reason
        self.skipped_rows: Counter[str] = Counter()  # rows of generated items, by reason
        self.items = 0
        self.duplicates = 0

    def details(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_rows": dict(sorted(self.skipped_rows.items())),
            "duplicate_versions": self.duplicates,
        }

    def reset_counters(self) -> None:
        super().reset_counters()
        self.skipped, self.skipped_rows = Counter(), Counter()
        self.items, self.duplicates = 0, 0

    # -- reading -------------------------------------------------------------------------------

    def _file_language(self, path: Path) -> str | None:
        for pattern, code in self.languages.items():
            if fnmatch.fnmatch(path.name, pattern) or fnmatch.fnmatch(str(path), pattern):
                return code
        return None

    def read_items(self) -> dict[str, dict[str, Version]]:
        """Every item's versions by language, items in the order first seen."""
        items: dict[str, dict[str, Version]] = {}
        resolved: dict[str, str] = {}
        for path in resolve_item_paths(self.path):
            file_language = self._file_language(path)
            corpus = file_stem(path)
            for line_no, row in iter_json_records(path):
                where = f"{path}:{line_no}"
                if not isinstance(row, dict):
                    raise CorpusError(f"{where}: expected a JSON object per row")
                item_id = row.get(self.id_field)
                if item_id is None or isinstance(item_id, (dict, list)):
                    raise CorpusError(f"{where}: no item id in {self.id_field!r}")
                lang = file_language or self._row_language(row, where, resolved)
                question = _as_text(row.get(self.question_field))
                answer = _as_text(row.get(self.answer_field))
                if question is None or answer is None:
                    raise CorpusError(
                        f"{where}: expected text in {self.question_field!r} and "
                        f"{self.answer_field!r}"
                    )
                context = _as_text(row.get(self.context_field)) if self.context_field else None
                versions = items.setdefault(str(item_id), {})
                if lang in versions:
                    self.duplicates += 1
                    continue
                versions[lang] = Version(question, answer, context, corpus)
        return items

    def _row_language(self, row: dict[str, Any], where: str, resolved: dict[str, str]) -> str:
        raw = row.get(self.language_field) if self.language_field else None
        if not isinstance(raw, str) or not raw.strip():
            raise CorpusError(f"{where}: no language in {self.language_field!r}")
        if raw not in resolved:
            try:
                resolved[raw] = self.registry.resolve(raw).code
            except UnknownLanguageError as err:
                raise CorpusError(f"{where}: {err}") from None
        return resolved[raw]

    # -- generating ----------------------------------------------------------------------------

    def item_targets(self, versions: dict[str, Version]) -> list[str]:
        """The languages X an item is asked in: targets of the recipe, and the other pivots."""
        return sorted(
            code
            for code in versions
            if code in self.pivots or self.targets is None or code in self.targets
        )

    def item_rows(self, item_id: str, versions: dict[str, Version]) -> Iterator[dict[str, Any]]:
        """The rows of one item; counts it as skipped when it has no pivot or no target, and a
        row as skipped when the item has a passage but the version the row asks has none."""
        pivots = [(code, share) for code, share in self.prompt_languages if code in versions]
        if not pivots:
            self.skipped["no_pivot"] += 1
            return
        # A question of an item with a passage may depend on it: ask only versions that have one.
        needs_context = any(version.context for version in versions.values())
        produced = candidates = False
        for target in self.item_targets(versions):
            choices = [(code, share) for code, share in pivots if code != target]
            if not choices:
                continue
            for variant in self.variants:
                candidates = True
                if needs_context:
                    if variant == "answer_in_target":  # asks the pivot's version
                        asked = [(code, share) for code, share in choices if versions[code].context]
                    else:  # asks the target's version
                        asked = choices if versions[target].context else []
                    if not asked:
                        self.skipped_rows[NO_CONTEXT] += 1
                        continue
                else:
                    asked = choices
                record = (item_id, target, variant)
                pivot = weighted_choice(asked, unit_interval(self.seed, "prompt", *record))
                produced = True
                key = self.gate.key(*record)
                src, tgt, direction = variant_languages(variant, pivot, target)
                if self.gate.admit(key, src, tgt, direction):
                    yield self.render(item_id, variant, pivot, target, versions, record, key)
        if not produced:
            self.skipped[NO_CONTEXT if candidates else "no_target"] += 1

    def _pick(self, pivot: str, group: str, *record: object) -> Template:
        options = self.groups[pivot][group]
        return options[stable_hash(self.seed, group, *record) % len(options)]

    def render(
        self,
        item_id: str,
        variant: str,
        pivot: str,
        target: str,
        versions: dict[str, Version],
        record: tuple[object, ...],
        mix_key: int,
    ) -> dict[str, Any]:
        """One instruction row; the answer is the item's own text in the answer language."""
        p, x = versions[pivot], versions[target]
        asked = p if variant == "answer_in_target" else x
        question = asked.question
        used: list[str] = []
        if asked.context:
            layout = self._pick(pivot, "ctx", *record)
            question = layout.render(context=asked.context, question=question)
            used.append(layout.id)
        names = {
            "lang_name": self.registry.prompt_name(target, pivot),
            "pivot_name": self.registry.prompt_name(pivot, pivot),
        }
        template = self._pick(pivot, _VARIANT_GROUP[variant], *record)
        prompt = template.render(question=question, **names)
        used.insert(0, template.id)
        messages = [{"role": "user", "content": prompt}]
        if variant == "chat":
            followup = self._pick(pivot, "followup", *record)
            messages += [
                {"role": "assistant", "content": p.answer},
                {"role": "user", "content": followup.render(**names)},
            ]
            used.append(followup.id)
            answer = x.answer
        elif variant == "answer_in_pivot":
            answer = p.answer
        elif variant == "answer_in_target":
            answer = x.answer
        else:
            layout = self._pick(pivot, "layout", *record)
            answer = layout.render(
                pivot_question=p.question, pivot_answer=p.answer, answer=x.answer, **names
            )
            used.append(layout.id)
        src, tgt, direction = variant_languages(variant, pivot, target)
        return {
            "id": content_id(self.name, *(m["content"] for m in messages), answer),
            "messages": [*messages, {"role": "assistant", "content": answer}],
            "task": self.name,
            "direction": direction,
            "src_lang": src,
            "tgt_lang": tgt,
            "prompt_lang": pivot,
            "template_id": "+".join(used),
            "source_corpus": asked.corpus,
            "source_split": self.split,
            "source_segment_id": item_id,
            "src_text": None,
            "tgt_text": None,
            "mix_key": mix_key,
        }

    def generate(self) -> Iterator[pa.RecordBatch]:
        items = self.read_items()
        self.items = len(items)
        self.stats.rows_in += len(items)
        rows: list[dict[str, Any]] = []
        for item_id, versions in items.items():
            rows.extend(self.item_rows(item_id, versions))
            if len(rows) >= self.batch_rows:
                yield self._flush(rows)
                rows = []
        if rows:
            yield self._flush(rows)

    def _flush(self, rows: list[dict[str, Any]]) -> pa.RecordBatch:
        self.stats.rows_out += len(rows)
        return pa.RecordBatch.from_pylist(rows, schema=WORK_INSTRUCTION_SCHEMA)

    @classmethod
    def from_config(cls, config: PivotQAConfig, context: TaskContext) -> PivotQATask:
        return cls(
            config.path,
            context.pivots,
            context.targets,
            id_field=config.id_field,
            language_field=config.language_field,
            languages=config.languages,
            question_field=config.question_field,
            answer_field=config.answer_field,
            context_field=config.context_field,
            variants=config.variants,
            prompt_languages=config.prompt_languages,
            split=config.split,
            seed=context.seed,
        )


def variant_languages(variant: str, pivot: str, target: str) -> tuple[str, str, str]:
    """(src_lang, tgt_lang, direction) of a row of this variant, as :meth:`render` sets them."""
    if variant == "chat":
        return target, target, f"{target}-{pivot}"
    if variant == "answer_in_pivot":
        return target, pivot, f"{target}-{pivot}"
    if variant == "answer_in_target":
        return pivot, target, f"{pivot}-{target}"
    return target, target, f"{target}-{target}"


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def group_templates(templates: TemplateSet, code: str) -> dict[str, tuple[Template, ...]]:
    """A prompt language's templates by group (``pqa-<group>-...``), each group checked for its
    own placeholders, since one file holds all five kinds."""
    groups: dict[str, list[Template]] = {group: [] for group in GROUPS}
    for template in templates.for_language(code):
        parts = template.id.split("-")
        group = parts[1] if len(parts) > 2 else ""
        if group not in GROUPS:
            raise BaylingError(
                f"pivot_qa template {template.id}: the id must read pqa-<group>-..., "
                f"group one of {', '.join(GROUPS)}"
            )
        required, optional = GROUPS[group]
        names = _placeholders(template.user)
        if not required <= names or not names <= required | optional:
            raise BaylingError(
                f"pivot_qa template {template.id}: must use {sorted(required)} and only "
                f"{sorted(required | optional)}; it uses {sorted(names)}"
            )
        groups[group].append(template)
    missing = [group for group, found in groups.items() if not found]
    if missing:
        raise BaylingError(f"pivot_qa templates in {code}: no {', '.join(missing)} template")
    return {group: tuple(found) for group, found in groups.items()}
