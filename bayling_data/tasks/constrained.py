"""Constrained translation (BayLing 1 style): "Translate … and make sure to include these words: …".

The required words are drawn from the reference translation, so the answer (the reference itself)
satisfies every constraint by construction. Scripts written without spaces (Chinese, Japanese,
Thai, …) give 2-4 character substrings without punctuation; other scripts give whole words of at
least three letters, stripped of punctuation. A pair where no constraint can be drawn is skipped
and counted (reason ``no_constraint``).
"""

from __future__ import annotations

import unicodedata
from typing import Literal

from bayling_data.filters.units import UNSPACED_SCRIPTS
from bayling_data.hashing import stable_hash
from bayling_data.tasks.base import TaskContext
from bayling_data.tasks.templates import declare_templates, load_templates
from bayling_data.tasks.translation import TranslationTask, TranslationTaskConfig

TEMPLATE_SPEC = declare_templates(
    "constrained_translation", {"src_name", "tgt_name", "src_text", "constraints"}
)
MIN_CONSTRAINTS, MAX_CONSTRAINTS = 1, 3
MIN_WORD_LETTERS = 3
SUBSTRING_LENGTHS = (2, 3, 4)
VIRAMA_CLASS = 9  # canonical combining class of a virama / coeng (joins the next consonant)
# How constraints are listed, by prompt language; anything else gets ", ".
JOINERS = {"zho_Hans": "、", "zho_Hant": "、", "jpn_Jpan": "、"}


class ConstrainedTranslationTaskConfig(TranslationTaskConfig):
    """Translation instructions that name words the translation must contain (the same keys as
    translation)."""

    type: Literal["constrained_translation"]  # type: ignore[assignment]


def _is_letter(char: str) -> bool:
    return unicodedata.category(char)[0] == "L"


def _is_mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M"


def _word_candidates(text: str) -> list[tuple[int, str]]:
    """(position, word) of whole words made of letters (and combining marks), 3+ letters."""
    found: list[tuple[int, str]] = []
    seen: set[str] = set()
    position = 0
    for token in text.split():
        start = text.index(token, position)
        position = start + len(token)
        left, right = 0, len(token)
        while left < right and not (_is_letter(token[left]) or _is_mark(token[left])):
            left += 1
        while right > left and not (_is_letter(token[right - 1]) or _is_mark(token[right - 1])):
            right -= 1
        word = token[left:right]
        if not word or not all(_is_letter(c) or _is_mark(c) for c in word):
            continue  # inner punctuation or digits: not a plain word
        if sum(map(_is_letter, word)) < MIN_WORD_LETTERS or word in seen:
            continue
        seen.add(word)
        found.append((start + left, word))
    return found


def _in_script(char: str) -> bool:
    """A letter or mark of the unspaced script itself, not a Latin letter mixed into the text."""
    if not (_is_letter(char) or _is_mark(char)):
        return False
    code = ord(char)
    return code >= 0x250 and not 0xFF21 <= code <= 0xFF5A  # Latin and full-width Latin


def _substring_candidates(text: str) -> list[tuple[int, str]]:
    """(position, substring) of 2-4 characters inside runs of the script's letters, not splitting
    a cluster: it neither starts with nor is followed by a combining mark, nor ends on a virama."""
    found: list[tuple[int, str]] = []
    for start in range(len(text)):
        if not _is_letter(text[start]) or not _in_script(text[start]):
            continue
        for length in SUBSTRING_LENGTHS:
            end = start + length
            piece = text[start:end]
            if len(piece) < length or not all(map(_in_script, piece)):
                break
            if end < len(text) and _is_mark(text[end]):
                continue
            if unicodedata.combining(piece[-1]) == VIRAMA_CLASS:
                continue
            found.append((start, piece))
    return found


def draw_constraints(text: str, script: str, *key: object) -> list[str]:
    """1-3 non-overlapping pieces of ``text`` chosen from a hash of ``key``, in text order; empty
    when the text has no usable piece."""
    unspaced = script in UNSPACED_SCRIPTS
    candidates = _substring_candidates(text) if unspaced else _word_candidates(text)
    if not candidates:
        return []
    wanted = MIN_CONSTRAINTS + stable_hash(*key, "count") % (MAX_CONSTRAINTS - MIN_CONSTRAINTS + 1)
    ranked = sorted(candidates, key=lambda c: stable_hash(*key, c[0], c[1]))
    chosen: list[tuple[int, str]] = []
    for start, piece in ranked:
        end = start + len(piece)
        if any(start < s + len(p) and s < end for s, p in chosen):
            continue
        if any(piece == p for _, p in chosen):
            continue
        chosen.append((start, piece))
        if len(chosen) == wanted:
            break
    return [piece for _, piece in sorted(chosen)]


class ConstrainedTranslationTask(TranslationTask):
    """Segment batch in, constrained translation instruction batch out (pairs as translation)."""

    name = "constrained_translation"

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
        direction = f"{src}-{tgt}"
        script = self.registry.get(tgt).script
        constraints = draw_constraints(tgt_text, script, self.seed, "constraints", *record)
        if not constraints:
            self.stats.count(direction, 1, 1, {"no_constraint": 1})
            return None
        self.stats.count(direction, 1, 0)
        template = self.pick(self.templates.for_language(prompt_lang), "template", record_text)
        prompt = template.render(
            **self.names(src, tgt, prompt_lang),
            src_text=src_text,
            constraints=JOINERS.get(prompt_lang, ", ").join(constraints),
        )
        return prompt, template.id

    def details(self) -> dict[str, int] | None:
        skipped = sum(e["reasons"].get("no_constraint", 0) for e in self.stats.by_key.values())
        return {"skipped_no_constraint": skipped} if skipped else None

    @classmethod
    def from_config(  # type: ignore[override]
        cls, config: ConstrainedTranslationTaskConfig, context: TaskContext
    ) -> ConstrainedTranslationTask:
        return cls(
            context.pivots,
            context.targets,
            directions=config.directions,
            prompt_languages=config.prompt_languages,
            seed=context.seed,
            templates=load_templates(cls.name, config.templates) if config.templates else None,
            system_prompt=config.system_prompt,
        )
