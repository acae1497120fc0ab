"""Benchmark decontamination: drop training segments that hold a held-out evaluation sentence.

The eval sets are read once, in :meth:`Decontaminate.setup`, into three indexes: the hashes of
their normalized sentences (exact match), of every n-gram of those sentences (overlap), and their
``(corpus, split, segment_id)`` (the same multi-way corpus used for training). A training segment
matching any of them on **any** language side is dropped whole, every side nulled: Flores is
multi-way, so the Swahili side of a segment whose English side is a held-out sentence is the
held-out sentence too, translated.

Matching rules (defaults, all configurable):

* exact: the side's normalized text (:func:`normalize_for_matching`) equals an eval sentence's;
  eval sentences under 3 tokens ("OK.", "你好") are left out, they are not evidence of leakage.
* n-gram: the side shares one n-gram with an eval sentence: 8 words in spaced scripts, 16
  characters in Han/Kana, 40 in Thai, Lao, Khmer, Burmese and Tibetan (several code points a
  syllable). Catches an eval sentence embedded in a longer segment or edited at its ends.
* id: the training row has the corpus name, split and segment id of an eval row.

Memory is the eval sets' size: 12 bytes per eval sentence and per eval n-gram (sorted ``uint64``
keys with an ``int32`` eval-set number), plus one Python tuple per eval segment id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field, model_validator

from bayling_data.config import StrictModel
from bayling_data.filters.base import SegmentFilter
from bayling_data.filters.matching import is_unspaced, normalize_for_matching
from bayling_data.filters.near_dedup import ngram_hashes
from bayling_data.languages import registry
from bayling_data.schema import segment_languages
from bayling_data.sources import SOURCE_CONFIG_UNION, Source, build_source

MatchMethod = Literal["exact", "ngram", "id"]

DEFAULT_WORD_NGRAM = 8
# Characters per n-gram in scripts without spaces; about as specific as 8 English words.
CHAR_NGRAM_BY_SCRIPT = {
    "Hans": 16,
    "Hant": 16,
    "Jpan": 16,
    "Thai": 40,
    "Laoo": 40,
    "Khmr": 40,
    "Mymr": 40,
    "Tibt": 40,
}
DEFAULT_CHAR_NGRAM = 16
DEFAULT_EXACT_MIN_TOKENS = 3
ALL_METHODS: tuple[MatchMethod, ...] = ("exact", "ngram", "id")
_NONE = np.iinfo(np.int32).max
_NO_TEXT = pa.scalar(None, pa.string())


class EvalSetConfig(StrictModel):
    """One eval set: a source entry (any loader type) and an optional name for the report.

    Written flat in a recipe (``{type: flores, path: ..., splits: [devtest], name: flores}``);
    the nested form ``{name: ..., source: {...}}`` is accepted too.
    """

    name: str | None = Field(
        default=None, description="Name in reasons and reports; default: corpus:split."
    )
    source: Annotated[SOURCE_CONFIG_UNION, Field(discriminator="type")]  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" in data:
            fields = dict(data)
            name = fields.pop("name", None)
            return {"name": name, "source": fields}
        return data


class DecontaminateConfig(StrictModel):
    """Drop training segments that match a held-out evaluation sentence."""

    type: Literal["decontaminate"]
    eval_sets: list[EvalSetConfig] = Field(
        min_length=1, description="Evaluation sets, each a source entry plus an optional name."
    )
    methods: list[MatchMethod] = Field(
        default=list(ALL_METHODS), min_length=1, description="Matching rules: exact, ngram, id."
    )
    word_ngram: int = Field(
        default=DEFAULT_WORD_NGRAM, ge=2, le=64, description="n-gram size in words."
    )
    char_ngram: int | None = Field(
        default=None,
        ge=4,
        le=256,
        description="n-gram size in characters for unspaced scripts; default: by script "
        "(16 Han/Kana, 40 Thai/Lao/Khmer/Burmese/Tibetan).",
    )
    exact_min_tokens: int = Field(
        default=DEFAULT_EXACT_MIN_TOKENS,
        ge=1,
        description="Shortest eval sentence (words, or characters in unspaced scripts) matched "
        "exactly.",
    )


EvalSetInput = Source | tuple[str | None, Source]


class _SortedIndex:
    """Sorted unique uint64 keys, each with the smallest eval-set number that holds it."""

    def __init__(self, keys: list[np.ndarray], sets: list[np.ndarray]):
        all_keys = np.concatenate([np.zeros(0, np.uint64), *keys])
        all_sets = np.concatenate([np.zeros(0, np.int32), *sets])
        order = np.lexsort((all_sets, all_keys))
        all_keys, all_sets = all_keys[order], all_sets[order]
        first = np.ones(len(all_keys), bool)
        first[1:] = all_keys[1:] != all_keys[:-1]
        self.keys, self.sets = all_keys[first], all_sets[first]

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """The eval-set number of each query key, or ``_NONE``."""
        if not len(self.keys) or not len(queries):
            return np.full(len(queries), _NONE, np.int32)
        at = np.minimum(np.searchsorted(self.keys, queries), len(self.keys) - 1)
        return np.where(self.keys[at] == queries, self.sets[at], _NONE).astype(np.int32)


def _text_hashes(texts: Iterable[str]) -> np.ndarray:
    return np.fromiter(
        (xxhash.xxh3_64_intdigest(text.encode("utf-8")) for text in texts), np.uint64
    )


class Decontaminate(SegmentFilter):
    """Drop whole training segments matching an eval sentence on any language side.

    Counted for each language present in a dropped row, with reason ``contaminated: NAME``;
    :attr:`removed_by_eval_set` counts dropped rows (segments) per eval set, for the manifest.
    """

    name = "decontaminate"

    def __init__(
        self,
        eval_sets: Sequence[EvalSetInput],
        *,
        methods: Sequence[MatchMethod] = ALL_METHODS,
        word_ngram: int = DEFAULT_WORD_NGRAM,
        char_ngram: int | None = None,
        exact_min_tokens: int = DEFAULT_EXACT_MIN_TOKENS,
    ):
        super().__init__()
        if not eval_sets:
            raise ValueError("decontamination needs at least one eval set")
        unknown = set(methods) - set(ALL_METHODS)
        if unknown or not methods:
            raise ValueError(f"methods must be some of {', '.join(ALL_METHODS)}")
        self.eval_sets = [item if isinstance(item, tuple) else (None, item) for item in eval_sets]
        self.methods = frozenset(methods)
        self.word_ngram, self.char_ngram = word_ngram, char_ngram
        self.exact_min_tokens = exact_min_tokens
        self.eval_names: list[str] = []
        self.removed_by_eval_set: dict[str, int] = {}
        self.eval_sentences = 0
        self._exact = _SortedIndex([], [])
        self._ngrams = _SortedIndex([], [])
        self._ids: dict[tuple[str, str, str], int] = {}
        self._id_corpora: set[str] = set()

    @classmethod
    def from_config(cls, config: DecontaminateConfig) -> Decontaminate:
        """Opens every eval set now (bad paths fail before the build starts), reads them in
        :meth:`setup`."""
        return cls(
            [(entry.name, build_source(entry.source, None)) for entry in config.eval_sets],
            methods=config.methods,
            word_ngram=config.word_ngram,
            char_ngram=config.char_ngram,
            exact_min_tokens=config.exact_min_tokens,
        )

    def details(self) -> dict[str, object]:
        """What the manifest keeps: rows removed per eval set."""
        return {"removed_by_eval_set": dict(self.removed_by_eval_set)}

    def reset_counters(self) -> None:
        super().reset_counters()
        self.removed_by_eval_set = dict.fromkeys(self.removed_by_eval_set, 0)

    # -- matching units ----------------------------------------------------------------------------

    def unit(self, lang: str) -> tuple[Literal["chars", "words"], int]:
        """The n-gram unit and size for a language: characters for unspaced scripts."""
        if not is_unspaced(lang):
            return "words", self.word_ngram
        if self.char_ngram is not None:
            return "chars", self.char_ngram
        script = registry().get(lang).script
        return "chars", CHAR_NGRAM_BY_SCRIPT.get(script, DEFAULT_CHAR_NGRAM)

    def _normalized(self, column: pa.Array, lang: str) -> list[str]:
        texts = normalize_for_matching(column, unspaced=is_unspaced(lang))
        return [text or "" for text in texts.to_pylist()]

    # -- the eval index ----------------------------------------------------------------------------

    def _set_number(self, name: str) -> int:
        if name not in self.removed_by_eval_set:
            self.eval_names.append(name)
            self.removed_by_eval_set[name] = 0
        return self.eval_names.index(name)

    def setup(self) -> None:
        """Read every eval set into hash indexes (the eval sets' size, not the corpus')."""
        self.eval_names, self.removed_by_eval_set, self.eval_sentences = [], {}, 0
        self._ids, self._id_corpora = {}, set()
        exact_keys, exact_sets, gram_keys, gram_sets = [], [], [], []
        for given_name, source in self.eval_sets:
            for batch in source.iter_batches():
                corpora = batch.column("corpus").to_pylist()
                splits = batch.column("split").to_pylist()
                if given_name is not None:
                    numbers = np.full(batch.num_rows, self._set_number(given_name), np.int32)
                else:
                    numbers = np.array(
                        [
                            self._set_number(f"{corpus}:{split}")
                            for corpus, split in zip(corpora, splits, strict=True)
                        ],
                        np.int32,
                    )
                if "id" in self.methods:
                    segment_ids = batch.column("segment_id").to_pylist()
                    for key, number in zip(
                        zip(corpora, splits, segment_ids, strict=True),
                        numbers.tolist(),
                        strict=True,
                    ):
                        self._ids.setdefault(key, number)
                    self._id_corpora.update(corpora)
                for lang in segment_languages(batch):
                    texts = self._normalized(batch.column(lang), lang)
                    self.eval_sentences += sum(1 for text in texts if text)
                    unit, n = self.unit(lang)
                    if "exact" in self.methods:
                        lengths = [
                            len(text) if unit == "chars" else len(text.split()) for text in texts
                        ]
                        long = np.flatnonzero(np.array(lengths) >= self.exact_min_tokens)
                        exact_keys.append(_text_hashes(texts[i] for i in long))
                        exact_sets.append(numbers[long])
                    if "ngram" in self.methods:
                        rows, hashes = ngram_hashes(texts, unit, n)
                        gram_keys.append(hashes)
                        gram_sets.append(numbers[rows])
        self._exact = _SortedIndex(exact_keys, exact_sets)
        self._ngrams = _SortedIndex(gram_keys, gram_sets)

    @property
    def index_bytes(self) -> int:
        """Memory of the hash indexes (the id index, a dict, is not counted)."""
        return sum(index.keys.nbytes + index.sets.nbytes for index in (self._exact, self._ngrams))

    # -- filtering ---------------------------------------------------------------------------------

    def matches(self, batch: pa.RecordBatch) -> np.ndarray:
        """Per row, the number of the first eval set it matches (config order), or ``_NONE``."""
        found = np.full(batch.num_rows, _NONE, np.int32)
        if "id" in self.methods and self._ids:
            corpora = batch.column("corpus")
            if self._id_corpora.intersection(pc.unique(corpora).to_pylist()):
                keys = zip(
                    corpora.to_pylist(),
                    batch.column("split").to_pylist(),
                    batch.column("segment_id").to_pylist(),
                    strict=True,
                )
                found = np.minimum(
                    found, np.array([self._ids.get(key, _NONE) for key in keys], np.int32)
                )
        for lang in segment_languages(batch):
            column = batch.column(lang)
            if column.null_count == len(column):
                continue
            texts = self._normalized(column, lang)
            if "exact" in self.methods and len(self._exact):
                found = np.minimum(found, self._exact.lookup(_text_hashes(texts)))
            if "ngram" in self.methods and len(self._ngrams):
                unit, n = self.unit(lang)
                rows, hashes = ngram_hashes(texts, unit, n)
                numbers = self._ngrams.lookup(hashes)
                hit = numbers != _NONE
                np.minimum.at(found, rows[hit], numbers[hit])
        return found

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if batch.num_rows == 0:
            return batch
        found = self.matches(batch)
        contaminated = found != _NONE
        languages = set(segment_languages(batch))
        any_present = np.zeros(batch.num_rows, bool)
        columns = []
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if name not in languages:
                columns.append(column)
                continue
            present = column.is_valid().to_numpy(zero_copy_only=False)
            any_present |= present
            dropped = present & contaminated
            if present.any():
                self.stats.count(
                    name, int(present.sum()), int(dropped.sum()), self._reasons(found[dropped])
                )
            columns.append(pc.if_else(pa.array(contaminated), _NO_TEXT, column))
        for number, n in enumerate(
            np.bincount(found[contaminated & any_present], minlength=len(self.eval_names))
        ):
            if n:
                self.removed_by_eval_set[self.eval_names[number]] += int(n)
        return pa.RecordBatch.from_arrays(columns, schema=batch.schema)

    def _reasons(self, numbers: np.ndarray) -> dict[str, int]:
        counts = np.bincount(numbers, minlength=len(self.eval_names))
        return {
            f"contaminated: {self.eval_names[number]}": int(n)
            for number, n in enumerate(counts)
            if n
        }
