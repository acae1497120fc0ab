"""Benchmark decontamination: drop training segments that hold a held-out evaluation sentence.

The eval sets are read once, in :meth:`Decontaminate.setup`, into three indexes: the hashes of
their sentences' match keys (exact), posting lists of their sentences' short n-grams (overlap),
and their ``(corpus, split, segment_id)`` (the same multi-way corpus used for training). A
training segment matching any of them on **any** language side is dropped whole, every side
nulled: Flores is multi-way, so the Swahili side of a segment whose English side is a held-out
sentence is the held-out sentence too, translated.

Nothing depends on the column a text sits in: a Chinese sentence pasted in an English column, or
an English one in the ``zho_Hans`` column, is keyed and cut into n-grams exactly as in its own.

Matching rules (defaults, all configurable):

* exact: the side's match key (:func:`match_key`: NFKC, case-folded, punctuation, symbols,
  format characters and **all** white space removed, so ``well-known``/``wellknown``/``well
  known`` and ``don't``/``dont`` agree) equals an eval sentence's. Eval sentences under 3 words
  (or 3 characters, for text mostly in an unspaced script) are left out: "OK.", "你好" are not
  evidence of leakage.
* ngram: the side shares at least ``ngram_min_shared`` (4) n-grams with one eval sentence, and
  they are at least ``ngram_eval_share`` (60%) of that eval sentence's n-grams (the eval
  sentence, perhaps edited, is inside the side) or at least ``ngram_side_share`` (80%) of the
  side's (the side is a piece of the eval sentence: its first half, say). The unit comes from the
  text's own characters (:func:`unit_plan`), never from its column: word 2-grams when it is
  mostly in spaced scripts, character 3-grams of the match key when mostly Han/Kana, character
  6-grams when mostly Thai, Lao, Khmer, Burmese or Tibetan (several code points a syllable); a
  text with 20-80% of its letters in unspaced scripts gets both, and a spaced-script text
  written without spaces (12 characters a word or more) gets 6-grams too. Each unit is a bag of
  its own: the shares are computed within a bag. N-grams found in more than ``ngram_max_df``
  (48) eval rows ("of the", "的一") are set apart as common and count on neither side: they say
  nothing about which sentence leaked.
* id: the training row has the corpus name, split and segment id of an eval row.

Why these numbers (``python benchmarks/decontam_leaks.py --dev-split --corpora``, which plants the
bundled devtest in a Moses pair and a TSV corpus, and indexes half of Flores-200 dev's articles in
204 languages against edited copies of them and the other half): a copy with every 6th word
replaced keeps about 70% of its word 2-grams but only about half of its 3-grams, so 3-grams lets
79% of such copies through and 2-grams 0.2%; an eval share of 0.7 lets 44% of them through, 0.5
flags 121 of the 100,776 clean sentences of the other half instead of 72 (0.071%, 63 of them the
translations of two sentences whose content Flores repeats in another article); 3 shared n-grams,
or no common n-grams set apart, flag a long TICO-19 French sentence for holding the 5-word dev
sentence "Une enquête a été ouverte."; 5 shared let 7.6% of first halves through (3.5% with 4:
halves of sentences under about 9 words); the side share barely matters between 0.6 and 0.8 (0.6
flags 6 clean dev sentences of the check below instead of 3). On the planted corpora the defaults
let no exact, variant, hyphen/apostrophe or misplaced copy through, 0.8% of the edited ones, and
flag 3 of the 203,388 clean dev sentences (0.0015%, all three a translation of a dev sentence about
a UNESCO World Heritage listing, which the bundled devtest also has).

Memory is the eval sets' size: 12 bytes per eval sentence (exact), 12 per distinct (n-gram,
eval bag) posting (a sorted ``uint64`` key and an ``int32`` bag number), 8 per bag, plus one
Python tuple per eval segment id. All of Flores-200 dev (204 languages x 997 sentences) is 4.7
million postings, 61 MB (devtest, 1,012 sentences, about 62 MB); building it takes about 6 s on
one core and some 370 MB at its peak.

Eval sets come from three places, in this order: ``eval_sets`` (source entries), ``source_splits``
(those splits of the recipe's own ``type: flores`` sources: ``[devtest]`` holds out the devtest of
whatever Flores folder the recipe reads, so ``--set sources.0.path=...`` moves both) and
``eval_dirs`` (folders scanned for Flores devtest folders and WMT test sets, :func:`scan_eval_dir`).
A split or folder that holds nothing is listed in :attr:`Decontaminate.eval_sets_missing`, for
the build to warn about, rather than failing the build.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field, model_validator

from bayling_data.config import StrictModel
from bayling_data.errors import CorpusError
from bayling_data.filters.base import SegmentFilter
from bayling_data.filters.matching import match_key, match_words, script_counts
from bayling_data.filters.near_dedup import _mix64, ngram_hashes
from bayling_data.schema import segment_languages
from bayling_data.sources import SOURCE_CONFIG_UNION, FloresSource, Source, WmtSource, build_source
from bayling_data.sources.files import strip_compression
from bayling_data.sources.samples import resolve_source_path

MatchMethod = Literal["exact", "ngram", "id"]

DEFAULT_WORD_NGRAM = 2
# Characters per n-gram in unspaced scripts, over the match key.
DEFAULT_HAN_NGRAM = 3
DEFAULT_SEA_NGRAM = 6
DEFAULT_MIN_SHARED = 4
DEFAULT_EVAL_SHARE = 0.6
DEFAULT_SIDE_SHARE = 0.8
DEFAULT_MAX_DF = 48
DEFAULT_EXACT_MIN_TOKENS = 3
# A text whose letters are at least this share Han/Kana or South-East Asian script is cut into
# character n-grams; one with less than UNSPACED_WORDS_BELOW of them into word n-grams too.
UNSPACED_CHARS_FROM = 0.2
UNSPACED_WORDS_BELOW = 0.8
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
        default_factory=list,
        description="Evaluation sets, each a source entry plus an optional name.",
    )
    source_splits: list[str] = Field(
        default_factory=list,
        description="Splits of the recipe's own `type: flores` sources held out as eval sets "
        "(`[devtest]`), read even where the source reads only dev; a source without the split "
        "gives none (and is reported).",
    )
    eval_dirs: list[str] = Field(
        default_factory=list,
        description="Folders scanned for Flores devtest folders and WMT test sets (plain text "
        "or SGML); an empty entry is skipped, so `${BAYLING_EVAL_DIR:-}` may be unset.",
    )
    methods: list[MatchMethod] = Field(
        default=list(ALL_METHODS), min_length=1, description="Matching rules: exact, ngram, id."
    )
    word_ngram: int = Field(
        default=DEFAULT_WORD_NGRAM, ge=1, le=64, description="n-gram size in words."
    )
    char_ngram: int | None = Field(
        default=None,
        ge=2,
        le=256,
        description="n-gram size in characters for unspaced scripts; default: by script "
        f"({DEFAULT_HAN_NGRAM} Han/Kana, {DEFAULT_SEA_NGRAM} Thai/Lao/Khmer/Burmese/Tibetan).",
    )
    ngram_min_shared: int = Field(
        default=DEFAULT_MIN_SHARED,
        ge=1,
        description="Fewest n-grams a side must share with one eval sentence.",
    )
    ngram_eval_share: float = Field(
        default=DEFAULT_EVAL_SHARE,
        gt=0,
        le=1,
        description="Share of the eval sentence's n-grams found in the side that matches "
        "(the eval sentence, edited or not, inside the side).",
    )
    ngram_side_share: float = Field(
        default=DEFAULT_SIDE_SHARE,
        gt=0,
        le=1,
        description="Share of the side's n-grams found in the eval sentence that matches "
        "(the side a piece of an eval sentence).",
    )
    ngram_max_df: int = Field(
        default=DEFAULT_MAX_DF,
        ge=1,
        description="N-grams found in more eval rows than this are not evidence and are dropped.",
    )
    exact_min_tokens: int = Field(
        default=DEFAULT_EXACT_MIN_TOKENS,
        ge=1,
        description="Shortest eval sentence (words, or characters in unspaced scripts) matched "
        "exactly.",
    )

    @model_validator(mode="after")
    def _some_eval_set(self) -> DecontaminateConfig:
        if not (self.eval_sets or self.source_splits or self.eval_dirs):
            raise ValueError(
                "give the evaluation data: `eval_sets`, `source_splits` (e.g. [devtest]) or "
                "`eval_dirs`"
            )
        return self


EvalSetInput = Source | tuple[str | None, Source]


# -- where eval sets come from ---------------------------------------------------------------------


def _holds_split(folder: Path, split: str) -> bool:
    return folder.is_dir() and any(folder.glob(f"*.{split}"))


def flores_split_folder(root: Path, split: str) -> Path | None:
    """The ``split`` folder of a Flores layout given as its root or as one of its split folders
    (``.../dev``), or None when it holds no ``*.split`` file."""
    if root.is_dir() and _holds_split(root, root.name):
        root = root.parent
    folder = root / split
    return folder if _holds_split(folder, split) else None


_SGML_SOURCE = re.compile(r"^(?P<prefix>.+)-src\.(?P<lang>[^.]+)\.sgm$")
_SGML_REFERENCE = re.compile(r"^(?P<prefix>.+)-ref\.(?:[^.]+\.)?(?P<lang>[^.]+)\.sgm$")
_TEXT_SOURCE = re.compile(r"^(?P<prefix>.+)\.src\.(?P<lang>[^.]+)$")
_TEXT_REFERENCE = re.compile(r"^(?P<prefix>.+)\.ref\.(?:[^.]+\.)?(?P<lang>[^.]+)$")


def _wmt_references(
    folders: Sequence[Path], pattern: re.Pattern[str], prefix: str, lang: str
) -> list[Path]:
    for folder in folders:
        found = []
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            match = pattern.match(strip_compression(path.name))
            if path.is_file() and match and match["prefix"] == prefix and match["lang"] != lang:
                found.append(path)
        if found:
            return found
    return []


def scan_eval_dir(folder: Path) -> tuple[list[tuple[str | None, Source]], list[str]]:
    """Eval sets under a folder, and what was found but could not be used.

    Recognised, at any depth: a Flores-200/101 ``devtest/`` folder (``eng_Latn.devtest`` or
    ``eng.devtest``); WMT SGML (``NAME-src.xx.sgm`` with ``NAME-ref.yy.sgm`` beside it); WMT
    plain text in the wmt22 layout (``NAME.src.xx`` with ``NAME.ref.A.yy`` beside it, or in a
    ``references/`` folder next to a ``sources/`` one). Compressed files are read too. A test
    set published in both directions gives one eval set per source file.
    """
    found: list[tuple[str | None, Source]] = []
    unusable: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        here = Path(dirpath)
        if here.name == "devtest" and _holds_split(here, "devtest"):
            found.append((None, FloresSource(here)))
            dirnames.clear()
            continue
        for name in sorted(filenames):
            bare = strip_compression(name)
            for source_pattern, reference_pattern in (
                (_SGML_SOURCE, _SGML_REFERENCE),
                (_TEXT_SOURCE, _TEXT_REFERENCE),
            ):
                match = source_pattern.match(bare)
                if match is None:
                    continue
                folders = [here]
                if here.name == "sources":
                    folders.append(here.parent / "references")
                references = _wmt_references(
                    folders, reference_pattern, match["prefix"], match["lang"]
                )
                if not references:
                    unusable.append(f"{here / name}: a WMT source without a reference file")
                    break
                source = WmtSource(source=here / name, references=[str(p) for p in references])
                target = source.references[0].code
                found.append((f"{source.corpus}:{source.source_side.code}-{target}", source))
                break
    return found, unusable


def resolve_eval_sets(
    config: DecontaminateConfig, recipe_sources: Sequence[Any] = ()
) -> tuple[list[tuple[str | None, Source]], list[str], list[str]]:
    """The eval sets a config asks for, opened: ``(eval sets, found, missing)``, where found and
    missing describe each place looked at, one line each, for the build's report."""
    eval_sets: list[tuple[str | None, Source]] = []
    found: list[str] = []
    missing: list[str] = []
    seen: set[Path] = set()
    for index, entry in enumerate(config.eval_sets):
        eval_sets.append((entry.name, build_source(entry.source, None)))
        found.append(f"eval_sets.{index}: {entry.name or entry.source.type}")
    for split in config.source_splits:
        flores = [
            (index, source)
            for index, source in enumerate(recipe_sources)
            if getattr(source, "type", None) == "flores"
        ]
        if not flores:
            missing.append(f"source_splits: {split}: the recipe has no `type: flores` source")
        for index, source in flores:
            folder = flores_split_folder(resolve_source_path(source.path), split)
            where = f"source_splits: {split} of sources.{index} ({source.path})"
            if folder is None:
                missing.append(f"{where}: no {split} split there")
                continue
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            opened = FloresSource(folder, corpus=source.corpus)
            eval_sets.append((None, opened))
            found.append(f"{where}: {opened.corpus}:{split}, {len(opened.languages)} languages")
    for index, raw in enumerate(config.eval_dirs):
        if not raw.strip():
            continue
        folder = resolve_source_path(raw.strip())
        if not folder.is_dir():
            raise CorpusError(f"eval_dirs.{index}: {folder}: no such folder")
        sets, unusable = scan_eval_dir(folder)
        missing.extend(f"eval_dirs.{index}: {line}" for line in unusable)
        for name, source in sets:
            root = getattr(source, "root", None)
            if isinstance(root, Path):
                if root.resolve() in seen:
                    continue
                seen.add(root.resolve())
            eval_sets.append((name, source))
            found.append(f"eval_dirs.{index}: {name or source.corpus + ':devtest'}")
        if not sets:
            missing.append(f"eval_dirs.{index}: {folder}: no Flores devtest or WMT test set")
    return eval_sets, found, missing


# -- matching units --------------------------------------------------------------------------------


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


class MatchTexts:
    """One column of texts prepared for matching, whatever column it came from: words, keys,
    and per text the share of its letters in unspaced scripts."""

    def __init__(self, column: pa.Array):
        self.words = match_words(column)
        self.keys = match_key(column, words=self.words)
        han, sea, letters = script_counts(self.words, keys=self.keys)
        self.han, self.sea = han, sea
        self.unspaced_share = (han + sea) / np.maximum(letters, 1)
        self.chars = pc.fill_null(pc.utf8_length(self.keys), 0).to_numpy(zero_copy_only=False)
        words = pc.fill_null(pc.add(pc.count_substring(self.words, " "), 1), 0)
        self.word_count = np.where(self.chars > 0, words.to_numpy(zero_copy_only=False), 0)
        self.present = self.chars > 0

    def __len__(self) -> int:
        return len(self.words)

    def key_hashes(self) -> np.ndarray:
        return _text_hashes(pc.fill_null(self.keys, "").to_pylist())

    def lengths(self) -> np.ndarray:
        """Words, or characters for text mostly in an unspaced script (0 for none)."""
        return np.where(self.unspaced_share >= 0.5, self.chars, self.word_count)


# N-gram units, each text one bag of n-grams per unit it is cut into: words; Han/Kana characters;
# longer character n-grams (South-East Asian and Tibetan scripts, spaced ones written unspaced).
WORDS, HAN_CHARS, LONG_CHARS = 0, 1, 2
UNITS = 3
# A text in a spaced script written (partly) without spaces: this many key characters a word or
# more (Flores-200 dev: 2% of Malayalam lines, none of other spaced languages; many of
# South Azerbaijani's lines lack spaces altogether) is cut into characters too.
LONG_WORD_CHARS = 12


def unit_plan(
    texts: MatchTexts, word_n: int, han_n: int, sea_n: int
) -> list[tuple[int, Literal["chars", "words"], int, np.ndarray, pa.Array]]:
    """The n-gram units each text is cut into, from its own characters: ``(unit, token, n, rows,
    texts)`` per unit, texts being words (spaced scripts) or match keys (character n-grams)."""
    share, present = texts.unspaced_share, texts.present
    unspaced = present & (share >= UNSPACED_CHARS_FROM)
    long_words = (
        present & ~unspaced & (texts.chars >= LONG_WORD_CHARS * np.maximum(texts.word_count, 2))
    )
    plan: list[tuple[int, Literal["chars", "words"], int, np.ndarray, pa.Array]] = []
    for unit, token, n, mask, column in (
        (WORDS, "words", word_n, present & (share < UNSPACED_WORDS_BELOW), texts.words),
        (HAN_CHARS, "chars", han_n, unspaced & (texts.han >= texts.sea), texts.keys),
        (LONG_CHARS, "chars", sea_n, (unspaced & (texts.han < texts.sea)) | long_words, texts.keys),
    ):
        rows = np.flatnonzero(mask)
        if len(rows):
            plan.append((unit, token, n, rows, column.take(pa.array(rows))))  # type: ignore[arg-type]
    return plan


_BAG_SALT = np.uint64(0x9E3779B97F4A7C15)


def text_ngrams(
    texts: MatchTexts, word_n: int, han_n: int, sea_n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``(bag, n-gram hash)`` pairs, in the order first met (so grouped by unit, then
    text): a bag is one text's n-grams in one unit, numbered ``text index * UNITS + unit``."""
    all_bags, all_grams = [np.zeros(0, np.int64)], [np.zeros(0, np.uint64)]
    for unit, token, n, rows, column in unit_plan(texts, word_n, han_n, sea_n):
        local, grams = ngram_hashes(column.to_pylist(), token, n)
        all_bags.append(rows[local].astype(np.int64) * UNITS + unit)
        all_grams.append(grams)
    bags, grams = np.concatenate(all_bags), np.concatenate(all_grams)
    # One sort of one uint64 a pair (the n-gram hash mixed with its bag) instead of a two-key
    # sort; two pairs colliding would take some 2^32 pairs in one batch.
    with np.errstate(over="ignore"):
        mixed = _mix64(grams ^ (bags.astype(np.uint64) * _BAG_SALT))
    ordered = np.sort(mixed)
    repeats = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if not len(repeats):
        return bags, grams
    # Only the few repeated pairs ("of the" twice in one sentence) need their first kept.
    at = np.minimum(np.searchsorted(repeats, mixed), len(repeats) - 1)
    repeated = np.flatnonzero(repeats[at] == mixed)
    _, first = np.unique(mixed[repeated], return_index=True)
    keep = np.ones(len(mixed), bool)
    keep[repeated] = False
    keep[repeated[first]] = True
    return bags[keep], grams[keep]


def _in_sorted(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    if not len(sorted_keys):
        return np.zeros(len(queries), bool)
    at = np.minimum(np.searchsorted(sorted_keys, queries), len(sorted_keys) - 1)
    return sorted_keys[at] == queries


class _OverlapIndex:
    """Posting lists: every distinct (n-gram, eval bag) pair, sorted by n-gram hash, and per eval
    bag (one eval sentence's n-grams in one unit) its eval-set number and its count of
    informative n-grams; plus the common n-grams, which count on neither side."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, np.uint64)
        self.bags = np.zeros(0, np.int32)
        self.bag_sets = np.zeros(0, np.int32)
        self.bag_grams = np.zeros(0, np.int32)
        self.common = np.zeros(0, np.uint64)
        self._grams: list[np.ndarray] = []
        self._bags: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []
        self._sets: list[np.ndarray] = []
        self._count = 0

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        arrays = (self.keys, self.bags, self.bag_sets, self.bag_grams, self.common)
        return sum(a.nbytes for a in arrays)

    def add(
        self, bags: np.ndarray, grams: np.ndarray, eval_rows: np.ndarray, sets: np.ndarray
    ) -> None:
        """One column's distinct pairs (from :func:`text_ngrams`), and the global eval row and
        the eval-set number of each of the column's texts."""
        found, local = np.unique(bags, return_inverse=True)
        texts = found // UNITS
        self._grams.append(grams)
        self._bags.append((self._count + local).astype(np.int32))
        self._rows.append(eval_rows[texts].astype(np.int32))
        self._sets.append(sets[texts].astype(np.int32))
        self._count += len(found)

    def finish(self, min_shared: int, max_df: int) -> None:
        """Sort the postings, set the n-grams of more than ``max_df`` eval rows apart as common,
        count each bag's other n-grams, and drop the bags too small to reach ``min_shared``.

        One array at a time: the peak is about 30 bytes a posting, for the sort."""
        grams = np.concatenate([np.zeros(0, np.uint64), *self._grams])
        self._grams = []
        order = np.argsort(grams, kind="stable")  # keeps bag (and eval-row) order within an n-gram
        grams.sort()  # the same values as grams[order], without a second copy
        bags = np.concatenate([np.zeros(0, np.int32), *self._bags])
        self._bags = []
        bags = bags[order]
        del order
        bag_rows = np.concatenate([np.zeros(0, np.int32), *self._rows])
        self.bag_sets = np.concatenate([np.zeros(0, np.int32), *self._sets])
        self._rows, self._sets = [], []
        common = np.zeros(len(grams), bool)
        if len(grams):
            starts = np.ones(len(grams), bool)
            starts[1:] = grams[1:] != grams[:-1]
            run = np.cumsum(starts, dtype=np.int32) - 1  # each posting's n-gram number
            sizes = np.bincount(run)
            # Only an n-gram with more than max_df postings can be in more than max_df rows.
            candidate = sizes[run] > max_df
            rows = np.int64(bag_rows.max()) + 1
            pairs = np.unique(run[candidate] * rows + bag_rows[bags[candidate]])
            del candidate
            frequent = np.bincount(pairs // rows, minlength=len(sizes)) > max_df
            common = frequent[run]
            del run
            self.common = grams[starts & common]
        self.bag_grams = np.bincount(bags[~common], minlength=self._count).astype(np.int32)
        keep = ~common & (self.bag_grams[bags] >= min_shared)
        del common
        self.keys = grams[keep]
        del grams
        self.bags = bags[keep]

    def informative(self, grams: np.ndarray) -> np.ndarray:
        """Which n-grams are not common ones."""
        return ~_in_sorted(self.common, grams)

    def shared(
        self, bags: np.ndarray, grams: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For distinct ``(bag, n-gram)`` pairs: every ``(bag, eval bag, n-grams shared)`` with at
        least one shared."""
        empty = np.zeros(0, np.int64)
        if not len(self.keys) or not len(grams):
            return empty, empty, empty
        order = np.argsort(grams)  # sorted queries make the binary searches cache-friendly
        grams, bags = grams[order], bags[order]
        low = np.searchsorted(self.keys, grams, "left")
        hits = np.flatnonzero(self.keys[np.minimum(low, len(self.keys) - 1)] == grams)
        if not len(hits):
            return empty, empty, empty
        bags, low = bags[hits], low[hits]  # few, on clean text: only they need the run's end
        counts = np.searchsorted(self.keys, grams[hits], "right") - low
        ends = np.cumsum(counts)
        positions = np.arange(ends[-1]) - np.repeat(ends - counts - low, counts)
        pair = np.repeat(bags, counts) * np.int64(self._count) + self.bags[positions]
        pairs, shared = np.unique(pair, return_counts=True)
        return pairs // self._count, pairs % self._count, shared


# Language columns are matched together, this many texts at a time: Arrow compiles each regular
# expression once a call, which costs more than matching a column of a hundred short texts.
GROUP_TEXTS = 16384


def _language_groups(batch: pa.RecordBatch, languages: Sequence[str]) -> list[list[str]]:
    """The language columns in groups of about :data:`GROUP_TEXTS` texts (one column at least)."""
    per_group = max(1, GROUP_TEXTS // max(batch.num_rows, 1))
    return [list(languages[i : i + per_group]) for i in range(0, len(languages), per_group)]


class Decontaminate(SegmentFilter):
    """Drop whole training segments matching an eval sentence on any language side.

    Counted for each language present in a dropped row, with reason ``contaminated: NAME``;
    :attr:`removed_by_eval_set` counts dropped rows (segments) per eval set, for the manifest.
    :attr:`eval_sets_found` and :attr:`eval_sets_missing` say, one line per place, which
    configured eval data was found and which was not (a ``source_splits`` split absent from a
    Flores folder, an ``eval_dirs`` folder holding no test set).
    """

    name = "decontaminate"

    def __init__(
        self,
        eval_sets: Sequence[EvalSetInput],
        *,
        methods: Sequence[MatchMethod] = ALL_METHODS,
        word_ngram: int = DEFAULT_WORD_NGRAM,
        char_ngram: int | None = None,
        ngram_min_shared: int = DEFAULT_MIN_SHARED,
        ngram_eval_share: float = DEFAULT_EVAL_SHARE,
        ngram_side_share: float = DEFAULT_SIDE_SHARE,
        ngram_max_df: int = DEFAULT_MAX_DF,
        exact_min_tokens: int = DEFAULT_EXACT_MIN_TOKENS,
        eval_sets_found: Sequence[str] | None = None,
        eval_sets_missing: Sequence[str] = (),
    ):
        super().__init__()
        if not eval_sets and not eval_sets_missing:
            raise ValueError("decontamination needs at least one eval set")
        unknown = set(methods) - set(ALL_METHODS)
        if unknown or not methods:
            raise ValueError(f"methods must be some of {', '.join(ALL_METHODS)}")
        self.eval_sets = [item if isinstance(item, tuple) else (None, item) for item in eval_sets]
        self.methods = frozenset(methods)
        self.word_ngram = word_ngram
        self.char_ngram = char_ngram
        self.han_ngram = char_ngram or DEFAULT_HAN_NGRAM
        self.sea_ngram = char_ngram or DEFAULT_SEA_NGRAM
        self.ngram_min_shared = ngram_min_shared
        self.ngram_eval_share, self.ngram_side_share = ngram_eval_share, ngram_side_share
        self.ngram_max_df = ngram_max_df
        self.exact_min_tokens = exact_min_tokens
        self.eval_sets_found = (
            list(eval_sets_found)
            if eval_sets_found is not None
            else [name or source.corpus for name, source in self.eval_sets]
        )
        self.eval_sets_missing = list(eval_sets_missing)
        self.eval_names: list[str] = []
        self.removed_by_eval_set: dict[str, int] = {}
        self.eval_sentences = 0
        self._exact = _SortedIndex([], [])
        self._ngrams = _OverlapIndex()
        self._ids: dict[tuple[str, str, str], int] = {}
        self._id_corpora: set[str] = set()

    @classmethod
    def from_config(
        cls, config: DecontaminateConfig, recipe_sources: Sequence[object] = ()
    ) -> Decontaminate:
        """Opens every eval set now (bad paths fail before the build starts), reads them in
        :meth:`setup`. ``recipe_sources`` are the recipe's source entries, for ``source_splits``."""
        eval_sets, found, missing = resolve_eval_sets(config, recipe_sources)
        return cls(
            eval_sets,
            methods=config.methods,
            word_ngram=config.word_ngram,
            char_ngram=config.char_ngram,
            ngram_min_shared=config.ngram_min_shared,
            ngram_eval_share=config.ngram_eval_share,
            ngram_side_share=config.ngram_side_share,
            ngram_max_df=config.ngram_max_df,
            exact_min_tokens=config.exact_min_tokens,
            eval_sets_found=found,
            eval_sets_missing=missing or ([] if eval_sets else ["no eval set found"]),
        )

    def details(self) -> dict[str, object]:
        """What the manifest keeps: rows removed per eval set."""
        return {"removed_by_eval_set": dict(self.removed_by_eval_set)}

    def reset_counters(self) -> None:
        super().reset_counters()
        self.removed_by_eval_set = dict.fromkeys(self.removed_by_eval_set, 0)

    def _ngrams_of(self, texts: MatchTexts) -> tuple[np.ndarray, np.ndarray]:
        return text_ngrams(texts, self.word_ngram, self.han_ngram, self.sea_ngram)

    # -- the eval index ----------------------------------------------------------------------------

    def _set_number(self, name: str) -> int:
        if name not in self.removed_by_eval_set:
            self.eval_names.append(name)
            self.removed_by_eval_set[name] = 0
        return self.eval_names.index(name)

    def setup(self) -> None:
        """Read every eval set into the indexes (the eval sets' size, not the corpus')."""
        self.eval_names, self.removed_by_eval_set, self.eval_sentences = [], {}, 0
        self._ids, self._id_corpora = {}, set()
        self._ngrams = _OverlapIndex()
        exact_keys, exact_sets = [], []
        eval_row = 0
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
                rows = np.arange(eval_row, eval_row + batch.num_rows, dtype=np.int32)
                eval_row += batch.num_rows
                if "id" in self.methods:
                    segment_ids = batch.column("segment_id").to_pylist()
                    for key, number in zip(
                        zip(corpora, splits, segment_ids, strict=True),
                        numbers.tolist(),
                        strict=True,
                    ):
                        self._ids.setdefault(key, number)
                    self._id_corpora.update(corpora)
                for group in _language_groups(batch, segment_languages(batch)):
                    texts = MatchTexts(pa.concat_arrays([batch.column(c) for c in group]))
                    group_numbers = np.tile(numbers, len(group))
                    self.eval_sentences += int(texts.present.sum())
                    if "exact" in self.methods:
                        long = np.flatnonzero(texts.lengths() >= self.exact_min_tokens)
                        exact_keys.append(texts.key_hashes()[long])
                        exact_sets.append(group_numbers[long])
                    if "ngram" in self.methods:
                        bags, grams = self._ngrams_of(texts)
                        self._ngrams.add(bags, grams, np.tile(rows, len(group)), group_numbers)
        self._exact = _SortedIndex(exact_keys, exact_sets)
        self._ngrams.finish(self.ngram_min_shared, self.ngram_max_df)

    @property
    def index_bytes(self) -> int:
        """Memory of the hash and posting indexes (the id index, a dict, is not counted)."""
        return self._exact.keys.nbytes + self._exact.sets.nbytes + self._ngrams.nbytes

    # -- filtering ---------------------------------------------------------------------------------

    def overlaps(self, texts: MatchTexts) -> np.ndarray:
        """Per text, the number of the first eval set (config order) of an eval sentence it
        overlaps under the n-gram rule, or ``_NONE``."""
        found = np.full(len(texts), _NONE, np.int32)
        index = self._ngrams
        bags, grams = self._ngrams_of(texts)
        if len(index.common):
            informative = index.informative(grams)
            bags, grams = bags[informative], grams[informative]
        side, bag, shared = index.shared(bags, grams)
        if not len(side):
            return found
        side_grams = np.bincount(bags, minlength=len(texts) * UNITS)
        hit = (shared >= self.ngram_min_shared) & (
            (shared >= self.ngram_eval_share * index.bag_grams[bag])
            | (shared >= self.ngram_side_share * side_grams[side])
        )
        np.minimum.at(found, side[hit] // UNITS, index.bag_sets[bag[hit]])
        return found

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
        languages = [
            code
            for code in segment_languages(batch)
            if batch.column(code).null_count < batch.num_rows
        ]
        for group in _language_groups(batch, languages):
            texts = MatchTexts(pa.concat_arrays([batch.column(code) for code in group]))
            per_text = np.full(len(texts), _NONE, np.int32)
            if "exact" in self.methods and len(self._exact):
                numbers = self._exact.lookup(texts.key_hashes())
                per_text = np.minimum(per_text, np.where(texts.present, numbers, _NONE))
            if "ngram" in self.methods and len(self._ngrams):
                per_text = np.minimum(per_text, self.overlaps(texts))
            found = np.minimum(found, per_text.reshape(len(group), batch.num_rows).min(axis=0))
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
