"""How far to trust a language-ID model, measured on a labelled multi-way set (Flores).

A LID model is good on some languages and poor on others: lid.176 reads most Yoruba as Irish or
Catalan. Dropping a side because the model says "Irish" would punish Yoruba for the model's
weakness, so the filter only acts on predictions of languages the model is *reliable* on: when it
says X (actionably), the text is X (precision), and it finds X when the text is X (recall).

The table keeps the raw confusion counts, (expected, predicted) -> lines, and *actionable* lines:
predicted with probability >= ``min_prob`` and holding the letters the predicted language's script
needs (the filter ignores "Japanese" for Chinese text without kana, so such answers do not count
against Japanese). Every rate is derived from the counts, so a saved table round-trips exactly and
its thresholds can be edited by hand.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

from bayling_data.errors import BaylingError
from bayling_data.filters.lid.backends import (
    LidBackend,
    ScriptBackend,
    languages_match,
    script_letters,
)
from bayling_data.languages import registry

DEFAULT_TABLE = "lid176.flores200-dev.tsv"
_COLUMNS = ("expected", "predicted", "lines", "actionable")
_META = ("backend", "source", "min_prob", "min_precision", "min_recall")


def default_table_path() -> Path:
    """The table shipped for lid.176 (12 Flores-200 dev languages)."""
    return Path(str(resources.files("bayling_data.filters.lid") / "data" / DEFAULT_TABLE))


@dataclass
class CalibrationTable:
    """Confusion counts of one model on one labelled set, and the reliability rule on them.

    ``counts[(expected, predicted)] = (lines, actionable)``: lines of language ``expected`` whose
    top prediction was ``predicted`` (a registry-space code), and how many of those had
    probability >= ``min_prob`` and fit the predicted language's script. A *label* (predicted
    code) is reliable when its precision over actionable predictions is >= ``min_precision`` and
    the recall of the languages it stands for is >= ``min_recall``. A label none of whose languages
    is in the set is *unmeasured*.
    """

    backend: str
    source: str
    counts: dict[tuple[str, str], tuple[int, int]]
    min_prob: float = 0.5
    min_precision: float = 0.95
    min_recall: float = 0.90
    notes: list[str] = field(default_factory=list)

    # -- per expected language ---------------------------------------------------------------------

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

    def language_precision(self, lang: str) -> float | None:
        """Of lines actionably predicted as codes matching ``lang``, the share truly ``lang``.

        Low for languages the model cannot tell apart from a sibling: lid.176 answers ``zh`` for
        both zho_Hans and zho_Hant, so each gets 0.5.
        """
        taken = [
            (e, actionable)
            for (e, p), (_, actionable) in self.counts.items()
            if languages_match(p, lang)
        ]
        total = sum(c for _, c in taken)
        return sum(c for e, c in taken if e == lang) / total if total else None

    def language_reliable(self, lang: str) -> bool:
        """Whether the model finds ``lang`` and tells it apart from every other set language."""
        recall, precision = self.recall(lang), self.language_precision(lang)
        return (
            recall is not None
            and precision is not None
            and recall >= self.min_recall
            and precision >= self.min_precision
        )

    # -- per predicted label -----------------------------------------------------------------------

    def measured(self, label: str) -> bool:
        """Whether some language of the set is the one ``label`` names."""
        return any(languages_match(label, lang) for lang in self.languages)

    def predicted(self, label: str, actionable: bool = True) -> int:
        column = 1 if actionable else 0
        return sum(v[column] for (_, p), v in self.counts.items() if p == label)

    def precision(self, label: str, actionable: bool = True) -> float | None:
        """Of lines predicted as ``label`` (actionably, by default), the share truly it.

        None when the label was never predicted or names no language of the set: on a set without
        Irish, every "Irish" answer is wrong, which says nothing about the model on Irish.
        """
        if not self.measured(label):
            return None
        column = 1 if actionable else 0
        taken = [(e, v[column]) for (e, p), v in self.counts.items() if p == label]
        total = sum(c for _, c in taken)
        return sum(c for e, c in taken if languages_match(label, e)) / total if total else None

    def label_recall(self, label: str) -> float | None:
        """Recall pooled over the set languages ``label`` names (zho_Hans and zho_Hant for zh)."""
        langs = [lang for lang in self.languages if languages_match(label, lang)]
        n = sum(self.n(lang) for lang in langs)
        return sum(self.hits(lang) for lang in langs) / n if n else None

    def reliable(self, label: str) -> bool:
        """Whether an actionable prediction of ``label`` may drop a side."""
        return self._reliable.get(label) or False

    @cached_property
    def _reliable(self) -> dict[str, bool]:
        out = {}
        for label in self.labels:
            precision, recall = self.precision(label), self.label_recall(label)
            out[label] = (
                precision is not None
                and recall is not None
                and precision >= self.min_precision
                and recall >= self.min_recall
            )
        return out

    # -- files -------------------------------------------------------------------------------------

    def summary_rows(self) -> tuple[list[list[str]], list[list[str]]]:
        """Readable rows: per language (n, recall, precision, reliable), per label."""

        def fmt(value: float | None) -> str:
            return "" if value is None else f"{value:.4f}"

        languages = [
            [
                lang,
                str(self.n(lang)),
                fmt(self.recall(lang)),
                fmt(self.language_precision(lang)),
                "yes" if self.language_reliable(lang) else "no",
            ]
            for lang in self.languages
        ]
        labels = [
            [
                label,
                str(self.predicted(label, actionable=False)),
                str(self.predicted(label)),
                fmt(self.precision(label, actionable=False)),
                fmt(self.precision(label)),
                fmt(self.label_recall(label)),
                "yes" if self.reliable(label) else ("no" if self.measured(label) else "unmeasured"),
            ]
            for label in self.labels
        ]
        return languages, labels

    def summary_text(self) -> str:
        """The per-language and per-label summary as aligned text, for the terminal."""
        languages, labels = self.summary_rows()
        blocks = [
            (["language", "n", "recall", "precision", "reliable"], languages),
            (
                [
                    "label",
                    "predicted",
                    "actionable",
                    "precision_all",
                    "precision",
                    "recall",
                    "reliable",
                ],
                [row for row in labels if row[-1] != "unmeasured"],
            ),
        ]
        out = []
        for header, rows in blocks:
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
            for row in [header, *rows]:
                out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
            out.append("")
        unmeasured = [row[0] for row in labels if row[-1] == "unmeasured"]
        if unmeasured:
            out.append(f"unmeasured labels (no such language in the set): {' '.join(unmeasured)}")
        return "\n".join(out).rstrip() + "\n"

    def dumps(self) -> str:
        out = io.StringIO()
        out.write("# bayling-data language-ID calibration table (see docs: type: lid)\n")
        for key in _META:
            out.write(f"# {key}: {getattr(self, key)}\n")
        for note in self.notes:
            out.write(f"# note: {note}\n")
        languages, labels = self.summary_rows()
        out.write("#\n# Derived, for reading (recomputed from the counts below on load):\n")
        out.write("# language\tn\trecall\tprecision\treliable\n")
        for row in languages:
            out.write("#   " + "\t".join(row) + "\n")
        out.write("# label\tpredicted\tactionable\tprecision_all\tprecision\trecall\treliable\n")
        for row in labels:
            out.write("#   " + "\t".join(row) + "\n")
        out.write("#\n" + "\t".join(_COLUMNS) + "\n")
        for (expected, predicted), (lines, actionable) in sorted(self.counts.items()):
            out.write(f"{expected}\t{predicted}\t{lines}\t{actionable}\n")
        return out.getvalue()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dumps(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CalibrationTable:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise BaylingError(f"{path}: cannot read the calibration table ({reason})") from None
        meta: dict[str, str] = {}
        notes: list[str] = []
        body: list[str] = []
        for line in text.splitlines():
            if line.startswith("#"):
                key, sep, value = line[1:].strip().partition(": ")
                if sep and key in _META:
                    meta[key] = value
                elif sep and key == "note":
                    notes.append(value)
            elif line.strip():
                body.append(line)
        rows = list(csv.reader(body, delimiter="\t", quoting=csv.QUOTE_NONE))
        if not rows or tuple(rows[0]) != _COLUMNS:
            raise BaylingError(f"{path}: expected a header line {' '.join(_COLUMNS)}")
        counts: dict[tuple[str, str], tuple[int, int]] = {}
        for number, row in enumerate(rows[1:], start=2):
            try:
                expected, predicted, lines, actionable = row
                counts[(expected, predicted)] = (int(lines), int(actionable))
            except ValueError:
                raise BaylingError(f"{path}: bad row {number}: {row!r}") from None
        try:
            return cls(
                backend=meta.get("backend", ""),
                source=meta.get("source", ""),
                counts=counts,
                min_prob=float(meta.get("min_prob", 0.5)),
                min_precision=float(meta.get("min_precision", 0.95)),
                min_recall=float(meta.get("min_recall", 0.90)),
                notes=notes,
            )
        except ValueError as err:
            raise BaylingError(f"{path}: bad threshold in the header ({err})") from None


def count_predictions(
    backend: LidBackend,
    texts: dict[str, Sequence[str]],
    min_prob: float = 0.5,
) -> dict[tuple[str, str], tuple[int, int]]:
    """Confusion counts of ``backend`` on ``{expected language: lines}``: (lines, actionable)."""
    script = ScriptBackend()
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for lang, lines in texts.items():
        lines = list(lines)
        own = script_letters(registry().resolve(lang).script)
        letters = script.letter_counts(lines)
        every: Counter[str] = Counter()
        actionable: Counter[str] = Counter()
        for row, prediction in enumerate(backend.predict(lines, k=1)):
            code, prob = prediction[0] if prediction else ("?none", 0.0)
            every[code] += 1
            actionable[code] += prob >= min_prob and script.consistent(letters[row], code, own)
        for code, n in every.items():
            counts[(lang, code)] = (n, actionable[code])
    return counts


def calibrate(
    backend: LidBackend,
    flores_dir: str | Path,
    split: str = "dev",
    languages: Iterable[str] | None = None,
    *,
    min_prob: float = 0.5,
    min_precision: float = 0.95,
    min_recall: float = 0.90,
) -> CalibrationTable:
    """Run ``backend`` on every line of every language file of a Flores-style split.

    ``flores_dir`` holds ``<split>/<code>.<split>`` (Flores-200 or -101 layout) or is the split
    folder itself; ``languages`` restricts the files read (any code form). Precision is measured
    against the whole set, so the more languages it has, the more honest the table.
    """
    from bayling_data.sources.flores import FloresSource

    source = FloresSource(
        flores_dir, languages=None if languages is None else list(languages), splits=[split]
    )
    if not source.languages:
        raise BaylingError(f"{flores_dir}: no language files for split {split!r}")
    table = source.to_table()
    texts = {
        lang: [text for text in table.column(lang).to_pylist() if text is not None]
        for lang in source.languages
    }
    counts = count_predictions(backend, texts, min_prob)
    n_lines = source.line_counts[split]
    return CalibrationTable(
        backend=backend.identity,
        source=f"{source.corpus} {split}, {len(texts)} languages x {n_lines} lines: "
        + " ".join(texts),
        counts=counts,
        min_prob=min_prob,
        min_precision=min_precision,
        min_recall=min_recall,
    )


def calibrate_to_file(
    flores: str | Path,
    out: str | Path,
    *,
    backend: str = "fasttext",
    model: str | Path | None = None,
    split: str = "dev",
    languages: Iterable[str] | None = None,
    min_prob: float = 0.5,
    min_precision: float = 0.95,
    min_recall: float = 0.90,
) -> CalibrationTable:
    """``bayling-data lid calibrate``: load the model, calibrate on ``flores``, save to ``out``."""
    from bayling_data.filters.lid.backends import make_backend

    table = calibrate(
        make_backend(backend, model),
        flores,
        split,
        languages,
        min_prob=min_prob,
        min_precision=min_precision,
        min_recall=min_recall,
    )
    table.notes.append(f"made by `bayling-data lid calibrate` from {Path(flores).name}/{split}")
    table.save(out)
    return table
