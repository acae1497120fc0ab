"""How far to trust a language-ID model, per column language, measured on a labelled multi-way
set (Flores-200 dev: 204 languages, the same sentences in each).

A LID model is good on some languages and poor on others, and what a wrong answer means depends on
the column: "Hindi" for a Bhojpuri side is what lid.176 says of 99% of real Bhojpuri, while
"Hindi" for an English side is certain evidence. So the table holds, for every language of the
set, a :class:`~bayling_data.filters.lid.rules.ColumnRule` fitted on that language's own lines
(at most ``max_loss`` of them lost), and measures, for every pair of languages that share letters,
how much of language A's text the rule of column B catches. Pairs caught less than
``catch_target`` are listed as *indistinct*: the model cannot tell A from B there, and the filter
keeps such sides (Hindi in a Bhojpuri column, Moroccan Arabic in an MSA column).

The table keeps the raw confusion counts, (expected, predicted) -> (lines, actionable lines:
predicted with probability >= the lowest threshold, holding the letters the predicted language's
script needs), the fitted rules and the indistinct pairs. Rules can be edited by hand; a saved
table round-trips exactly. Regenerate with ``bayling-data lid calibrate`` (never on an evaluation
split: devtest is what a build is evaluated on).
"""

from __future__ import annotations

import io
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from bayling_data.errors import BaylingError
from bayling_data.filters.lid.backends import (
    LidBackend,
    ScriptBackend,
    languages_match,
    script_letters,
)
from bayling_data.filters.lid.rules import (
    DEFAULT_MAX_LOSS,
    PROB_GRID,
    ColumnRule,
    fit_rule,
    format_threshold,
    parse_threshold,
)
from bayling_data.gc_pause import paused_gc
from bayling_data.languages import registry

DEFAULT_TABLE = "lid176.flores200-dev.tsv"
FORMAT = "2"
DEFAULT_CATCH_TARGET = 0.95
_SECTIONS = {
    "counts": ("expected", "predicted", "lines", "actionable"),
    "rules": ("language", "expected_below", "floor", "thresholds", "loss"),
    "indistinct": ("column", "language", "caught"),
}
_META = ("format", "backend", "source", "max_loss", "catch_target")


def default_table_path() -> Path:
    """The table shipped for lid.176 (all 204 Flores-200 dev languages)."""
    return Path(str(resources.files("bayling_data.filters.lid") / "data" / DEFAULT_TABLE))


@dataclass
class CalibrationTable:
    """One model measured on one labelled set: confusion counts, a rule per column language, and
    the pairs of languages a column's rule cannot tell apart.

    ``counts[(expected, predicted)] = (lines, actionable)``; ``rules[language]``;
    ``indistinct[(column, language)]`` = the share of ``language``'s lines the rule of
    ``column`` catches, for pairs under ``catch_target``.
    """

    backend: str
    source: str
    counts: dict[tuple[str, str], tuple[int, int]]
    rules: dict[str, ColumnRule] = field(default_factory=dict)
    indistinct: dict[tuple[str, str], float] = field(default_factory=dict)
    max_loss: float = DEFAULT_MAX_LOSS
    catch_target: float = DEFAULT_CATCH_TARGET
    notes: list[str] = field(default_factory=list)

    # -- per language ------------------------------------------------------------------------------

    @cached_property
    def languages(self) -> list[str]:
        """The languages of the labelled set."""
        return sorted({expected for expected, _ in self.counts})

    @cached_property
    def labels(self) -> list[str]:
        """Every code the model answered with on the set."""
        return sorted({predicted for _, predicted in self.counts})

    def n(self, lang: str) -> int:
        return sum(lines for (e, _), (lines, _) in self.counts.items() if e == lang)

    def hits(self, lang: str) -> int:
        return sum(
            lines
            for (e, p), (lines, _) in self.counts.items()
            if e == lang and languages_match(p, lang)
        )

    def recall(self, lang: str) -> float | None:
        """Top-1 match rate on the lines of ``lang`` (None when the set has none)."""
        n = self.n(lang)
        return self.hits(lang) / n if n else None

    def rule(self, lang: str) -> ColumnRule | None:
        """The fitted rule of a column language (None: not in the set)."""
        return self.rules.get(lang)

    # -- pairs -------------------------------------------------------------------------------------

    def measured(self, language: str, column: str) -> bool:
        """Whether the table measured ``language`` text in ``column``: both are in the set."""
        return language in self.rules and column in self.rules

    def caught(self, language: str, column: str) -> float | None:
        """The share of ``language``'s lines the rule of ``column`` catches, where it is below
        the target (None: at or above it, or not measured)."""
        return self.indistinct.get((column, language))

    def can_tell(self, language: str, column: str) -> bool:
        """Whether the filter catches ``language`` text in ``column`` at the target rate
        (script differences included; pairs of different scripts are caught by the script
        check)."""
        return self.measured(language, column) and (column, language) not in self.indistinct

    def indistinct_from(self, column: str) -> dict[str, float]:
        """Languages whose text passes as ``column`` too often, with the share caught."""
        return {lang: rate for (c, lang), rate in sorted(self.indistinct.items()) if c == column}

    # -- files -------------------------------------------------------------------------------------

    def summary_rows(self) -> list[list[str]]:
        """Per language: n, recall, expected_below, labels with a raised threshold and those that
        never drop, loss, indistinct languages."""
        rows = []
        for lang in self.languages:
            rule = self.rules.get(lang)
            recall = self.recall(lang)
            thresholds = rule.label_thresholds if rule else {}
            never = sorted(k for k, v in thresholds.items() if format_threshold(v) == "never")
            rows.append(
                [
                    lang,
                    str(self.n(lang)),
                    "" if recall is None else f"{recall:.4f}",
                    "" if rule is None else f"{rule.expected_below:g}",
                    str(len(thresholds)),
                    " ".join(never) or "-",
                    "" if rule is None or rule.loss is None else f"{rule.loss:.4f}",
                    str(len(self.indistinct_from(lang))),
                ]
            )
        return rows

    def summary_text(self) -> str:
        """The per-language summary as aligned text, for the terminal."""
        header = [
            "language",
            "n",
            "recall",
            "expected_below",
            "raised",
            "never",
            "loss",
            "indistinct",
        ]
        rows = self.summary_rows()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        out = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]
        ]
        return "\n".join(out) + "\n"

    def dumps(self) -> str:
        out = io.StringIO()
        out.write("# bayling-data language-ID calibration table (see docs/recipes.md, type: lid)\n")
        meta = {
            "format": FORMAT,
            "backend": self.backend,
            "source": self.source,
            "max_loss": f"{self.max_loss:g}",
            "catch_target": f"{self.catch_target:g}",
        }
        for key in _META:
            out.write(f"# {key}: {meta[key]}\n")
        for note in self.notes:
            out.write(f"# note: {note}\n")
        out.write("#\n# Per language (derived, for reading):\n")
        for line in self.summary_text().splitlines():
            out.write(f"#   {line}\n")

        def section(name: str, rows: Iterable[Iterable[str]]) -> None:
            out.write(f"[{name}]\n" + "\t".join(_SECTIONS[name]) + "\n")
            for row in rows:
                out.write("\t".join(row) + "\n")

        section(
            "counts",
            ([e, p, str(lines), str(act)] for (e, p), (lines, act) in sorted(self.counts.items())),
        )
        section(
            "rules",
            (
                [
                    lang,
                    f"{rule.expected_below:g}",
                    f"{rule.floor:g}",
                    " ".join(
                        f"{label}={format_threshold(value)}"
                        for label, value in sorted(rule.label_thresholds.items())
                    )
                    or "-",
                    "" if rule.loss is None else f"{rule.loss:.4f}",
                ]
                for lang, rule in sorted(self.rules.items())
            ),
        )
        section(
            "indistinct",
            ([c, lang, f"{rate:.4f}"] for (c, lang), rate in sorted(self.indistinct.items())),
        )
        return out.getvalue()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dumps(), encoding="utf-8")
        return path

    @classmethod
    @paused_gc()  # a tuple and a list per row of 13k, all kept until the table is made
    def load(cls, path: str | Path) -> CalibrationTable:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise BaylingError(f"{path}: cannot read the calibration table ({reason})") from None
        meta: dict[str, str] = {}
        notes: list[str] = []
        sections: dict[str, list[tuple[int, list[str]]]] = {}
        current: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if line.startswith("#"):
                key, sep, value = line[1:].strip().partition(": ")
                if sep and key in _META:
                    meta[key] = value
                elif sep and key == "note":
                    notes.append(value)
                continue
            if not line.strip():
                continue
            if line.startswith("[") and line.rstrip().endswith("]"):
                current = line.strip()[1:-1]
                if current not in _SECTIONS:
                    raise BaylingError(
                        f"{path}:{number}: unknown section [{current}]; expected one of "
                        + ", ".join(f"[{name}]" for name in _SECTIONS)
                    )
                sections[current] = []
                continue
            if current is None:
                raise BaylingError(
                    f"{path}:{number}: not a format-{FORMAT} calibration table (made by an older "
                    "bayling-data?); regenerate it: bayling-data lid calibrate --flores DIR --out "
                    f"{path.name}"
                )
            sections[current].append((number, line.split("\t")))
        for name, columns in _SECTIONS.items():
            rows = sections.get(name)
            if rows is None:
                raise BaylingError(f"{path}: no [{name}] section")
            if not rows or tuple(rows[0][1]) != columns:
                raise BaylingError(f"{path}: [{name}] must start with a header {' '.join(columns)}")
        counts: dict[tuple[str, str], tuple[int, int]] = {}
        rules: dict[str, ColumnRule] = {}
        indistinct: dict[tuple[str, str], float] = {}
        number = 0
        try:
            for number, row in sections["counts"][1:]:  # noqa: B007 (the except names it)
                expected, predicted, lines, actionable = row
                counts[(expected, predicted)] = (int(lines), int(actionable))
            for number, row in sections["rules"][1:]:  # noqa: B007 (the except names it)
                lang, expected_below, floor, thresholds, loss = row
                pairs = (
                    [] if thresholds == "-" else [item.split("=") for item in thresholds.split()]
                )
                rules[lang] = ColumnRule(
                    lang,
                    floor=parse_threshold(floor),
                    label_thresholds={label: parse_threshold(value) for label, value in pairs},
                    expected_below=parse_threshold(expected_below),
                    loss=float(loss) if loss else None,
                )
            for number, row in sections["indistinct"][1:]:  # noqa: B007 (the except names it)
                column, lang, caught = row
                indistinct[(column, lang)] = float(caught)
            return cls(
                backend=meta.get("backend", ""),
                source=meta.get("source", ""),
                counts=counts,
                rules=rules,
                indistinct=indistinct,
                max_loss=float(meta.get("max_loss", DEFAULT_MAX_LOSS)),
                catch_target=float(meta.get("catch_target", DEFAULT_CATCH_TARGET)),
                notes=notes,
            )
        except ValueError as err:
            raise BaylingError(f"{path}:{number}: bad row ({err})") from None


def calibrate(
    backend: LidBackend,
    flores_dir: str | Path,
    split: str = "dev",
    languages: Iterable[str] | None = None,
    *,
    max_loss: float = DEFAULT_MAX_LOSS,
    catch_target: float = DEFAULT_CATCH_TARGET,
) -> CalibrationTable:
    """Fit a rule per language of a Flores-style split and measure which pairs it tells apart.

    ``flores_dir`` holds ``<split>/<code>.<split>`` (Flores-200 or -101 layout) or is the split
    folder itself; ``languages`` restricts the files read (any code form). A rule is only as
    honest as the set is wide: a neighbour missing from the set is a neighbour the rule never
    saw, so fit on all 204 languages.
    """
    from bayling_data.filters.lid.filter import LanguageIdFilter
    from bayling_data.sources.flores import FloresSource

    if split == "devtest":
        # A table fitted on the evaluation split would tune the filter to the test set.
        raise BaylingError(
            f"{flores_dir}: devtest is the evaluation split; calibrate on dev (--split dev)"
        )
    source = FloresSource(
        flores_dir, languages=None if languages is None else list(languages), splits=[split]
    )
    if not source.languages:
        raise BaylingError(f"{flores_dir}: no language files for split {split!r}")
    table = source.to_table()
    # NFC, as the normalize step gives the lid filter its text in every shipped recipe (NFC
    # changes what lid.176 says of Kashmiri in Devanagari).
    texts = {
        lang: [
            unicodedata.normalize("NFC", text)
            for text in table.column(lang).to_pylist()
            if text is not None
        ]
        for lang in source.languages
    }
    # Every column judged by the model (trust_uncalibrated, no table) while fitting; every text
    # predicted once (the memo holds them all).
    judge = LanguageIdFilter(backend, calibration=None, trust_uncalibrated=True)
    judge.memo_size = sum(len(lines) for lines in texts.values()) + 1
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    rules: dict[str, ColumnRule] = {}
    for lang, lines in texts.items():
        seen = judge.observe(lines, lang)
        # Counts over every line (short and wrong-script ones too): the model's own record.
        counts_, upper = ScriptBackend().letter_and_upper_counts(lines)
        answers = judge._predict(lines, upper, counts_)
        every: Counter[str] = Counter(
            "?none" if code is None else code for code in answers.top_codes().tolist()
        )
        acted: Counter[str] = Counter(
            label
            for label, prob, fits in zip(seen.labels, seen.probs, seen.consistent, strict=True)
            if label is not None and fits and prob >= PROB_GRID[0]
        )
        for code, n in every.items():
            counts[(lang, code)] = (n, acted[code])
        judged = np.flatnonzero((seen.routes == "lid") & ~seen.wrong_script)
        rules[lang] = fit_rule(
            lang,
            [seen.labels[i] for i in judged],
            seen.probs[judged],
            seen.consistent[judged],
            seen.expected_prob[judged],
            len(lines),
            knows=backend.knows(lang),
            max_loss=max_loss,
        )
    indistinct = measure_pairs(judge, texts, rules, catch_target)
    n_lines = source.line_counts[split]
    return CalibrationTable(
        backend=backend.identity,
        source=f"{source.corpus} {split}, {len(texts)} languages x {n_lines} lines",
        counts=counts,
        rules=rules,
        indistinct=indistinct,
        max_loss=max_loss,
        catch_target=catch_target,
    )


def measure_pairs(
    judge: object,
    texts: dict[str, list[str]],
    rules: dict[str, ColumnRule],
    catch_target: float,
) -> dict[tuple[str, str], float]:
    """For every column B and language A whose scripts share letters: the share of A's lines
    that B's rule catches (script check included), kept where it is under ``catch_target``.
    Pairs of disjoint scripts are the script check's: it catches them whole."""
    from bayling_data.filters.lid.filter import LanguageIdFilter

    assert isinstance(judge, LanguageIdFilter)
    reg = registry()
    scripts = {lang: script_letters(reg.get(lang).script) for lang in texts}
    script = ScriptBackend()
    letters = {lang: script.letter_and_upper_counts(lines) for lang, lines in texts.items()}
    # Every line's answers, once (the judge's memo holds them from fitting).
    answers = {}
    for lang, lines in texts.items():
        counts, upper = letters[lang]
        answers[lang] = judge._predict(lines, upper, counts)
    out: dict[tuple[str, str], float] = {}
    for column, rule in rules.items():
        for lang, lines in texts.items():
            if lang == column or not scripts[lang] & scripts[column] or not lines:
                continue
            seen = judge.observe(lines, column, letters=letters[lang], answers=answers[lang])
            verdict = rule.judge(seen.labels, seen.probs, seen.consistent, seen.expected_prob)
            caught = np.count_nonzero(seen.wrong_script | (verdict != 0)) / len(lines)
            if caught < catch_target:
                out[(column, lang)] = round(float(caught), 4)
    return out


def calibrate_to_file(
    flores: str | Path,
    out: str | Path,
    *,
    backend: str = "fasttext",
    model: str | Path | None = None,
    split: str = "dev",
    languages: Iterable[str] | None = None,
    max_loss: float = DEFAULT_MAX_LOSS,
    catch_target: float = DEFAULT_CATCH_TARGET,
) -> CalibrationTable:
    """``bayling-data lid calibrate``: load the model, calibrate on ``flores``, save to ``out``."""
    from bayling_data.filters.lid.backends import make_backend

    table = calibrate(
        make_backend(backend, model),
        flores,
        split,
        languages,
        max_loss=max_loss,
        catch_target=catch_target,
    )
    table.notes.append(
        f"made by `bayling-data lid calibrate --flores {Path(flores).name} --split {split} "
        f"--max-loss {max_loss:g}`"
    )
    table.save(out)
    return table
