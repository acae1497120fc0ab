from __future__ import annotations

import pyarrow as pa
import pytest

from bayling_data.mixture import MixtureConfig, allocate, apply_mixture, target_shares
from bayling_data.schema import INSTRUCTION_SCHEMA

PIVOTS = ["zho_Hans", "eng_Latn"]


def rows(sizes: dict[str, int], task: str = "translation", pivot: str = "eng_Latn") -> pa.Table:
    data: dict[str, list[object]] = {name: [] for name in INSTRUCTION_SCHEMA.names}
    for lang, n in sizes.items():
        for i in range(n):
            data["id"].append(f"{task}-{lang}-{i}")
            data["messages"].append([{"role": "user", "content": "x"}])
            data["task"].append(task)
            src, tgt = (lang, pivot) if i % 2 else (pivot, lang)
            data["direction"].append(f"{src}-{tgt}")
            data["src_lang"].append(src)
            data["tgt_lang"].append(tgt)
            for name in ("prompt_lang", "template_id", "source_corpus", "source_split"):
                data[name].append("x")
            data["source_segment_id"].append(str(i))
    return pa.Table.from_pydict(data, schema=INSTRUCTION_SCHEMA)


def kept_by_language(table: pa.Table, report: dict, task: str = "translation") -> dict[str, int]:
    return {lang: entry["kept"] for lang, entry in report["tasks"][task]["languages"].items()}


SIZES = {"fra_Latn": 40_000, "swh_Latn": 4_000, "yor_Latn": 400, "khm_Khmr": 1_500}


def test_temperature_sampling_meets_the_target_proportions():
    table = rows(SIZES)
    out, report = apply_mixture(
        table, {"translation": 1.0}, MixtureConfig(language_alpha=0.3), PIVOTS, seed=1
    )
    shares = target_shares(SIZES, 0.3)
    kept = kept_by_language(out, report)
    total = sum(kept.values())
    assert total == out.num_rows
    for lang, share in shares.items():
        assert abs(kept[lang] / total - share) <= 0.05 * share
    assert kept["yor_Latn"] >= 0.99 * SIZES["yor_Latn"]  # the scarcest keeps (nearly) all it has


def test_total_and_cap_fill_other_languages_when_one_runs_out():
    table = rows(SIZES)
    config = MixtureConfig(language_alpha=0.3, total=6_000, language_cap=2_500)
    out, report = apply_mixture(table, {"translation": 1.0}, config, PIVOTS, seed=1)
    kept = kept_by_language(out, report)
    assert out.num_rows == 6_000
    assert kept["yor_Latn"] == 400  # ran out: its share went to the others
    assert max(kept.values()) <= 2_500
    capped, _ = apply_mixture(
        table, {"translation": 1.0}, config.model_copy(update={"total": 99_000}), PIVOTS, seed=1
    )
    assert capped.num_rows == 2_500 + 2_500 + 1_500 + 400  # every language at its cap or size


def test_alpha_one_keeps_natural_proportions_and_none_keeps_everything():
    table = rows(SIZES)
    out, _ = apply_mixture(table, {"translation": 1.0}, MixtureConfig(), PIVOTS, seed=1)
    assert out.num_rows == table.num_rows


def test_task_weights_and_direction_quotas():
    table = pa.concat_tables(
        [
            rows({"fra_Latn": 1000}),
            rows({"zho_Hans": 3000}, task="instructions_zh", pivot="zho_Hans"),
        ]
    )
    config = MixtureConfig(direction_quotas={"fra-eng": 100})
    out, report = apply_mixture(
        table, {"translation": 1.0, "instructions_zh": 1.0}, config, PIVOTS, seed=3
    )
    tasks = pa.compute.value_counts(out["task"]).to_pylist()
    counts = {entry["values"]: entry["counts"] for entry in tasks}
    assert counts["instructions_zh"] == 1000
    directions = pa.compute.value_counts(out["direction"]).to_pylist()
    assert {d["values"]: d["counts"] for d in directions}["fra_Latn-eng_Latn"] == 100
    assert report["tasks"]["translation"]["available"] == 1000


def test_sampling_is_deterministic_and_order_free():
    table = rows(SIZES)
    config = MixtureConfig(language_alpha=0.5, total=5_000)
    first, _ = apply_mixture(table, {"translation": 1.0}, config, PIVOTS, seed=7)
    shuffled = table.take(pa.array(list(range(table.num_rows))[::-1]))
    second, _ = apply_mixture(shuffled, {"translation": 1.0}, config, PIVOTS, seed=7)
    assert sorted(first["id"].to_pylist()) == sorted(second["id"].to_pylist())
    third, _ = apply_mixture(table, {"translation": 1.0}, config, PIVOTS, seed=8)
    assert sorted(first["id"].to_pylist()) != sorted(third["id"].to_pylist())


def test_allocate_water_filling():
    shares = {"a": 0.5, "b": 0.5}
    assert allocate({"a": 10, "b": 1000}, shares, 100, None) == {"a": 10, "b": 90}
    assert allocate({"a": 10, "b": 1000}, shares, None, None) == {"a": 10, "b": 10}


def test_bad_direction_quota():
    with pytest.raises(ValueError, match="expected SRC-TGT"):
        MixtureConfig(direction_quotas={"fra": 3})
