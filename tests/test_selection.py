"""The k smallest keys per group, found by radix selection over shards, are exactly what a stable
sort of the whole build keeps: with hash keys, with repeated keys and ties across shards, and
when the histograms and the last candidates are held to a few cells (several passes)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from bayling_data import selection
from bayling_data.mixture import MixtureConfig, MixtureRows, apply_mixture, decide_mixture
from bayling_data.selection import smallest


def sorted_choice(groups: np.ndarray, keys: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The reference: per group, a stable sort of its keys, the first ``rank`` rows."""
    keep = np.zeros(len(keys), bool)
    for group, rank in enumerate(ranks.tolist()):
        rows = np.flatnonzero(groups == group)
        keep[rows[np.argsort(keys[rows], kind="stable")[:rank]]] = True
    return keep


@pytest.mark.parametrize("budget", ["default", "tiny"])
@pytest.mark.parametrize(
    ("groups", "rows", "shards", "distinct_keys"),
    [(1, 2_000, 1, 0), (7, 20_000, 9, 0), (60, 30_000, 17, 0), (5, 10_000, 4, 9), (3, 5_000, 6, 1)],
)
def test_radix_selection_equals_a_stable_sort(
    monkeypatch, budget: str, groups: int, rows: int, shards: int, distinct_keys: int
) -> None:
    if budget == "tiny":  # every pass narrows a few bits; several passes before the last step
        monkeypatch.setattr(selection, "HISTOGRAM_CELLS", 64)
        monkeypatch.setattr(selection, "GATHER_ROWS", 40)
    rng = np.random.default_rng(groups * 1000 + rows)
    group = rng.integers(-1, groups, rows)  # -1: a row in no group
    keys = rng.integers(0, 2**63, rows, dtype=np.uint64) << np.uint64(1)
    if distinct_keys:
        keys %= np.uint64(distinct_keys)  # many ties, across shard boundaries
    sizes = np.bincount(group[group >= 0], minlength=groups)
    ranks = rng.integers(0, sizes.max() + 3, groups)
    ranks[0] = 0
    cuts = np.sort(rng.choice(np.arange(1, rows), shards - 1, replace=False))
    parts = np.split(np.arange(rows), cuts)

    def passes():
        for part in parts:
            yield group[part], keys[part]

    cut = smallest(passes, ranks, sizes)
    mask = cut.masker()
    got = np.concatenate([mask(group[part], keys[part]) for part in parts])
    assert (got == sorted_choice(group, keys, ranks)).all()


def instructions(n: int, shard: int) -> pa.Table:
    languages = ["fra_Latn", "swh_Latn", "yor_Latn"]
    rng = np.random.default_rng(shard)
    lang = [languages[i] for i in rng.integers(0, 3, n)]
    to_pivot = rng.integers(0, 2, n).astype(bool)
    src = [lang[i] if to_pivot[i] else "eng_Latn" for i in range(n)]
    tgt = ["eng_Latn" if to_pivot[i] else lang[i] for i in range(n)]
    return pa.table(
        {
            "mix_key": pa.array(rng.integers(0, 2**63, n, dtype=np.uint64)),
            "task": ["translation" if i % 3 else "chat" for i in range(n)],
            "src_lang": src,
            "tgt_lang": tgt,
            "direction": [f"{s}-{t}" for s, t in zip(src, tgt, strict=True)],
        },
        schema=pa.schema(
            [("mix_key", pa.uint64())]
            + [(name, pa.string()) for name in ("task", "src_lang", "tgt_lang", "direction")]
        ),
    )


@pytest.mark.parametrize(
    "config",
    [
        MixtureConfig(),
        MixtureConfig(language_alpha=0.3, total=900),
        MixtureConfig(total=700, language_cap=150, direction_quotas={"eng_Latn-yor_Latn": 40}),
    ],
    ids=["proportions", "alpha-total", "cap-quota"],
)
def test_a_mixture_over_shards_keeps_what_it_keeps_in_one_table(
    monkeypatch, config: MixtureConfig
) -> None:
    """The build streams its projection shards through the mixture; the rows kept (and the
    report) are those of the same rows as one table, whatever the selection's budget."""
    monkeypatch.setattr(selection, "GATHER_ROWS", 50)
    monkeypatch.setattr(selection, "HISTOGRAM_CELLS", 256)
    shards = [instructions(n, shard) for shard, n in enumerate([400, 0, 900, 333])]
    weights = {"translation": 2.0, "chat": 1.0}
    whole = pa.concat_tables(shards)
    kept_whole, report_whole = apply_mixture(whole, weights, config, ["eng_Latn"], seed=1)

    rows = MixtureRows(lambda: iter(shards), ["eng_Latn"])
    choice, report = decide_mixture(rows, weights, config)
    masks = [keep for _codes, keep in choice.masks(rows)]
    kept = whole.filter(pa.array(np.concatenate(masks)))
    assert kept.equals(kept_whole)
    assert report == report_whole
    assert 0 < kept.num_rows < whole.num_rows or config == MixtureConfig()
