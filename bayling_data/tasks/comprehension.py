"""Comprehension instructions whose answers are exact by construction, from parallel segments.

Three kinds, each built from one aligned segment (and, for ``same_meaning``, a second one):

* ``explain``: "what does this Swahili sentence mean? answer in Chinese" -> the segment's Chinese
  text. The prompt is written in the pivot the answer is in.
* ``identify_language``: "what language is this sentence?" -> the language's prompt name in the
  prompt language (inside a short answer template). The prompt never names the language.
* ``same_meaning``: a sentence in X and one in pivot P: do they mean the same? Half the rows pair
  the segment with its own P text (yes), half with the P text of another segment (no). The
  prompt is written in P, so the answer is in the row's target language.

The mismatched partner of ``same_meaning`` never depends on batch size:

* a segment with a ``doc_id`` takes its partner from the other segments of its document (a batch
  always holds whole documents, see :class:`~bayling_data.sources.base.BatchBuilder`);
* a segment without one takes it from the :data:`RING_SIZE` segments that came before it in the
  stream of its (corpus, split), a ring buffer carried from batch to batch. This is the one piece
  of state beyond counters: batches of one stream must reach one stage object in stream order.

A candidate is dropped when its P text or its X text equals the segment's own (a duplicate would
make "no" wrong); the partner is a hash of the seed and the record among the rest. A segment with
no candidate gets no mismatched row rather than a wrong one.
"""

from __future__ import annotations

import string
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import pyarrow as pa
from pydantic import Field

from bayling_data.errors import BaylingError
from bayling_data.hashing import content_id, stable_hash, unit_interval, weighted_choice
from bayling_data.languages import LanguageRegistry
from bayling_data.schema import segment_languages
from bayling_data.tasks.base import (
    LanguagesMixin,
    SegmentTask,
    TaskContext,
    TaskFields,
    append_row,
    checked_choices,
    document_runs,
    flush,
    full,
    new_columns,
)
from bayling_data.tasks.templates import (
    Template,
    TemplateSet,
    bundled_templates,
    declare_templates,
)

KINDS = ("explain", "identify_language", "same_meaning")
Kind = Literal["explain", "identify_language", "same_meaning"]

# How many earlier segments of a stream without doc ids may give a mismatched partner.
RING_SIZE = 8

# Template kind (second part of the id) -> (required, allowed) placeholders.
TEMPLATE_KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "explain": (frozenset({"src_name", "src_text", "tgt_name"}),) * 2,
    "identify": (frozenset({"src_text"}),) * 2,
    "identans": (frozenset({"lang_name"}),) * 2,
    "same": (frozenset({"src_name", "src_text", "tgt_name", "tgt_text"}),) * 2,
    "yes": (frozenset(),) * 2,
    "no": (frozenset(),) * 2,
}
_ALL_FIELDS = frozenset().union(*(allowed for _, allowed in TEMPLATE_KINDS.values()))
# Declared for the loader and `bayling-data templates`; each kind's own placeholders are checked
# when the task loads its templates (see TEMPLATE_KINDS).
declare_templates("comprehension", set(), _ALL_FIELDS)
_META = ("corpus", "split", "doc_id")


class ComprehensionTaskConfig(TaskFields):
    """Comprehension questions (explain, which language, same meaning?) with exact answers."""

    type: Literal["comprehension"]
    kinds: list[Kind] = Field(
        default=["explain", "identify_language", "same_meaning"],
        min_length=1,
        description="Which kinds of question to generate.",
    )


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a template."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def split_by_kind(
    templates: TemplateSet, kinds: dict[str, tuple[frozenset[str], frozenset[str]]]
) -> dict[tuple[str, str], tuple[Template, ...]]:
    """Templates by (prompt language, kind), the kind read from the id's second part; each kind's
    placeholders are checked here since one file holds several kinds."""
    grouped: dict[tuple[str, str], list[Template]] = {}
    for lang, entries in templates.by_language.items():
        for template in entries:
            parts = template.id.split("-")
            kind = parts[1] if len(parts) > 2 else ""
            if kind not in kinds:
                raise BaylingError(
                    f"{templates.task} template {template.id}: the id's second part must be one "
                    f"of {sorted(kinds)}"
                )
            required, allowed = kinds[kind]
            names = placeholders(template.user)
            if not required <= names or not names <= allowed:
                raise BaylingError(
                    f"{templates.task} template {template.id} ({kind}) must use "
                    f"{sorted(required)} and only {sorted(allowed)}; it uses {sorted(names)}"
                )
            grouped.setdefault((lang, kind), []).append(template)
    return {key: tuple(value) for key, value in grouped.items()}


class ComprehensionTask(LanguagesMixin, SegmentTask):
    """Segment batch in, comprehension instruction batch out.

    Every choice (prompt language, template, true or mismatched pair, partner) is a hash of the
    seed and the record (corpus, split, segment id, kind, languages), so output does not depend on
    batch size.
    """

    name = "comprehension"
    level = "task"

    def __init__(
        self,
        pivots: Sequence[str],
        targets: Iterable[str] | None = None,
        *,
        kinds: Iterable[str] = KINDS,
        prompt_languages: dict[str, float] | None = None,
        seed: int = 0,
        templates: TemplateSet | None = None,
        lang_registry: LanguageRegistry | None = None,
    ):
        super().__init__()
        self.init_languages(pivots, targets, prompt_languages, seed, lang_registry)
        self.kinds = checked_choices(kinds, KINDS, "kinds")
        templates = templates or bundled_templates("comprehension", frozenset(), _ALL_FIELDS)
        self.templates = split_by_kind(templates, TEMPLATE_KINDS)
        for code, share in self.prompt_languages:
            if share > 0:
                for kind in TEMPLATE_KINDS:
                    self._choices(code, kind)  # fails early with the languages available
        self._written = {lang for lang, _ in self.templates}
        self._ring: dict[tuple[str, str], deque[dict[str, str | None]]] = {}

    def _choices(self, prompt_lang: str, kind: str) -> tuple[Template, ...]:
        try:
            return self.templates[(prompt_lang, kind)]
        except KeyError:
            written = sorted({lang for lang, k in self.templates if k == kind})
            raise BaylingError(
                f"no comprehension {kind} templates are written in {prompt_lang}; "
                f"available prompt languages: {', '.join(written)}"
            ) from None

    def _pick(self, prompt_lang: str, kind: str, *record: object) -> Template:
        choices = self._choices(prompt_lang, kind)
        return choices[stable_hash(self.seed, "template", kind, *record) % len(choices)]

    def _prompt_lang(self, *record: object) -> str:
        return weighted_choice(self.prompt_languages, unit_interval(self.seed, "prompt", *record))

    def pairs(self, languages: Iterable[str]) -> list[tuple[str, str]]:
        """The (target, pivot) pairs generated for a batch holding these languages."""
        present = list(languages)
        pivots = [code for code in self.pivots if code in present]
        targets = [
            code
            for code in present
            if code not in self.pivots and (self.targets is None or code in self.targets)
        ]
        return [(target, pivot) for target in targets for pivot in pivots]

    def reset(self) -> None:
        """Forget the earlier segments kept for streams without doc ids (a new build)."""
        self._ring.clear()

    def _partners(
        self, columns: dict[str, list], row: int, docs: list[tuple[int, int]]
    ) -> list[dict[str, str | None]]:
        """Rows that may give a mismatched partner: the segment's document, or the ring."""
        start, end = docs[row]
        if columns["doc_id"][row] is not None:
            langs = [name for name in columns if name not in _META]
            return [
                {name: columns[name][other] for name in langs}
                for other in range(start, end)
                if other != row
            ]
        key = (columns["corpus"][row], columns["split"][row])
        return list(self._ring.get(key, ()))

    def rows(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        pairs = self.pairs(segment_languages(batch))
        columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        docs = [
            (start, end)
            for start, end, _ in document_runs(columns["doc_id"])
            for _ in range(end - start)
        ]
        out = new_columns()
        targets = list(dict.fromkeys(target for target, _ in pairs))
        langs = [name for name in columns if name not in _META]
        for row in range(batch.num_rows):
            corpus, split = columns["corpus"][row], columns["split"][row]
            segment = columns["segment_id"][row]
            base = (corpus, split, segment)
            if "identify_language" in self.kinds:
                for target in targets:
                    text = columns[target][row]
                    if text is not None:
                        self._identify(out, base, target, text)
            partners: list[dict[str, str | None]] | None = None
            for target, pivot in pairs:
                src_text, tgt_text = columns[target][row], columns[pivot][row]
                if src_text is None or tgt_text is None:
                    continue
                if "explain" in self.kinds:
                    self._explain(out, base, target, pivot, src_text, tgt_text)
                if "same_meaning" in self.kinds:
                    if partners is None:
                        partners = self._partners(columns, row, docs)
                    self._same(out, base, target, pivot, src_text, tgt_text, partners)
            if columns["doc_id"][row] is None:
                ring = self._ring.setdefault((corpus, split), deque(maxlen=RING_SIZE))
                ring.append({name: columns[name][row] for name in langs})
            if full(out):
                yield flush(out)
        if out["id"]:
            yield flush(out)

    def _explain(
        self,
        out: dict[str, list[object]],
        base: tuple[str, str, str],
        target: str,
        pivot: str,
        src_text: str,
        tgt_text: str,
    ) -> None:
        if pivot not in self._written:
            return  # no templates in this pivot, and the answer is in the prompt's language
        record = (*base, "explain", target, pivot)
        key = self.gate.key(*record)
        if not self.gate.admit(key, target, pivot, f"{target}-{pivot}"):
            return
        template = self._pick(pivot, "explain", *record)
        prompt = template.render(
            src_name=self.registry.prompt_name(target, pivot),
            tgt_name=self.registry.prompt_name(pivot, pivot),
            src_text=src_text,
        )
        _append(
            out,
            base,
            prompt,
            tgt_text,
            template.id,
            (target, pivot),
            pivot,
            src_text,
            tgt_text,
            key,
        )

    def _identify(
        self, out: dict[str, list[object]], base: tuple[str, str, str], target: str, text: str
    ) -> None:
        record = (*base, "identify_language", target)
        prompt_lang = self._prompt_lang(*record)
        key = self.gate.key(*record)
        if not self.gate.admit(key, target, prompt_lang, f"{target}-{prompt_lang}"):
            return
        template = self._pick(prompt_lang, "identify", *record)
        lang_name = self.registry.prompt_name(target, prompt_lang)
        answer = self._pick(prompt_lang, "identans", *record).render(lang_name=lang_name)
        prompt = template.render(src_text=text)
        _append(
            out,
            base,
            prompt,
            answer,
            template.id,
            (target, prompt_lang),
            prompt_lang,
            text,
            None,
            key,
        )

    def _same(
        self,
        out: dict[str, list[object]],
        base: tuple[str, str, str],
        target: str,
        pivot: str,
        src_text: str,
        tgt_text: str,
        partners: list[dict[str, str | None]],
    ) -> None:
        if pivot not in self._written:
            return  # no templates in this pivot, and the answer is in the prompt's language
        record = (*base, "same_meaning", target, pivot)
        # The prompt, and so the answer ("yes, they mean the same"), is in the pivot of the
        # compared sentence: the row's target language is the language it answers in.
        prompt_lang = pivot
        languages = (target, pivot)
        key = self.gate.key(*record)
        if not self.gate.admit(key, *languages, "-".join(dict.fromkeys(languages))):
            return
        same = unit_interval(self.seed, "same", *record) < 0.5
        shown = tgt_text
        if not same:
            candidates = [
                partner[pivot]
                for partner in partners
                if partner.get(pivot) is not None
                and partner[pivot] != tgt_text
                and partner.get(target) != src_text
            ]
            if not candidates:
                self.stats.count(f"{target}-{pivot}", 1, 1, {"no mismatched partner": 1})
                return
            shown = candidates[stable_hash(self.seed, "partner", *record) % len(candidates)]
        template = self._pick(prompt_lang, "same", *record)
        prompt = template.render(
            src_name=self.registry.prompt_name(target, prompt_lang),
            tgt_name=self.registry.prompt_name(pivot, prompt_lang),
            src_text=src_text,
            tgt_text=shown,
        )
        answer = self._pick(prompt_lang, "yes" if same else "no", *record).render()
        _append(
            out,
            base,
            prompt,
            answer,
            template.id,
            languages,
            prompt_lang,
            src_text,
            shown,
            key,
        )

    @classmethod
    def from_config(
        cls, config: ComprehensionTaskConfig, context: TaskContext
    ) -> ComprehensionTask:
        return cls(
            context.pivots,
            context.targets,
            kinds=config.kinds,
            prompt_languages=config.prompt_languages,
            seed=context.seed,
        )


def _append(
    out: dict[str, list[object]],
    base: tuple[str, str, str],
    prompt: str,
    answer: str,
    template_id: str,
    languages: tuple[str, str],
    prompt_lang: str,
    src_text: str | None,
    tgt_text: str | None,
    mix_key: int,
) -> None:
    """One comprehension row: a single user turn and its answer."""
    corpus, split, segment = base
    append_row(
        out,
        id=content_id(ComprehensionTask.name, prompt, answer),
        messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
        task=ComprehensionTask.name,
        direction="-".join(dict.fromkeys(languages)),
        src_lang=languages[0],
        tgt_lang=languages[1],
        prompt_lang=prompt_lang,
        template_id=template_id,
        source_corpus=corpus,
        source_split=split,
        source_segment_id=segment,
        src_text=src_text,
        tgt_text=tgt_text,
        mix_key=mix_key,
    )
