"""The k smallest keys of each group over shards read a few times, in memory that does not grow
with the rows: the one heavy operation of the mixture.

A mixture keeps, in each group, the rows with the smallest keys (hashes of the seed and the row,
an order-free sample). Sorting every row's key would hold the whole build in memory; instead the
k-th smallest key of each group is found by radix selection. Each pass over the shards counts,
per open group, the keys under the group's current prefix by their next bits, and narrows the
prefix to the bucket that holds the k-th key; once few enough candidates are left they are
collected and sorted. Hash keys need two or three passes; memory is one histogram per open group
and the last candidates, whatever the size of the build.

The answer is a :class:`Cut`: a row is kept when its key is below its group's threshold, or equal
to it and among the group's first ``ties`` such rows in shard order, which is exactly what a
stable sort of the whole build by key would keep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

#: Histogram counters of one pass, at most (8 bytes each).
HISTOGRAM_CELLS = 1 << 22
#: Candidates collected for the exact last step, at most (about 16 bytes each).
GATHER_ROWS = 1 << 21
TOP_KEY = np.uint64((1 << 64) - 1)
EVERY_TIE = np.iinfo(np.int64).max

#: One pass over the shards, in order: each shard's rows as (group, key) arrays; group -1 is a row
#: in no group. Called once a pass, so it must start again from the first shard every time.
Shards = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]


@dataclass
class Cut:
    """Per group: keep keys below ``threshold``, and the first ``ties`` keys equal to it."""

    threshold: np.ndarray  # uint64 per group
    ties: np.ndarray  # int64 per group

    def masker(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """A function from one shard's (group, key) arrays to its keep mask; call it on the
        shards in order (it counts the ties it has kept)."""
        seen = np.zeros(len(self.ties), np.int64)

        def mask(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
            inside = groups >= 0
            safe = np.where(inside, groups, 0)
            threshold = self.threshold[safe]
            keep = inside & (keys < threshold)
            equal = np.flatnonzero(inside & (keys == threshold))
            if len(equal):
                tied = safe[equal]
                rank = seen[tied] + _occurrence(tied)
                keep[equal[rank < self.ties[tied]]] = True
                seen[:] += np.bincount(tied, minlength=len(seen))
            return keep

        return mask


def _occurrence(groups: np.ndarray) -> np.ndarray:
    """Each entry's position among the earlier entries of its group (0 for the first)."""
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    starts = np.searchsorted(ordered, ordered, side="left")
    occurrence = np.empty(len(groups), np.int64)
    occurrence[order] = np.arange(len(groups)) - starts
    return occurrence


def smallest(shards: Shards, ranks: np.ndarray, sizes: np.ndarray) -> Cut:
    """The cut that keeps ``ranks[g]`` rows of each group ``g``, those with the smallest keys
    (ties in shard order); ``sizes[g]``: the group's rows, every row when the rank reaches it."""
    ranks = np.clip(np.asarray(ranks, np.int64), 0, np.asarray(sizes, np.int64))
    sizes = np.asarray(sizes, np.int64)
    groups = len(ranks)
    threshold = np.zeros(groups, np.uint64)
    ties = np.zeros(groups, np.int64)
    every = (ranks >= sizes) & (sizes > 0)
    threshold[every], ties[every] = TOP_KEY, EVERY_TIE
    open_ = ~every & (ranks > 0)
    # Within the open groups: the prefix the k-th key is known to start with (``depth`` bits,
    # the same for every open group), the rank still wanted under it, and the rows under it.
    prefix = np.zeros(groups, np.uint64)
    wanted = ranks.copy()
    under = sizes.copy()
    depth = 0
    while open_.any():
        active = np.flatnonzero(open_)
        if depth == 64:  # every key left under the prefix is the same key
            threshold[active], ties[active] = prefix[active], wanted[active]
            break
        if int(under[active].sum()) <= GATHER_ROWS:
            _finish(shards, active, prefix, depth, wanted, threshold, ties)
            break
        bits = int(np.clip(np.log2(HISTOGRAM_CELLS / len(active)), 1, 16))
        bits = min(bits, 64 - depth)
        counts = _histogram(shards, active, prefix, depth, bits).reshape(len(active), 1 << bits)
        running = np.cumsum(counts, axis=1)
        digit = (running < wanted[active, None]).sum(axis=1)
        before = np.where(digit > 0, running[np.arange(len(active)), digit - 1], 0)
        wanted[active] -= before
        under[active] = counts[np.arange(len(active)), digit]
        prefix[active] |= digit.astype(np.uint64) << np.uint64(64 - depth - bits)
        depth += bits
    return Cut(threshold, ties)


def _high_mask(depth: int) -> np.uint64:
    return np.uint64(((1 << depth) - 1) << (64 - depth)) if depth else np.uint64(0)


def _under_prefix(
    groups: np.ndarray, keys: np.ndarray, slot: np.ndarray, prefix: np.ndarray, depth: int
) -> np.ndarray:
    """The rows of an open group whose key starts with the group's prefix."""
    safe = np.where(groups >= 0, groups, 0)
    chosen = (groups >= 0) & (slot[safe] >= 0)
    if depth:
        chosen &= (keys & _high_mask(depth)) == prefix[safe]
    return chosen


def _slots(groups: int, active: np.ndarray) -> np.ndarray:
    slot = np.full(groups, -1, np.int64)
    slot[active] = np.arange(len(active))
    return slot


def _histogram(
    shards: Shards, active: np.ndarray, prefix: np.ndarray, depth: int, bits: int
) -> np.ndarray:
    """Per open group, its keys under the prefix counted by their next ``bits`` bits."""
    slot = _slots(len(prefix), active)
    counts = np.zeros(len(active) << bits, np.int64)
    shift, digits = np.uint64(64 - depth - bits), np.uint64((1 << bits) - 1)
    for groups, keys in shards():
        chosen = _under_prefix(groups, keys, slot, prefix, depth)
        digit = ((keys[chosen] >> shift) & digits).astype(np.int64)
        counts += np.bincount((slot[groups[chosen]] << bits) + digit, minlength=len(counts))
    return counts


def _finish(
    shards: Shards,
    active: np.ndarray,
    prefix: np.ndarray,
    depth: int,
    wanted: np.ndarray,
    threshold: np.ndarray,
    ties: np.ndarray,
) -> None:
    """Collect the open groups' keys under their prefixes, in shard order, and read each group's
    wanted key off them, sorted (stable: ties stay in shard order)."""
    slot = _slots(len(prefix), active)
    found_groups: list[np.ndarray] = []
    found_keys: list[np.ndarray] = []
    for groups, keys in shards():
        chosen = _under_prefix(groups, keys, slot, prefix, depth)
        found_groups.append(slot[groups[chosen]])
        found_keys.append(keys[chosen])
    in_slot = np.concatenate([np.zeros(0, np.int64), *found_groups])
    keys = np.concatenate([np.zeros(0, np.uint64), *found_keys])
    order = np.lexsort((keys, in_slot))
    in_slot, keys = in_slot[order], keys[order]
    starts = np.searchsorted(in_slot, np.arange(len(active)), side="left")
    ends = np.searchsorted(in_slot, np.arange(len(active)), side="right")
    for position, group in enumerate(active.tolist()):
        run = keys[starts[position] : ends[position]]
        key = run[wanted[group] - 1]
        threshold[group] = key
        ties[group] = wanted[group] - int(np.searchsorted(run, key, side="left"))
