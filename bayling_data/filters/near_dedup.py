"""Near-duplicate removal of instruction rows: MinHash signatures (rensa) and LSH banding.

Each row's text (by default its source + target pair) is normalized, cut into shingles, and
sketched with MinHash; the signature is cut into ``bands`` bands of ``rows`` values, each band
hashed to 64 bits. A row that shares a band hash with an earlier *kept* row is a near duplicate
and dropped; the first occurrence in generation order stays, so the same recipe keeps the same
rows whatever the batch size.

The defaults suit sentences, not documents: word unigrams (spaced scripts) and character bigrams
(Han, Kana, Thai-like scripts), with the S-curve at Jaccard 0.7. One word replaced in a 20-word
sentence is Jaccard 0.9 with unigrams but 0.75 with word 3-grams, two of 42 Chinese characters
0.82 with bigrams but 0.62 with 5-grams: larger shingles and a higher threshold miss such edits.

Memory: only the band hashes of kept rows survive a batch, in one open-addressing table of
``uint64`` kept 25-50% full (no Python object per row): ``bands * 16`` to ``bands * 32`` bytes per
kept row, 224 to 448 with the defaults' 14 bands, and briefly up to twice that while it doubles.

:func:`normalize_for_matching` is shared with benchmark decontamination and exact dedup, so "the
same text" means the same thing in all three.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import rensa
import xxhash
from pydantic import Field, model_validator

from bayling_data.config import StrictModel
from bayling_data.filters.base import InstructionFilter
from bayling_data.filters.global_filter import (
    ENTRY_SCHEMA,
    GlobalFilter,
    key_table,
    reasons_from_mask,
)
from bayling_data.filters.matching import is_unspaced, normalize_for_matching

NearDedupField = Literal["pair", "source", "target", "messages"]
ShingleChoice = Literal["auto", "chars", "words"]
ShingleUnit = Literal["chars", "words"]

DEFAULT_CHAR_NGRAM = 2
DEFAULT_WORD_NGRAM = 1
DEFAULT_THRESHOLD = 0.7
NEAR_DUPLICATE = "near duplicate"

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, element-wise on uint64 (wrapping multiplication)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.uint64)


_WORD_SALT = np.uint64(0x5851F42D4C957F2D)
_CHAR_SALT = np.uint64(0x14057B7EF767814F)
_POSITION_BASE = 0x9E3779B97F4A7C15


@cache
def _position_weights(length: int) -> np.ndarray:
    """Powers of an odd 64-bit constant, wrapping: the weights of a polynomial string hash."""
    powers = np.full(max(length, 1), _POSITION_BASE, np.uint64)
    powers[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(powers)


def token_hashes(texts: Sequence[str], unit: ShingleUnit) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit hash of every token of normalized texts, flat, and each text's token count.

    Tokens are code points (``chars``) or the space-separated words of
    :func:`normalize_for_matching`'s output (``words``). Vectorized over one UTF-32 buffer, so
    the same token hashes the same in every batch, process and run.
    """
    if unit == "chars":
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        with np.errstate(over="ignore"):
            return _mix64(_codepoints("".join(texts)) ^ _CHAR_SALT), lengths
    texts = [" ".join(text.split()) for text in texts]  # a no-op on normalized text
    lengths = np.fromiter(
        ((text.count(" ") + 1 if text else 0) for text in texts), np.int64, len(texts)
    )
    points = _codepoints(" ".join(text for text in texts if text))
    if not points.size:
        return np.zeros(0, np.uint64), lengths
    space = points == 32
    letters = points[~space]
    # Each word starts right after a space (or at 0); normalized text has no doubled spaces.
    word_of = np.cumsum(space)[~space]
    starts = np.flatnonzero(np.concatenate(([True], word_of[1:] != word_of[:-1])))
    position = np.arange(len(letters)) - np.repeat(starts, np.diff(np.append(starts, len(letters))))
    with np.errstate(over="ignore"):
        weighted = letters * _position_weights(int(position.max()) + 1)[position]
        sums = np.add.reduceat(weighted, starts)
        word_lengths = np.diff(np.append(starts, len(letters))).astype(np.uint64)
        return _mix64(_mix64(sums ^ _WORD_SALT) ^ word_lengths), lengths


def ngram_hashes(
    texts: Sequence[str], unit: ShingleUnit, n: int, *, whole_short: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The hashes of every token n-gram of normalized texts: ``(text index, hash)`` arrays.

    A text shorter than ``n`` tokens has no n-gram, or, with ``whole_short``, one shingle made of
    all its tokens (so that short texts can still match each other).
    """
    tokens, lengths = token_hashes(texts, unit)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    text_of = np.repeat(np.arange(len(texts)), lengths)
    remaining = offsets[1:][text_of] - np.arange(len(tokens))
    if whole_short:
        starts = np.flatnonzero(
            (remaining >= n) | ((remaining == lengths[text_of]) & (remaining < n))
        )
    else:
        starts = np.flatnonzero(remaining >= n)
    width = np.minimum(remaining[starts], n)
    padded = np.concatenate((tokens, np.zeros(n, np.uint64)))
    hashes = np.full(len(starts), np.uint64(n), np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            step = _mix64(hashes ^ padded[starts + k])
            hashes = step if not whole_short else np.where(k < width, step, hashes)
    return text_of[starts], hashes


# -- LSH parameters --------------------------------------------------------------------------------


def detection_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that two rows of this Jaccard similarity share at least one band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def _area(values: np.ndarray, xs: np.ndarray) -> float:
    return float(np.sum((values[1:] + values[:-1]) * np.diff(xs)) / 2)


@cache
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) with ``bands * rows <= num_perm`` minimizing the false-positive area below
    the threshold plus the false-negative area above it (equal weights, as datasketch does).

    The S-curve's midpoint lands near ``threshold``: for 0.7 (14 bands of 9), a pair at 0.7 is
    found 44% of the time, at 0.8 87%, at 0.9 99.9%, at 0.6 13%, at 0.5 3%.
    """
    below = np.linspace(0.0, threshold, 257)
    above = np.linspace(threshold, 1.0, 257)
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_pos = _area(1 - (1 - below**rows) ** bands, below)
            false_neg = _area((1 - above**rows) ** bands, above)
            error = 0.5 * false_pos + 0.5 * false_neg
            if best is None or error < best[0] - 1e-12:
                best = (error, bands, rows)
    assert best is not None
    return best[1], best[2]


# -- the band-hash table ---------------------------------------------------------------------------


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit hash per (row, band) of a ``(n, num_perm)`` uint32 signature matrix; the band
    number is mixed in, so one table holds every band. Never 0 (the table's empty mark)."""
    n = signatures.shape[0]
    cut = signatures[:, : bands * rows].astype(np.uint64).reshape(n, bands, rows)
    with np.errstate(over="ignore"):
        hashes = np.broadcast_to(_mix64(np.arange(1, bands + 1, dtype=np.uint64)), (n, bands))
        for column in range(rows):
            hashes = _mix64(hashes ^ cut[:, :, column])
    return np.where(hashes == 0, np.uint64(1), hashes)


class HashSet64:
    """A grow-only set of non-zero uint64, open addressing with linear probing in one numpy array.

    8 bytes a slot, at most half full: 16 to 32 bytes per member, no Python object per member.
    Lookups and inserts are vectorized over arrays of keys.
    """

    def __init__(self, capacity: int = 1 << 12):
        self._table = np.zeros(1 << max(4, (capacity - 1).bit_length()), np.uint64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return self._table.nbytes

    def _home(self, keys: np.ndarray) -> np.ndarray:
        # Keys are already well-mixed hashes: their low bits pick the slot.
        return (keys & np.uint64(len(self._table) - 1)).astype(np.int64)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """A boolean per key (keys are non-zero uint64)."""
        keys = np.asarray(keys, np.uint64)
        found = np.zeros(len(keys), bool)
        mask = len(self._table) - 1
        slots = self._home(keys)
        pending = np.arange(len(keys))
        while pending.size:
            stored = self._table[slots[pending]]
            hit = stored == keys[pending]
            found[pending[hit]] = True
            pending = pending[~hit & (stored != 0)]
            slots[pending] = (slots[pending] + 1) & mask
        return found

    def add(self, keys: np.ndarray) -> None:
        """Insert keys (non-zero uint64); members already present are ignored."""
        keys = np.unique(np.asarray(keys, np.uint64))
        keys = keys[~self.contains(keys)]
        if not keys.size:
            return
        if 2 * (self._size + keys.size) > len(self._table):
            old = self._table[self._table != 0]
            capacity = len(self._table)
            while 2 * (self._size + keys.size) > capacity:
                capacity *= 2
            self._table = np.zeros(capacity, np.uint64)
            self._insert(old)
        self._insert(keys)
        self._size += keys.size

    def _insert(self, keys: np.ndarray) -> None:
        """Place distinct keys known to be absent; colliding keys take turns for a free slot."""
        mask = len(self._table) - 1
        slots = self._home(keys)
        pending = np.arange(len(keys))
        while pending.size:
            free = self._table[slots[pending]] == 0
            taken, first = np.unique(slots[pending[free]], return_index=True)
            winners = pending[free][first]
            self._table[taken] = keys[winners]
            placed = np.zeros(len(keys), bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slots[pending] = (slots[pending] + 1) & mask


_SIDE_TAGS = {"src": 0x2545F4914F6CDD1D, "tgt": 0x6A09E667F3BCC909}


@cache
def _role_tag(role: str | None) -> int:
    """The salt of a message role's shingles (messages: one per role, none shared with sides)."""
    return xxhash.xxh3_64_intdigest(f"message:{role}".encode())


# -- the filter ------------------------------------------------------------------------------------


class NearDedupConfig(StrictModel):
    """Drop instruction rows whose text nearly repeats an earlier row's (MinHash + LSH)."""

    type: Literal["near_dedup"]
    field: NearDedupField = Field(
        default="pair",
        description="What is compared: pair (source and target sentence), source, target, or "
        "messages (every message's content). Rows without src_text/tgt_text use messages.",
    )
    shingle: ShingleChoice = Field(
        default="auto",
        description="Shingle unit: auto (characters for Han/Kana/Thai-like scripts, words "
        "elsewhere), chars or words.",
    )
    char_ngram: int = Field(
        default=DEFAULT_CHAR_NGRAM, ge=1, le=32, description="Character shingle size."
    )
    word_ngram: int = Field(
        default=DEFAULT_WORD_NGRAM, ge=1, le=16, description="Word shingle size."
    )
    threshold: float = Field(
        default=DEFAULT_THRESHOLD,
        gt=0.0,
        lt=1.0,
        description="Jaccard similarity of a near duplicate (the LSH S-curve's midpoint).",
    )
    num_perm: int = Field(default=128, ge=8, le=1024, description="MinHash permutations.")
    bands: int | None = Field(
        default=None,
        ge=1,
        description="LSH bands (rows per band: num_perm // bands); default: derived from "
        "threshold and num_perm.",
    )
    seed: int = Field(default=1, ge=0, description="MinHash seed.")

    @model_validator(mode="after")
    def _bands(self) -> NearDedupConfig:
        if self.bands is not None and self.bands > self.num_perm:
            raise ValueError(f"bands ({self.bands}) is above num_perm ({self.num_perm})")
        return self


class NearDedup(InstructionFilter, GlobalFilter):
    """Drop a row whose shingle set nearly repeats an earlier kept row's (reason "near duplicate").

    Stateful like :class:`~bayling_data.filters.dedup.ExactDedup`: a global step whose memory is
    the band hashes of the kept rows (see the module docstring). ``score`` answers whether each
    row is a near duplicate and records the kept ones.
    """

    name = "near_dedup"
    partitioned = False

    def __init__(
        self,
        field: NearDedupField = "pair",
        *,
        shingle: ShingleChoice = "auto",
        char_ngram: int = DEFAULT_CHAR_NGRAM,
        word_ngram: int = DEFAULT_WORD_NGRAM,
        threshold: float = DEFAULT_THRESHOLD,
        num_perm: int = 128,
        bands: int | None = None,
        seed: int = 1,
    ):
        super().__init__()
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), not {threshold}")
        self.field, self.shingle = field, shingle
        self.ngram = {"chars": char_ngram, "words": word_ngram}
        self.threshold, self.num_perm, self.seed = threshold, num_perm, seed
        if bands is None:
            self.bands, self.rows = lsh_params(threshold, num_perm)
        else:
            if not 1 <= bands <= num_perm:
                raise ValueError(f"bands must lie in [1, num_perm={num_perm}], not {bands}")
            self.bands, self.rows = bands, num_perm // bands
        self.index = HashSet64()

    @classmethod
    def from_config(cls, config: NearDedupConfig) -> NearDedup:
        return cls(
            config.field,
            shingle=config.shingle,
            char_ngram=config.char_ngram,
            word_ngram=config.word_ngram,
            threshold=config.threshold,
            num_perm=config.num_perm,
            bands=config.bands,
            seed=config.seed,
        )

    @property
    def bytes_per_kept_row(self) -> float:
        """The index's current memory per kept row (its table is kept 25-50% full)."""
        kept = len(self.index) / self.bands
        return self.index.nbytes / kept if kept else 0.0

    # -- shingling ---------------------------------------------------------------------------------

    def _key(self, langs: Sequence[str | None]) -> tuple[ShingleUnit, bool]:
        """(unit, drop spaces) for a text written in these languages: character shingles when
        any is unspaced, as they work in every script and word shingles do not."""
        unspaced = any(is_unspaced(lang) for lang in langs)
        if self.shingle != "auto":
            return self.shingle, unspaced
        return ("chars" if unspaced else "words"), unspaced

    def _grams(
        self, texts: pa.Array, keys: Sequence[tuple[ShingleUnit, bool]], tags: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(text index, shingle hash)`` of each text, the hashes salted with its tag."""
        normalized = normalize_for_matching(texts)
        found_rows, found_hashes = [np.zeros(0, np.int64)], [np.zeros(0, np.uint64)]
        for unit, unspaced in sorted(set(keys)):
            members = np.array([i for i, key in enumerate(keys) if key == (unit, unspaced)])
            group = normalized.take(pa.array(members, pa.int64()))
            if unspaced:
                group = pc.replace_substring(group, " ", "")
            values = [text or "" for text in group.to_pylist()]
            rows, hashes = ngram_hashes(values, unit, self.ngram[unit], whole_short=True)
            found_rows.append(members[rows])
            with np.errstate(over="ignore"):
                found_hashes.append(_mix64(hashes ^ tags[members[rows]]))
        return np.concatenate(found_rows), np.concatenate(found_hashes)

    def shingle_hashes(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """Every row's shingle hashes: ``(row, hash)`` arrays.

        Source, target and each message role salt their shingles differently, so that the
        reversed pair (the other direction of the same segment) is not a duplicate. Rows without
        the field's text (tasks that are not translation-like) are compared by their messages.
        """
        n = batch.num_rows
        names = batch.schema.names
        src_langs = batch.column("src_lang").to_pylist()
        tgt_langs = batch.column("tgt_lang").to_pylist()
        sides = {"pair": ("src", "tgt"), "source": ("src",), "target": ("tgt",)}.get(self.field, ())
        parts = []
        without_text = np.ones(n, bool)
        for side in sides:
            if f"{side}_text" not in names:
                continue
            texts = batch.column(f"{side}_text")
            without_text &= pc.is_null(texts).to_numpy(zero_copy_only=False)
            langs = src_langs if side == "src" else tgt_langs
            keys = [self._key((lang,)) for lang in langs]
            tags = np.full(n, _SIDE_TAGS[side], np.uint64)
            parts.append(self._grams(texts, keys, tags))
        message_rows = np.flatnonzero(without_text)
        if message_rows.size:
            parts.append(self._message_grams(batch, message_rows, src_langs, tgt_langs))
        rows = np.concatenate([part[0] for part in parts])
        hashes = np.concatenate([part[1] for part in parts])
        return rows, hashes

    def _message_grams(
        self,
        batch: pa.RecordBatch,
        rows: np.ndarray,
        src_langs: list[str | None],
        tgt_langs: list[str | None],
    ) -> tuple[np.ndarray, np.ndarray]:
        messages = batch.column("messages").take(pa.array(rows, pa.int64()))
        owner = rows[pc.list_parent_indices(messages).to_numpy()]
        flat = pc.list_flatten(messages)
        prompt_langs = batch.column("prompt_lang").to_pylist()
        keys = [self._key((src_langs[i], tgt_langs[i], prompt_langs[i])) for i in owner.tolist()]
        tags = np.array([_role_tag(role) for role in flat.field("role").to_pylist()], np.uint64)
        found, hashes = self._grams(flat.field("content"), keys, tags)
        return owner[found], hashes

    # -- deciding ----------------------------------------------------------------------------------

    def signatures(
        self, rows: np.ndarray, hashes: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """MinHash signatures (rensa, in bulk) of the rows that have shingles: the rows, and a
        ``(len(rows), num_perm)`` uint32 matrix."""
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=n)
        present = np.flatnonzero(counts)
        if not present.size:
            return present, np.zeros((0, self.num_perm), np.uint32)
        offsets = np.concatenate(([0], np.cumsum(counts[present]))).astype(np.uint64)
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            np.ascontiguousarray(hashes[order]), offsets, self.num_perm, self.seed
        )
        signatures = np.array(matrix.to_rows(), dtype=np.uint32).reshape(-1, self.num_perm)
        return present, signatures

    def band_keys(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """The rows that have shingles, and their ``(rows, bands)`` LSH band hashes."""
        rows, signatures = self.signatures(*self.shingle_hashes(batch), batch.num_rows)
        if not rows.size:
            return rows, np.zeros((0, self.bands), np.uint64)
        return rows, band_hashes(signatures, self.bands, self.rows)

    def _repeats(self, hashes: np.ndarray) -> np.ndarray:
        """Positions (in order) whose bands meet an earlier kept row's, this call's or any
        before; the kept rows' bands join the index."""
        earlier = self.index.contains(hashes.ravel()).reshape(hashes.shape).any(axis=1)
        seen: set[int] = set()
        kept: list[int] = []
        repeated: list[int] = []
        for position, (row_hashes, old) in enumerate(
            zip(hashes.tolist(), earlier.tolist(), strict=True)
        ):
            if old or not seen.isdisjoint(row_hashes):
                repeated.append(position)
                continue
            seen.update(row_hashes)
            kept.append(position)
        self.index.add(hashes[kept].ravel())
        return np.asarray(repeated, dtype=np.int64)

    def score(self, batch: pa.RecordBatch) -> pa.Array:
        """True for a row whose bands meet an earlier kept row's (this batch or any before);
        the kept rows' bands join the index. Rows with no text are never duplicates here."""
        duplicate = np.zeros(batch.num_rows, bool)
        rows, hashes = self.band_keys(batch)
        if rows.size:
            duplicate[rows[self._repeats(hashes)]] = True
        return pa.array(duplicate)

    # -- as a shard-level step ---------------------------------------------------------------------

    def keys(self, batch: pa.RecordBatch) -> pa.Table:
        rows, hashes = self.band_keys(batch)
        return key_table(
            hashes.ravel(), np.repeat(rows, self.bands), np.tile(np.arange(self.bands), rows.size)
        )

    def decide(self, shards: Iterator[tuple[int, pa.Table]]) -> pa.Table:
        """Greedy, as in one process: shard by shard in order, each row against the kept rows
        before it. Memory: the kept rows' band hashes."""
        self.index = HashSet64()
        found = []
        for shard, keys in shards:
            rows = keys.column("row").to_numpy()[:: self.bands]
            hashes = keys.column("key").to_numpy().reshape(-1, self.bands)
            repeated = rows[self._repeats(hashes)]
            found.append(
                pa.table(
                    [
                        pa.array(np.full(repeated.size, shard, np.uint32)),
                        pa.array(repeated.astype(np.uint32)),
                        pa.array(np.zeros(repeated.size, np.uint16)),
                    ],
                    schema=ENTRY_SCHEMA,
                )
            )
        return pa.concat_tables(found) if found else ENTRY_SCHEMA.empty_table()

    def apply(self, batch: pa.RecordBatch, masks: dict[int, np.ndarray]) -> pa.RecordBatch:
        return self.drop_rows(
            batch, reasons_from_mask(masks.get(0), batch.num_rows, NEAR_DUPLICATE)
        )

    def reject_reasons(self, scores: pa.Array, batch: pa.RecordBatch) -> pa.Array:
        return pc.if_else(scores, pa.scalar(NEAR_DUPLICATE), pa.scalar(None, pa.string()))
