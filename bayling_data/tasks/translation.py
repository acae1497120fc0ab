"""Translation instructions between every target language and every pivot, in both directions.

The prompt is written in a pivot language (Chinese or English, in the recipe's mix) and names both
languages in that prompt language: "把下面的斯瓦希里语翻译成简体中文：…" or "Translate the following
Swahili text into Simplified Chinese: …" (names from :meth:`LanguageRegistry.prompt_name`, one per
language, so a prompt never names a language that another script shares). The answer is the
reference translation. A share of rows (``system_prompt``) starts with a system message from
``templates/system_prompts.yaml``, in the prompt language, so that models also learn to translate
under a system prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, TypeVar

import pyarrow as pa
import xxhash
from pydantic import Field

from bayling_data.hashing import (
    WeightedChoice,
    hash_prefix,
    join_parts,
    prefixed_hash,
    unit_interval,
)
from bayling_data.languages import LanguageRegistry
from bayling_data.schema import segment_languages
from bayling_data.tasks.base import (
    CHUNK_ROWS,
    LanguagesMixin,
    SegmentTask,
    TaskContext,
    TaskFields,
    checked_choices,
    flush,
    new_columns,
    single_turn_messages,
)
from bayling_data.tasks.templates import (
    SYSTEM_PROMPTS,
    Template,
    TemplateSet,
    declare_templates,
    load_templates,
)

DIRECTIONS = ("to_pivot", "from_pivot", "between_pivots")
Direction = Literal["to_pivot", "from_pivot", "between_pivots"]

TEMPLATE_SPEC = declare_templates("translation", {"src_name", "tgt_name", "src_text"})
# A template with the language names filled in: (text before src_text, text after, template id)
# where src_text is all that is left to fill, else the partial template.
FilledTemplate = tuple[str, str, str] | Template
T = TypeVar("T")


class TranslationTaskConfig(TaskFields):
    """Translation instructions between every target language and every pivot."""

    type: Literal["translation"]
    directions: list[Direction] = Field(
        default=["to_pivot", "from_pivot", "between_pivots"],
        min_length=1,
        description="Which directions to generate.",
    )
    system_prompt: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of rows that start with a system prompt (system_prompts.yaml).",
    )
    templates: str | None = Field(
        default=None,
        description="A template file of your own, used instead of the bundled one.",
    )


class TranslationTask(LanguagesMixin, SegmentTask):
    """Segment batch in, translation instruction batch out.

    The prompt language and template of each instruction are chosen from a hash of the seed and
    the record (corpus, split, segment id, direction), so output never depends on batch size or on
    how work is split between workers.
    """

    name = "translation"
    level = "task"

    def __init__(
        self,
        pivots: Sequence[str],
        targets: Iterable[str] | None = None,
        *,
        directions: Iterable[str] = DIRECTIONS,
        prompt_languages: dict[str, float] | None = None,
        seed: int = 0,
        templates: TemplateSet | None = None,
        system_prompt: float = 0.0,
        system_templates: TemplateSet | None = None,
        lang_registry: LanguageRegistry | None = None,
    ):
        super().__init__()
        self.init_languages(pivots, targets, prompt_languages, seed, lang_registry)
        self._names: dict[tuple[str, str, str], dict[str, str]] = {}
        self._prefixes: dict[str, str] = {}
        # Per direction and prompt language: its templates with the names filled in.
        self._filled: dict[tuple[str, str, str], list[FilledTemplate]] = {}
        self.directions = checked_choices(directions, DIRECTIONS, "directions")
        self.templates = templates or load_templates(self.name)
        if not 0.0 <= system_prompt <= 1.0:
            raise ValueError(f"system_prompt is a share in [0, 1], got {system_prompt}")
        self.system_prompt = system_prompt
        self.system_templates = system_templates or load_templates(SYSTEM_PROMPTS.task)
        for code, share in self.prompt_languages:
            if share > 0:
                self.templates.for_language(code)  # fails early with the languages available
                if system_prompt > 0:
                    self.system_templates.for_language(code)

    def pairs(self, languages: Iterable[str]) -> list[tuple[str, str]]:
        """The (source, target) pairs generated for a batch holding these languages."""
        present = list(languages)
        pivots = [code for code in self.pivots if code in present]
        targets = [
            code
            for code in present
            if code not in self.pivots and (self.targets is None or code in self.targets)
        ]
        pairs: list[tuple[str, str]] = []
        if "to_pivot" in self.directions:
            pairs += [(target, pivot) for target in targets for pivot in pivots]
        if "from_pivot" in self.directions:
            pairs += [(pivot, target) for target in targets for pivot in pivots]
        if "between_pivots" in self.directions:
            pairs += [(a, b) for a in pivots for b in pivots if a != b]
        return pairs

    def pick(self, templates: Sequence[T], salt: str, record_text: str) -> T:
        """A template chosen from a hash of the seed and the record (``join_parts(*record)``)."""
        prefix = self._prefixes.get(salt)
        if prefix is None:
            prefix = self._prefixes[salt] = hash_prefix(self.seed, salt)
        return templates[prefixed_hash(prefix, record_text) % len(templates)]

    def names(self, src: str, tgt: str, prompt_lang: str) -> dict[str, str]:
        """The languages' names in the prompt's language (looked up once per direction)."""
        found = self._names.get((src, tgt, prompt_lang))
        if found is None:
            found = {
                "src_name": self.registry.prompt_name(src, prompt_lang),
                "tgt_name": self.registry.prompt_name(tgt, prompt_lang),
            }
            self._names[(src, tgt, prompt_lang)] = found
        return found

    def prompt(
        self,
        src: str,
        tgt: str,
        src_text: str,
        tgt_text: str,
        prompt_lang: str,
        record: tuple[str, ...],
        record_text: str,
    ) -> tuple[str, str] | None:
        """The user prompt and its template id for one pair (None: skip the pair). ``record`` is
        (corpus, split, segment id, source, target); ``record_text`` the same joined for hashing."""
        choices = self._filled.get((src, tgt, prompt_lang))
        if choices is None:
            choices = self._filled[(src, tgt, prompt_lang)] = self._fill(src, tgt, prompt_lang)
        choice = self.pick(choices, "template", record_text)
        if isinstance(choice, tuple):
            before, after, template_id = choice
            return before + src_text + after, template_id
        return choice.render(src_text=src_text), choice.id

    def system_message(
        self, src: str, tgt: str, prompt_lang: str, record: tuple[str, ...], record_text: str
    ) -> tuple[str, str] | None:
        """(template id, text) of the row's system prompt, for the configured share of rows."""
        if (
            self.system_prompt <= 0
            or unit_interval(self.seed, "system", *record) >= self.system_prompt
        ):
            return None
        choices = self.system_templates.for_language(prompt_lang)
        template = self.pick(choices, "system-template", record_text)
        return template.id, template.render(**self.names(src, tgt, prompt_lang))

    def rows(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        # One loop over segments x pairs, appending straight to the column lists: the hashes of
        # a row share their leading parts (prefixed_hash), and the loop avoids a call a column
        # (about half the time of the plain version on the bible pair, same bytes). The messages
        # column is built from the prompts at the end (single_turn_messages).
        pairs = self.pairs(segment_languages(batch))
        columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        corpora, splits, segments = columns["corpus"], columns["split"], columns["segment_id"]
        name, gate, sep = self.name, self.gate, "\x1f"
        mix_prefix = gate.prefix
        # The gate lets every row in unless it keeps a census or has limits to apply.
        admit = gate.admit if gate.census or gate.limits is not None else None
        prompt_prefix = hash_prefix(self.seed, "prompt")
        with_system = self.system_prompt > 0
        choose_language = WeightedChoice(self.prompt_languages)
        two_64 = float(1 << 64)
        digest = xxhash.xxh3_64_intdigest
        row_digest = xxhash.xxh3_128_hexdigest
        out = new_columns()
        ids, tasks, directions = out["id"], out["task"], out["direction"]
        src_langs, tgt_langs, prompt_langs = out["src_lang"], out["tgt_lang"], out["prompt_lang"]
        template_ids, corpus_out, split_out = (
            out["template_id"],
            out["source_corpus"],
            out["source_split"],
        )
        segment_out, src_out, tgt_out = out["source_segment_id"], out["src_text"], out["tgt_text"]
        keys = out["mix_key"]
        prompts: list[str] = []
        systems: list[str | None] = []
        plan = [(src, tgt, f"{src}-{tgt}", join_parts("", src, tgt)) for src, tgt in pairs]
        for row in range(batch.num_rows):
            corpus, split, segment = corpora[row], splits[row], segments[row]
            head = join_parts(corpus, split, segment)
            for src, tgt, direction, tail in plan:
                src_text, tgt_text = columns[src][row], columns[tgt][row]
                if src_text is None or tgt_text is None:
                    continue
                record_text = head + tail
                key = digest((mix_prefix + record_text).encode("utf-8"))
                if admit is not None and not admit(key, src, tgt, direction):
                    continue
                prompt_lang = choose_language(
                    digest((prompt_prefix + record_text).encode("utf-8")) / two_64
                )
                record = (corpus, split, segment, src, tgt)
                made = self.prompt(src, tgt, src_text, tgt_text, prompt_lang, record, record_text)
                if made is None:
                    continue
                prompt, template_id = made
                system = (
                    self.system_message(src, tgt, prompt_lang, record, record_text)
                    if with_system
                    else None
                )
                if system is None:
                    row_id = row_digest(f"{name}{sep}{prompt}{sep}{tgt_text}".encode())
                    systems.append(None)
                else:
                    system_id, system_text = system
                    template_id = f"{template_id}+{system_id}"
                    systems.append(system_text)
                    row_id = row_digest(
                        f"{name}{sep}{system_text}{sep}{prompt}{sep}{tgt_text}".encode()
                    )
                ids.append(row_id)
                prompts.append(prompt)
                tasks.append(name)
                directions.append(direction)
                src_langs.append(src)
                tgt_langs.append(tgt)
                prompt_langs.append(prompt_lang)
                template_ids.append(template_id)
                corpus_out.append(corpus)
                split_out.append(split)
                segment_out.append(segment)
                src_out.append(src_text)
                tgt_out.append(tgt_text)
                keys.append(key)
            if len(ids) >= CHUNK_ROWS:
                yield self._flush(out, prompts, systems)
        if ids:
            yield self._flush(out, prompts, systems)

    def _fill(self, src: str, tgt: str, prompt_lang: str) -> list[FilledTemplate]:
        """The prompt language's templates with both names filled in, in the order :meth:`pick`
        picks from."""
        out: list[FilledTemplate] = []
        for template in self.templates.for_language(prompt_lang):
            named = template.partial(**self.names(src, tgt, prompt_lang))
            pieces = named.pieces
            if len(pieces) == 2 and pieces[0][1] == "src_text" and pieces[1][1] is None:
                out.append((pieces[0][0], pieces[1][0], template.id))
            else:
                out.append(named)
        return out

    @staticmethod
    def _flush(
        out: dict[str, list[object]], prompts: list[str], systems: list[str | None]
    ) -> pa.RecordBatch:
        messages = single_turn_messages(prompts, out["tgt_text"], systems)  # type: ignore[arg-type]
        prompts.clear()
        systems.clear()
        return flush(out, messages)

    @classmethod
    def from_config(cls, config: TranslationTaskConfig, context: TaskContext) -> TranslationTask:
        return cls(
            context.pivots,
            context.targets,
            directions=config.directions,
            prompt_languages=config.prompt_languages,
            seed=context.seed,
            templates=load_templates(cls.name, config.templates) if config.templates else None,
            system_prompt=config.system_prompt,
        )
