"""When a language-ID model's answer may drop a side: one rule per column language.

A side of language E (the column it sits in) is judged by the model's top answer L, with
probability p, and by the probability the model gives E itself (p_E, summed over the labels that
name E). It is dropped when either holds:

* *contrary answer*: L names another language, the side holds the letters L's script needs, and
  p >= the rule's threshold for L. Labels that E's own text gets often have a threshold of
  ``never``: lid.176 reads 99% of Bhojpuri as Hindi, so "Hindi" never drops a Bhojpuri side, and
  Hindi text in a Bhojpuri column cannot be caught (the calibration table says so).
* *unlikely language*: the model has a label for E, and p_E < the rule's ``expected_below``
  (English text to which lid.176 gives under 50% English is not English). 0 turns it off, as for
  languages the model reads poorly.

Why per column and not per label: whether a prediction of "Swahili" is good evidence depends on
the column. In an English column it is (English text is never read as Swahili); in a Comorian
column it is not. The old rule trusted a label everywhere or nowhere, by its precision over the
whole calibration set, so one weak neighbour (bho, mai read as Hindi) made Hindi untrusted
everywhere, or, measured on too few languages, trusted where it wiped Bhojpuri out.

:func:`fit_rule` chooses a column's thresholds on labelled text of that language so that at most
``max_loss`` of it is lost: the label taking most lost lines has its threshold raised a step at a
time, up to ``never``. The same :meth:`ColumnRule.judge` decides in the filter and in calibration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bayling_data.filters.lid.backends import languages_match

NEVER = math.inf
#: Thresholds a contrary answer's probability is held to, lowest first; past the last, never.
PROB_GRID = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
#: Candidate values of ``expected_below``; the largest that loses at most half the budget wins.
EXPECTED_GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
#: Share of a column's own lines a fitted rule may drop on the calibration set.
DEFAULT_MAX_LOSS = 0.01

KEEP, CONTRARY, UNLIKELY = 0, 1, 2


def format_threshold(value: float) -> str:
    return "never" if value == NEVER else f"{value:g}"


def parse_threshold(text: str) -> float:
    """``never`` or a probability in [0, 1]; ValueError otherwise."""
    if text == "never":
        return NEVER
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{text}: a threshold is a probability in [0, 1] or never")
    return value


@dataclass(frozen=True)
class ColumnRule:
    """How the model's answers decide the sides of one language (column)."""

    language: str
    #: Least probability of a contrary answer whose label has no threshold of its own.
    floor: float = PROB_GRID[0]
    #: Per contrary label (registry-space code): least probability, or ``NEVER``.
    label_thresholds: Mapping[str, float] = field(default_factory=dict)
    #: Drop when p(language) < this; 0: off.
    expected_below: float = 0.0
    #: Share of the calibration set's lines of this language the rule drops (for reading).
    loss: float | None = None

    def threshold(self, label: str) -> float:
        """The least probability with which ``label`` as top answer drops a side."""
        if not label or languages_match(label, self.language):
            return NEVER
        return self.label_thresholds.get(label, self.floor)

    def at_least(self, probability: float) -> ColumnRule:
        """The rule a user's per-language threshold makes: a contrary answer needs at least
        ``probability``, and the unlikely-language rule is off."""
        return replace(
            self,
            expected_below=0.0,
            floor=max(self.floor, probability),
            label_thresholds={k: max(v, probability) for k, v in self.label_thresholds.items()},
        )

    def judge(
        self,
        labels: Sequence[str | None],
        probs: np.ndarray,
        consistent: np.ndarray,
        expected_prob: np.ndarray,
    ) -> np.ndarray:
        """Per side: :data:`KEEP`, :data:`CONTRARY` or :data:`UNLIKELY` (int8).

        ``labels``/``probs``: the top answer (None/NaN where the model did not run);
        ``consistent``: the side holds the letters the top label's script needs;
        ``expected_prob``: p(language) (NaN where the model did not run).
        """
        n = len(labels)
        out = np.zeros(n, np.int8)
        if n == 0:
            return out
        encoded = pc.dictionary_encode(pc.fill_null(pa.array(labels, pa.string()), ""))
        index = encoded.indices.to_numpy()
        names = encoded.dictionary.to_pylist()
        threshold = np.array([self.threshold(name) for name in names], dtype=float)[index]
        with np.errstate(invalid="ignore"):
            contrary = consistent & (probs >= threshold)
            unlikely = ~contrary & (expected_prob < self.expected_below)
        out[contrary] = CONTRARY
        out[unlikely] = UNLIKELY
        return out


def fit_rule(
    language: str,
    labels: Sequence[str | None],
    probs: np.ndarray,
    consistent: np.ndarray,
    expected_prob: np.ndarray,
    lines: int,
    *,
    knows: bool,
    max_loss: float = DEFAULT_MAX_LOSS,
) -> ColumnRule:
    """The rule for ``language`` that drops at most ``max_loss`` of its ``lines`` labelled lines.

    The arrays describe the lines the model judges (short and wrong-script lines left out, but
    counted in ``lines``). ``expected_below`` takes the largest value of :data:`EXPECTED_GRID`
    that loses at most half the budget (only when the model ``knows`` the language); then contrary
    labels start at the lowest threshold, and the label that drops most lines is raised one step
    of :data:`PROB_GRID` (then to never) until the rule fits the budget.
    """
    budget = math.floor(max_loss * lines + 1e-9)
    probs = np.asarray(probs, float)
    expected_prob = np.asarray(expected_prob, float)
    consistent = np.asarray(consistent, bool)
    labels = list(labels)
    expected_below = 0.0
    if knows:
        off = ColumnRule(language, floor=NEVER)
        for tau in EXPECTED_GRID:
            trial = replace(off, expected_below=tau)
            lost = np.count_nonzero(trial.judge(labels, probs, consistent, expected_prob))
            if lost > budget // 2:
                break
            expected_below = tau
    rule = ColumnRule(language, expected_below=expected_below)
    thresholds: dict[str, float] = {}
    label_array = np.array([label or "" for label in labels], dtype=object)
    while True:
        verdict = rule.judge(labels, probs, consistent, expected_prob)
        if np.count_nonzero(verdict) <= budget:
            break
        contrary = label_array[verdict == CONTRARY]
        if len(contrary) == 0:
            # Only unlikely-language drops are left over: lower expected_below a step.
            lower = [tau for tau in EXPECTED_GRID if tau < rule.expected_below]
            rule = replace(rule, expected_below=lower[-1] if lower else 0.0)
            continue
        names, counts = np.unique(contrary, return_counts=True)
        worst = str(names[np.argmax(counts)])
        current = rule.threshold(worst)
        higher = [value for value in PROB_GRID if value > current]
        thresholds[worst] = higher[0] if higher else NEVER
        rule = replace(rule, label_thresholds=dict(thresholds))
    lost = np.count_nonzero(rule.judge(labels, probs, consistent, expected_prob))
    return replace(rule, loss=round(lost / lines, 4) if lines else 0.0)
