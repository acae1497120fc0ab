"""The mixture is planned before rows are made: the tasks make only what the plan can keep, and
the output is the same bytes as making every candidate and applying the same plan."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import REPO, run_cli

from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe
from bayling_data.tasks.base import CHUNK_ROWS
from bayling_data.tasks.translation import TranslationTask

MIX_RECIPE = REPO / "recipes" / "bayling2_mix.yaml"
INPROCESS = "execution.executor=inprocess"


def build(out: Path, *overrides: str) -> dict:
    run_build(load_recipe(MIX_RECIPE, [f"output.dir={out}", INPROCESS, *overrides]))
    return json.loads((out / "manifest.json").read_text("utf-8"))


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.arrow"))}


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["mixture.total=400", "mixture.language_alpha=0.5", "mixture.language_cap=12"],
        ["mixture.total=300", "mixture.direction_quotas={fra_Latn-zho_Hans: 2}"],
    ],
    ids=["proportions", "total-alpha-cap", "direction-quotas"],
)
def test_planned_build_makes_fewer_rows_and_the_same_bytes(tmp_path: Path, overrides):
    planned = build(tmp_path / "planned", *overrides)
    everything = build(tmp_path / "everything", *overrides, "execution.plan_mixture=false")
    assert shard_bytes(tmp_path / "planned") == shard_bytes(tmp_path / "everything")
    assert planned["splits"] == everything["splits"]
    made = sum(t["generated"] for t in planned["mixture"]["tasks"].values())
    made_all = sum(t["generated"] for t in everything["mixture"]["tasks"].values())
    kept = sum(t["kept"] for t in planned["mixture"]["tasks"].values())
    assert kept > 0 and made < made_all
    for task in planned["mixture"]["tasks"].values():
        assert task["kept"] <= task["generated"] <= task["available"]


def test_a_group_the_filters_left_short_is_made_again(tmp_path: Path):
    """A ratio filter that drops most rows leaves the first round short of its quotas: a
    second round with higher limits makes up for it, and the bytes still match."""
    strict = ["filters.6.max_ratio=1.15", "mixture.total=600"]
    planned = build(tmp_path / "planned", *strict)
    build(tmp_path / "everything", *strict, "execution.plan_mixture=false")
    assert planned["mixture"]["rounds"] >= 2
    assert shard_bytes(tmp_path / "planned") == shard_bytes(tmp_path / "everything")


def test_the_task_that_caps_the_mixture_is_named(tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli("build", str(MIX_RECIPE), "--set", f"output.dir={out}", "--set", INPROCESS)
    assert result.returncode == 0, result.stderr
    notes = json.loads((out / "manifest.json").read_text("utf-8"))["mixture"]["notes"]
    assert len(notes) == 1 and notes[0].startswith("mixture: instructions_zh caps the mixture")
    assert "30 rows" in notes[0] and "could reach" in notes[0]
    summary = " ".join(result.stderr.split())
    assert "note: mixture: instructions_zh caps the mixture at" in summary


def test_a_total_the_sources_cannot_fill_is_explained(tmp_path: Path):
    manifest = build(tmp_path / "out", "mixture.total=100000")
    notes = manifest["mixture"]["notes"]
    assert any(
        n.startswith("mixture: total 100,000 asks 43,000 rows of instructions_zh") for n in notes
    )
    assert any("these sources reach" in n and "instructions_zh sets it" in n for n in notes)


def test_segment_tasks_hand_rows_on_in_chunks():
    """A batch that makes more than CHUNK_ROWS rows comes out in several chunks, the same rows
    in the same order as the whole batch."""
    codes = ["fra_Latn", "deu_Latn", "spa_Latn", "ita_Latn", "por_Latn", "nld_Latn"]
    n = CHUNK_ROWS // 10
    columns = {
        "corpus": ["c"] * n,
        "split": ["dev"] * n,
        "segment_id": [str(i) for i in range(n)],
        "doc_id": [None] * n,
    }
    for code in ["zho_Hans", "eng_Latn", *codes]:
        columns[code] = [f"{code} text {i}" for i in range(n)]
    batch = pa.RecordBatch.from_pydict(columns)
    task = TranslationTask(["zho_Hans", "eng_Latn"], seed=3)
    chunks = list(task.chunks(batch))
    per_segment = len(task.pairs(batch.schema.names[4:]))
    assert len(chunks) > 1 and all(c.num_rows < CHUNK_ROWS + per_segment for c in chunks)
    whole = TranslationTask(["zho_Hans", "eng_Latn"], seed=3).process(batch)
    assert pa.Table.from_batches(chunks).equals(pa.Table.from_batches([whole]))
    assert task.stats.rows_in == n and task.stats.rows_out == whole.num_rows
