"""Translation instructions between every target language and every pivot, in both directions.

The prompt is written in a pivot language (Chinese or English, in the recipe's mix) and names both
languages in that prompt language: "把下面的斯瓦希里语翻译成简体中文：…" or "Translate the following
Swahili text into Chinese: …". The answer is the reference translation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

import pyarrow as pa
from pydantic import Field

from bayling_data.hashing import content_id, stable_hash, unit_interval, weighted_choice
from bayling_data.languages import LanguageRegistry, registry
from bayling_data.schema import WORK_INSTRUCTION_SCHEMA, segment_languages
from bayling_data.stage import Stage
from bayling_data.tasks.base import TaskContext, TaskFields
from bayling_data.tasks.templates import TemplateSet, bundled_templates

DIRECTIONS = ("to_pivot", "from_pivot", "between_pivots")
Direction = Literal["to_pivot", "from_pivot", "between_pivots"]


class TranslationTaskConfig(TaskFields):
    """Translation instructions between every target language and every pivot."""

    type: Literal["translation"]
    directions: list[Direction] = Field(
        default=["to_pivot", "from_pivot", "between_pivots"],
        min_length=1,
        description="Which directions to generate.",
    )


_QUALIFIER = re.compile(r"\s*[（(][^（）()]*[）)]$")


class TranslationTask(Stage):
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
        lang_registry: LanguageRegistry | None = None,
    ):
        super().__init__()
        self.registry = lang_registry or registry()
        self.pivots = [self.registry.resolve(code).code for code in pivots]
        self.targets = (
            None if targets is None else {self.registry.resolve(code).code for code in targets}
        )
        self.directions = tuple(directions)
        unknown = set(self.directions) - set(DIRECTIONS)
        if unknown:
            raise ValueError(f"unknown directions {sorted(unknown)}; expected {DIRECTIONS}")
        shares = prompt_languages or {"zho_Hans": 0.5, "eng_Latn": 0.5}
        self.prompt_languages = [
            (self.registry.resolve(code).code, share) for code, share in shares.items()
        ]
        self.seed = seed
        self.templates = templates or bundled_templates(
            "translation",
            frozenset({"src_name", "tgt_name", "src_text"}),
            frozenset({"src_name", "tgt_name", "src_text"}),
        )
        for code, share in self.prompt_languages:
            if share > 0:
                self.templates.for_language(code)  # fails early with the languages available

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

    def language_name(self, code: str, prompt_lang: str, other: str) -> str:
        """A language's name in the prompt language; "(Simplified)"-style qualifiers are kept only
        when the other side is the same language in another script."""
        lang = self.registry.get(code)
        name = lang.name_zh if prompt_lang.startswith("zho_") else lang.name_en
        if self.registry.get(other).iso639_3 != lang.iso639_3:
            name = _QUALIFIER.sub("", name)
        return name

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        pairs = self.pairs(segment_languages(batch))
        columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        out: dict[str, list[object]] = {name: [] for name in WORK_INSTRUCTION_SCHEMA.names}
        for row in range(batch.num_rows):
            corpus, split = columns["corpus"][row], columns["split"][row]
            segment = columns["segment_id"][row]
            for src, tgt in pairs:
                src_text, tgt_text = columns[src][row], columns[tgt][row]
                if src_text is None or tgt_text is None:
                    continue
                record = (corpus, split, segment, src, tgt)
                prompt_lang = weighted_choice(
                    self.prompt_languages, unit_interval(self.seed, "prompt", *record)
                )
                choices = self.templates.for_language(prompt_lang)
                template = choices[stable_hash(self.seed, "template", *record) % len(choices)]
                prompt = template.render(
                    src_name=self.language_name(src, prompt_lang, tgt),
                    tgt_name=self.language_name(tgt, prompt_lang, src),
                    src_text=src_text,
                )
                out["id"].append(content_id(self.name, prompt, tgt_text))
                out["messages"].append(
                    [
                        {"role": "user", "content": prompt},
                        {"role": "assistant", "content": tgt_text},
                    ]
                )
                out["task"].append(self.name)
                out["direction"].append(f"{src}-{tgt}")
                out["src_lang"].append(src)
                out["tgt_lang"].append(tgt)
                out["prompt_lang"].append(prompt_lang)
                out["template_id"].append(template.id)
                out["source_corpus"].append(corpus)
                out["source_split"].append(split)
                out["source_segment_id"].append(segment)
                out["src_text"].append(src_text)
                out["tgt_text"].append(tgt_text)
        return pa.RecordBatch.from_pydict(out, schema=WORK_INSTRUCTION_SCHEMA)

    @classmethod
    def from_config(cls, config: TranslationTaskConfig, context: TaskContext) -> TranslationTask:
        return cls(
            context.pivots,
            context.targets,
            directions=config.directions,
            prompt_languages=config.prompt_languages,
            seed=context.seed,
        )
