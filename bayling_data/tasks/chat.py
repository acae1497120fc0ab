"""Cross-lingual multi-turn chats whose languages switch from turn to turn.

Two modes, every answer a reference translation from the segment batch:

* ``chain`` (one multi-way segment): turn 1 gives the sentence in a target language X and asks for
  it in L1; each middle turn asks "now into L2", ...; the last turn asks for it back in a pivot.
  The number of user turns (``min_turns`` .. ``max_turns``) and the languages are hashes of the
  seed and the record; a segment with too few languages gets as many turns as it can (at least 2).
* ``document`` (consecutive segments sharing a ``doc_id``, in stream order): turn i asks to
  translate sentence i of the document from X into a pivot P (or from P into X). A document longer
  than ``max_turns`` is cut into consecutive windows of near-equal size; a window shorter than
  ``min_turns`` (only a document shorter than that) is left out. Batches hold whole documents,
  so windows never depend on batch size.

Each user turn's prompt language is drawn on its own from ``prompt_languages``, so the user may
switch between the pivots inside one chat. ``prompt_lang`` and ``template_id`` of a row are those
of its first turn.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import pyarrow as pa
from pydantic import Field, model_validator

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
from bayling_data.tasks.comprehension import split_by_kind
from bayling_data.tasks.templates import (
    Template,
    TemplateSet,
    bundled_templates,
    declare_templates,
)

MODES = ("chain", "document")
Mode = Literal["chain", "document"]

_NAMES_AND_TEXT = frozenset({"src_name", "tgt_name", "src_text"})
# Template kind (second part of the id) -> (required, allowed) placeholders.
TEMPLATE_KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "first": (_NAMES_AND_TEXT, _NAMES_AND_TEXT),
    "next": (frozenset({"tgt_name"}), frozenset({"tgt_name"})),
    "back": (frozenset({"tgt_name"}), frozenset({"tgt_name"})),
    "docfirst": (_NAMES_AND_TEXT, _NAMES_AND_TEXT),
    "docnext": (frozenset({"src_text"}), _NAMES_AND_TEXT),
}
# Declared for the loader and `bayling-data templates`; each kind's own placeholders are checked
# when the task loads its templates (see TEMPLATE_KINDS).
declare_templates(
    "chat", set(), frozenset().union(*(allowed for _, allowed in TEMPLATE_KINDS.values()))
)

# One user turn before rendering: template kind, placeholder values, answer, answer language.
Turn = tuple[str, dict[str, str], str, str]


class ChatTaskConfig(TaskFields):
    """Multi-turn chats that switch languages across turns (translation chains, documents)."""

    type: Literal["chat"]
    modes: list[Mode] = Field(
        default=["chain", "document"], min_length=1, description="Which kinds of chat to build."
    )
    min_turns: int = Field(default=2, ge=2, description="Fewest user turns in a chat.")
    max_turns: int = Field(default=4, ge=2, description="Most user turns in a chat.")

    @model_validator(mode="after")
    def _turns(self) -> ChatTaskConfig:
        if self.min_turns > self.max_turns:
            raise ValueError(f"min_turns ({self.min_turns}) exceeds max_turns ({self.max_turns})")
        return self


class ChatTask(LanguagesMixin, SegmentTask):
    """Segment batch in, multi-turn chat batch out; stateless, so output never depends on batch
    size (documents are whole within a batch)."""

    name = "chat"
    level = "task"

    def __init__(
        self,
        pivots: Sequence[str],
        targets: Iterable[str] | None = None,
        *,
        modes: Iterable[str] = MODES,
        min_turns: int = 2,
        max_turns: int = 4,
        prompt_languages: dict[str, float] | None = None,
        seed: int = 0,
        templates: TemplateSet | None = None,
        lang_registry: LanguageRegistry | None = None,
    ):
        super().__init__()
        self.init_languages(pivots, targets, prompt_languages, seed, lang_registry)
        self.modes = checked_choices(modes, MODES, "modes")
        if not 2 <= min_turns <= max_turns:
            raise ValueError(f"need 2 <= min_turns <= max_turns, got {min_turns}, {max_turns}")
        self.min_turns, self.max_turns = min_turns, max_turns
        allowed = frozenset().union(*(allowed for _, allowed in TEMPLATE_KINDS.values()))
        templates = templates or bundled_templates("chat", frozenset(), allowed)
        self.templates = split_by_kind(templates, TEMPLATE_KINDS)
        for code, share in self.prompt_languages:
            if share > 0:
                for kind in TEMPLATE_KINDS:
                    self._choices(code, kind)  # fails early with the languages available

    def _choices(self, prompt_lang: str, kind: str) -> tuple[Template, ...]:
        try:
            return self.templates[(prompt_lang, kind)]
        except KeyError:
            written = sorted({lang for lang, k in self.templates if k == kind})
            raise BaylingError(
                f"no chat {kind} templates are written in {prompt_lang}; "
                f"available prompt languages: {', '.join(written)}"
            ) from None

    def _languages(self, present: Iterable[str]) -> tuple[list[str], list[str]]:
        """The pivots and the targets among a batch's languages, in column order."""
        present = list(present)
        pivots = [code for code in self.pivots if code in present]
        targets = [
            code
            for code in present
            if code not in self.pivots and (self.targets is None or code in self.targets)
        ]
        return pivots, targets

    def rows(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        pivots, targets = self._languages(segment_languages(batch))
        columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        out = new_columns()
        windows: dict[int, int] = {}  # first row -> end row of each document window
        if "document" in self.modes:
            for start, end, doc_id in document_runs(columns["doc_id"]):
                if doc_id is None:
                    continue
                windows.update((start + a, start + b) for a, b in self.windows(end - start))
        for row in range(batch.num_rows):  # rows out in stream order, whatever the batch size
            if "chain" in self.modes:
                for source in targets:
                    self._chain(out, columns, row, source, pivots, targets)
            if row in windows:
                for source in targets:
                    self._document(out, columns, row, windows[row], source, pivots)
            if full(out):
                yield flush(out)
        if out["id"]:
            yield flush(out)

    def windows(self, length: int) -> list[tuple[int, int]]:
        """[start, end) offsets of a document's windows: consecutive, sizes differing by at most
        one, none over ``max_turns``; those under ``min_turns`` are left out."""
        count = math.ceil(length / self.max_turns)
        bounds = [length * i // count for i in range(count + 1)] if count else [0]
        return [(a, b) for a, b in itertools.pairwise(bounds) if b - a >= self.min_turns]

    def _chain(
        self,
        out: dict[str, list[object]],
        columns: dict[str, list],
        row: int,
        source: str,
        pivots: list[str],
        targets: list[str],
    ) -> None:
        text = columns[source][row]
        if text is None:
            return
        record = (columns["corpus"][row], columns["split"][row], columns["segment_id"][row])
        record += ("chain", source)
        finals = [code for code in pivots if columns[code][row] is not None]
        if not finals:
            return
        final = finals[stable_hash(self.seed, "final", *record) % len(finals)]
        pool = [
            code
            for code in [*pivots, *targets]
            if code not in (source, final) and columns[code][row] is not None
        ]
        span = self.max_turns - self.min_turns + 1
        turns = self.min_turns + stable_hash(self.seed, "turns", *record) % span
        turns = min(turns, len(pool) + 1)
        if turns < 2:
            return
        middle = []
        for i in range(turns - 1):
            middle.append(pool.pop(stable_hash(self.seed, "via", i, *record) % len(pool)))
        path = [*middle, final]
        plan: list[Turn] = [
            ("first", {"src_text": text}, columns[path[0]][row], path[0]),
            *(("next", {}, columns[code][row], code) for code in path[1:-1]),
            ("back", {}, columns[final][row], final),
        ]
        self._emit(out, columns, row, record, source, plan, text, columns[final][row])

    def _document(
        self,
        out: dict[str, list[object]],
        columns: dict[str, list],
        start: int,
        end: int,
        target: str,
        pivots: list[str],
    ) -> None:
        rows = range(start, end)
        if any(columns[target][r] is None for r in rows):
            return
        record = (columns["corpus"][start], columns["split"][start], columns["segment_id"][start])
        record += ("document", target)
        usable = [code for code in pivots if all(columns[code][r] is not None for r in rows)]
        if not usable:
            return
        pivot = usable[stable_hash(self.seed, "pivot", *record) % len(usable)]
        src, tgt = (target, pivot)
        if unit_interval(self.seed, "direction", *record) >= 0.5:
            src, tgt = tgt, src
        plan: list[Turn] = [
            (
                "docfirst" if r == start else "docnext",
                {"src_text": columns[src][r]},
                columns[tgt][r],
                tgt,
            )
            for r in rows
        ]
        sources = "\n".join(columns[src][r] for r in rows)
        answers = "\n".join(columns[tgt][r] for r in rows)
        self._emit(out, columns, start, record, src, plan, sources, answers)

    def _emit(
        self,
        out: dict[str, list[object]],
        columns: dict[str, list],
        row: int,
        record: tuple[object, ...],
        source: str,
        plan: list[Turn],
        src_text: str,
        tgt_text: str,
    ) -> None:
        """Render the turns of one chat and append it as a row (if its gate lets it in)."""
        languages = list(dict.fromkeys([source, *(lang for *_, lang in plan)]))
        key = self.gate.key(*record)
        if not self.gate.admit(key, source, plan[-1][3], "-".join(languages)):
            return
        messages: list[dict[str, str]] = []
        first_lang = first_id = ""
        previous = source
        for turn, (kind, values, answer, lang) in enumerate(plan):
            prompt_lang = weighted_choice(
                self.prompt_languages, unit_interval(self.seed, "prompt", turn, *record)
            )
            choices = self._choices(prompt_lang, kind)
            template = choices[stable_hash(self.seed, "template", turn, *record) % len(choices)]
            src_lang = source if kind in ("first", "docfirst", "docnext") else previous
            prompt = template.render(
                src_name=self.registry.prompt_name(src_lang, prompt_lang),
                tgt_name=self.registry.prompt_name(lang, prompt_lang),
                **values,
            )
            messages += [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": answer},
            ]
            if turn == 0:
                first_lang, first_id = prompt_lang, template.id
            previous = lang
        append_row(
            out,
            id=content_id(self.name, *(m["content"] for m in messages)),
            messages=messages,
            task=self.name,
            direction="-".join(languages),
            src_lang=source,
            tgt_lang=plan[-1][3],
            prompt_lang=first_lang,
            template_id=first_id,
            source_corpus=columns["corpus"][row],
            source_split=columns["split"][row],
            source_segment_id=columns["segment_id"][row],
            src_text=src_text,
            tgt_text=tgt_text,
            mix_key=key,
        )

    @classmethod
    def from_config(cls, config: ChatTaskConfig, context: TaskContext) -> ChatTask:
        return cls(
            context.pivots,
            context.targets,
            modes=config.modes,
            min_turns=config.min_turns,
            max_turns=config.max_turns,
            prompt_languages=config.prompt_languages,
            seed=context.seed,
        )
