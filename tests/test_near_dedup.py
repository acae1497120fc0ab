from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from bayling_data.filters.near_dedup import (
    NEAR_DUPLICATE,
    HashSet64,
    NearDedup,
    NearDedupConfig,
    detection_probability,
    lsh_params,
    ngram_hashes,
    normalize_for_matching,
)
from bayling_data.schema import WORK_INSTRUCTION_SCHEMA
from bayling_data.sources.samples import sample_path

SAMPLE = sample_path("flores200") / "dev"


def rows(
    src: list[str | None],
    tgt: list[str | None],
    src_lang: str = "eng_Latn",
    tgt_lang: str = "zho_Hans",
    ids: list[str] | None = None,
    messages: list[list[dict[str, str]]] | None = None,
) -> pa.RecordBatch:
    n = len(src)
    return pa.RecordBatch.from_pydict(
        {
            "id": ids or [f"r{i}" for i in range(n)],
            "messages": messages or [[{"role": "user", "content": "translate"}]] * n,
            "task": ["translation"] * n,
            "direction": [f"{src_lang}-{tgt_lang}"] * n,
            "src_lang": [src_lang] * n,
            "tgt_lang": [tgt_lang] * n,
            "prompt_lang": ["eng_Latn"] * n,
            "template_id": ["t"] * n,
            "source_corpus": ["c"] * n,
            "source_split": ["dev"] * n,
            "source_segment_id": [str(i) for i in range(n)],
            "src_text": src,
            "tgt_text": tgt,
            "mix_key": list(range(n)),
        },
        schema=WORK_INSTRUCTION_SCHEMA,
    )


def lines(folder: Path, code: str) -> list[str]:
    return next(folder.glob(f"{code}.*")).read_text("utf-8").splitlines()


def replace_words(text: str, k: int, vocabulary: list[str], rng: random.Random) -> str:
    words = text.split()
    for i in rng.sample(range(len(words)), k):
        words[i] = rng.choice(vocabulary)
    return " ".join(words)


def replace_chars(text: str, k: int, alphabet: list[str], rng: random.Random) -> str:
    chars = list(text)
    for i in rng.sample(range(len(chars)), k):
        chars[i] = rng.choice(alphabet)
    return "".join(chars)


# -- matching helpers ------------------------------------------------------------------------------


def test_normalize_for_matching_folds_case_width_punctuation_and_space():
    texts = pa.array(
        ["  The RIVER,\u00a0is  long!! ", "Ｔｈｅ river is long", "Straße\u200b", None]
    )
    assert normalize_for_matching(texts).to_pylist() == [
        "the river is long",
        "the river is long",
        "strasse",
        None,
    ]
    han = pa.array(["当地时间上午 9:30 左右。", "当地时间上午9:30左右"])
    assert len(set(normalize_for_matching(han, unspaced=True).to_pylist())) == 1


def test_ngram_hashes_are_per_text_and_stable():
    rows_a, hashes_a = ngram_hashes(["a b c d", "b c d e"], "words", 3)
    assert rows_a.tolist() == [0, 0, 1, 1]
    assert hashes_a[1] == hashes_a[2]  # "b c d" in both texts
    rows_b, hashes_b = ngram_hashes(["x", "b c d e"], "words", 3)
    assert rows_b.tolist() == [1, 1] and hashes_b.tolist() == hashes_a[2:].tolist()
    assert ngram_hashes(["ab"], "words", 3)[0].size == 0
    assert ngram_hashes(["ab"], "words", 3, whole_short=True)[0].tolist() == [0]
    assert ngram_hashes(["你好吗"], "chars", 2)[1].size == 2


def test_hash_set_matches_a_python_set_through_growth():
    rng = np.random.default_rng(0)
    index, reference = HashSet64(capacity=16), set()
    for _ in range(20):
        keys = rng.integers(1, 2**63, 300, dtype=np.uint64)
        keys = np.concatenate([keys, keys[:50]])  # repeats within one insert
        index.add(keys)
        reference.update(keys.tolist())
    probes = np.concatenate(
        [np.array(sorted(reference), np.uint64), rng.integers(1, 2**63, 500, dtype=np.uint64)]
    )
    assert index.contains(probes).tolist() == [int(key) in reference for key in probes.tolist()]
    assert len(index) == len(reference)
    assert index.nbytes <= 4 * 8 * len(reference)  # at least a quarter full


def test_lsh_parameters_put_the_s_curve_at_the_threshold():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows_per_band = lsh_params(threshold, 128)
        assert bands * rows_per_band <= 128
        assert 0.2 < detection_probability(threshold, bands, rows_per_band) < 0.8
        assert detection_probability(min(threshold + 0.15, 1.0), bands, rows_per_band) > 0.85
        assert detection_probability(threshold - 0.3, bands, rows_per_band) < 0.01


# -- the filter ------------------------------------------------------------------------------------


def test_near_duplicates_go_first_occurrence_stays_and_counts_per_direction():
    base = [
        "The committee will publish its final report on the new railway line next spring.",
        "Heavy rain closed three mountain roads and cut power to several villages overnight.",
        "Farmers in the valley began harvesting rice two weeks earlier than last year.",
    ]
    zh = [
        "委员会将于明年春天发布关于新铁路线的最终报告。",
        "大雨导致三条山路封闭，多个村庄夜间停电。",
        "山谷里的农民比去年提前两周开始收割水稻。",
    ]
    src = [*base, base[0].replace("spring", "summer"), base[1].upper(), "Something else entirely."]
    tgt = [*zh, zh[0].replace("春天", "夏天"), zh[1], "完全是另一回事。"]
    step = NearDedup()
    out = step(rows(src, tgt, ids=[f"r{i}" for i in range(6)]))
    assert out["id"].to_pylist() == ["r0", "r1", "r2", "r5"]
    assert step.stats.by_key["eng_Latn-zho_Hans"]["in"] == 6
    assert step.stats.by_key["eng_Latn-zho_Hans"]["dropped"] == 2
    assert step.stats.by_key["eng_Latn-zho_Hans"]["reasons"] == {NEAR_DUPLICATE: 2}


def test_dedup_is_global_across_batches_and_independent_of_batch_size():
    src = lines(SAMPLE, "eng_Latn")
    tgt = lines(SAMPLE, "zho_Hans")
    rng = random.Random(3)
    vocabulary = sorted({word for line in src for word in line.split()})
    noisy = [replace_words(line, 1, vocabulary, rng) for line in src]
    everything = rows(src + noisy, tgt + tgt, ids=[f"a{i}" for i in range(2 * len(src))])
    kept_by_size = {}
    for size in (1, 7, 50, everything.num_rows):
        step = NearDedup()
        kept = []
        for start in range(0, everything.num_rows, size):
            kept += step(everything.slice(start, size))["id"].to_pylist()
        kept_by_size[size] = kept
    assert len({tuple(kept) for kept in kept_by_size.values()}) == 1
    kept = kept_by_size[1]
    assert kept[: len(src)] == [f"a{i}" for i in range(len(src))]  # every original stays
    assert len(kept) - len(src) <= 0.05 * len(src)  # and nearly every edited copy goes


def test_reversed_pairs_and_other_targets_are_not_duplicates_but_target_field_sees_them():
    english = "The committee will publish its final report on the new railway line next spring."
    french = "Le comité publiera son rapport final sur la nouvelle ligne ferroviaire au printemps."
    chinese = "委员会将于明年春天发布关于新铁路线的最终报告。"
    step = NearDedup()
    assert step(rows([english], [chinese])).num_rows == 1
    assert step(rows([chinese], [english], "zho_Hans", "eng_Latn")).num_rows == 1
    assert step(rows([french], [chinese], "fra_Latn", "zho_Hans")).num_rows == 1
    target_only = NearDedup("target")
    assert target_only(rows([english], [chinese])).num_rows == 1
    assert target_only(rows([french], [chinese], "fra_Latn", "zho_Hans")).num_rows == 0


def test_messages_field_and_rows_without_pair_text():
    ask = [{"role": "user", "content": "Write a short poem about the sea at night, please."}]
    answer = [
        {"role": "assistant", "content": "The sea is dark and the stars are bright above it."}
    ]
    other = [{"role": "assistant", "content": "Mountains stand in silence under a cold grey sky."}]
    batch = rows(
        [None, None, None],
        [None, None, None],
        messages=[ask + answer, ask + answer, ask + other],
        ids=["m0", "m1", "m2"],
    )
    assert NearDedup()(batch)["id"].to_pylist() == ["m0", "m2"]
    assert NearDedup("messages")(batch)["id"].to_pylist() == ["m0", "m2"]


def test_flores_injected_near_duplicates_removed_and_distinct_kept(shared_corpora: Path):
    """The acceptance rates on real Flores-200 dev sentences (eng-zho pairs, 21 words and 42
    characters on average). Measured with the defaults over four seeds: 100% of distinct pairs
    kept; removed: 98% of 1 word + 1 character edits, 98% of 3-word source edits, 95-96% of
    2-character target edits, 89-91% of 1 word + 2 characters (pair Jaccard near 0.8)."""
    folder = shared_corpora / "flores200" / "dev"
    eng, zho = lines(folder, "eng_Latn"), lines(folder, "zho_Hans")
    rng = random.Random(0)
    vocabulary = sorted({word for line in eng for word in line.split()})
    alphabet = sorted({char for line in zho for char in line})
    picked = range(len(eng))  # 997 near duplicates of each kind

    def removed(src: list[str], tgt: list[str]) -> float:
        step = NearDedup()
        assert step(rows(eng, zho)).num_rows >= 0.99 * len(eng)  # 997 distinct pairs
        return 1 - step(rows(src, tgt)).num_rows / len(src)

    one_edit = removed(
        [replace_words(eng[i], 1, vocabulary, rng) for i in picked],
        [replace_chars(zho[i], 1, alphabet, rng) for i in picked],
    )
    assert one_edit >= 0.95
    source_edits = removed(
        [replace_words(eng[i], 3, vocabulary, rng) for i in picked], [zho[i] for i in picked]
    )
    assert source_edits >= 0.95
    target_edits = removed(
        [eng[i] for i in picked], [replace_chars(zho[i], 2, alphabet, rng) for i in picked]
    )
    assert target_edits >= 0.93
    both_edits = removed(
        [replace_words(eng[i], 1, vocabulary, rng) for i in picked],
        [replace_chars(zho[i], 2, alphabet, rng) for i in picked],
    )
    assert both_edits >= 0.85  # Jaccard about 0.8: on the S-curve's shoulder, not above it


# Myanmar script: near dedup takes 10 (Burmese) and 15 (Shan) of 997 distinct dev sentences for
# near-duplicates; known failures found when the shared corpora grew to all 204 languages, kept
# visible (strict xfail) until near dedup's Myanmar shingles are fixed.
NEAR_DEDUP_KNOWN_LOSSES = {"mya_Mymr", "shn_Mymr"}


def _kept_share(shared_corpora: Path, code: str) -> float:
    texts = (shared_corpora / "flores200" / "dev" / f"{code}.dev").read_text("utf-8").splitlines()
    step = NearDedup("source")
    return step(rows(texts, texts, code, "eng_Latn")).num_rows / len(texts)


def test_flores_distinct_sentences_kept_in_every_script(shared_corpora: Path):
    folder = shared_corpora / "flores200" / "dev"
    for path in sorted(folder.glob("*.dev")):
        code = path.name[: -len(".dev")]
        if code in NEAR_DEDUP_KNOWN_LOSSES:
            continue
        assert _kept_share(shared_corpora, code) >= 0.99, code


@pytest.mark.xfail(strict=True, reason="near dedup over-merges distinct Myanmar-script sentences")
@pytest.mark.parametrize("code", sorted(NEAR_DEDUP_KNOWN_LOSSES))
def test_flores_distinct_sentences_known_losses(shared_corpora: Path, code: str):
    assert _kept_share(shared_corpora, code) >= 0.99


def test_memory_is_band_hashes_of_kept_rows():
    src = lines(SAMPLE, "eng_Latn")
    step = NearDedup("source")
    kept = step(rows(src, src)).num_rows
    assert len(step.index) == step.bands * kept
    assert step.bytes_per_kept_row <= 32 * step.bands * 4  # small table: at most 4x the floor


def test_config_and_parameters():
    config = NearDedupConfig.model_validate({"type": "near_dedup", "field": "target", "bands": 16})
    step = NearDedup.from_config(config)
    assert (step.field, step.bands, step.rows, step.threshold) == ("target", 16, 8, 0.7)
    assert (NearDedup().bands, NearDedup().rows) == lsh_params(0.7, 128)
    with pytest.raises(ValidationError):
        NearDedupConfig.model_validate({"type": "near_dedup", "bands": 500})
    with pytest.raises(ValidationError):
        NearDedupConfig.model_validate({"type": "near_dedup", "threshold": 1.5})
    with pytest.raises(ValidationError):
        NearDedupConfig.model_validate({"type": "near_dedup", "ngram": 3})
