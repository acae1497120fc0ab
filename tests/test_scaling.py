"""Shard-parallel builds: the executor, the worker count and interruptions never change bytes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import SAMPLE_RECIPE, InterruptingExecutor

from bayling_data.errors import BaylingError
from bayling_data.executors import make_executor
from bayling_data.filters.dedup import InstructionDedup, PairDedup, RowDedup, SegmentDedup
from bayling_data.filters.global_filter import slot_masks
from bayling_data.filters.near_dedup import NearDedup
from bayling_data.io.workdir import work_dir_for
from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe

# Every kind of filter, global steps on both sides of templating, item tasks and a mixture.
EVERY_FILTER_RECIPE = """
name: every_filter
seed: 7
batch_segments: 4
pivot_languages: [zho_Hans, eng_Latn]
target_languages: flores200
sources:
  - {type: flores, path: "sample:flores200"}
tasks:
  - {type: translation, weight: 4, system_prompt: 0.2}
  - {type: chat, weight: 1, modes: [chain, document], max_turns: 3}
  - {type: comprehension, weight: 1}
  - {type: pivot_instructions, name: instructions_zh, weight: 3, path: "sample:instructions_zh",
     format: alpaca, language: zho_Hans}
  - {type: pivot_qa, weight: 1, path: "sample:qa"}
filters:
  - {type: normalize}
  - type: decontaminate
    eval_sets: [{type: tsv, path: "EVAL_SET", columns: {eng_Latn: 0, fra_Latn: 1},
                 name: held-out}]
    methods: [exact, ngram]
  - {type: dedup, level: row}
  - {type: lid}
  - {type: length, unit: chars, min: 3, max: 2000}
  - {type: dedup, level: segment}
  - {type: ratio, max_ratio: 3.0}
  - {type: dedup, level: pair}
  - {type: near_dedup, field: target, threshold: 0.8}
  - {type: dedup, level: instruction}
mixture: {language_alpha: 0.5, total: 100000}
output: {dir: out/every_filter, rows_per_shard: 700, validation_fraction: 0.1, shuffle: true}
"""


@pytest.fixture(scope="module")
def every_filter_recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recipe")
    sample = Path(str(resources.files("bayling_data") / "data" / "sample_flores" / "dev"))
    english = (sample / "eng_Latn.dev").read_text("utf-8").splitlines()[:4]
    french = (sample / "fra_Latn.dev").read_text("utf-8").splitlines()[:4]
    held_out = folder / "held_out.tsv"
    held_out.write_text(
        "".join(f"{e}\t{f}\n" for e, f in zip(english, french, strict=True)), "utf-8"
    )
    path = folder / "every_filter.yaml"
    path.write_text(EVERY_FILTER_RECIPE.replace("EVAL_SET", str(held_out)), "utf-8")
    return path


def _digest(out: Path) -> dict[str, str]:
    """sha256 of every shard file and of the manifest (without the output folder's path)."""
    found = {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    del manifest["recipe"]["output"]["dir"]
    found["manifest"] = hashlib.sha256(json.dumps(manifest).encode()).hexdigest()
    return found


def _build(recipe: Path, out: Path, *overrides: str, executor=None) -> dict[str, str]:
    run_build(load_recipe(recipe, [f"output.dir={out}", *overrides]), executor=executor)
    return _digest(out)


@pytest.fixture(scope="module")
def reference(every_filter_recipe: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One process, the whole sample in one work shard."""
    out = tmp_path_factory.mktemp("reference") / "out"
    digest = _build(every_filter_recipe, out, "execution.executor=inprocess")
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    return {"digest": digest, "manifest": manifest}


def test_every_filter_recipe_exercises_every_global_step(reference: dict) -> None:
    funnel = {entry["name"]: entry for entry in reference["manifest"]["funnel"]}
    for name in ("dedup_row", "dedup_segment", "dedup_pair", "near_dedup", "dedup"):
        assert name in funnel
    assert funnel["decontaminate"]["rows_in"] > 0
    assert sum(e["dropped"] for e in funnel["decontaminate"]["by_key"].values()) > 0
    assert reference["manifest"]["splits"]["train"]["rows"] > 1000
    assert len(reference["manifest"]["splits"]["train"]["shards"]) > 1


def test_one_worker_and_two_workers_give_identical_bytes(
    every_filter_recipe: Path, reference: dict, tmp_path: Path
) -> None:
    small = "execution.shard_segments=12"
    one = _build(every_filter_recipe, tmp_path / "one", small, "execution.executor=inprocess")
    two = _build(
        every_filter_recipe,
        tmp_path / "two",
        small,
        "execution.executor=processes",
        "execution.workers=2",
        "execution.partitions=3",
    )
    assert one == reference["digest"]
    assert two == reference["digest"]


def test_ray_gives_identical_bytes(
    every_filter_recipe: Path, reference: dict, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    digest = _build(
        every_filter_recipe,
        tmp_path / "ray",
        "execution.shard_segments=12",
        "execution.executor=ray",
        "execution.workers=2",
    )
    assert digest == reference["digest"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bayling_data.cli", *args]


@pytest.mark.parametrize("kill_at", ["leg-0-shard-00003", "decide-2-part-000", "mixture"])
def test_a_build_killed_and_resumed_matches_an_uninterrupted_one(
    every_filter_recipe: Path, reference: dict, tmp_path: Path, kill_at: str
) -> None:
    out = tmp_path / "out"
    args = [
        "build",
        str(every_filter_recipe),
        "--quiet",
        "--set",
        f"output.dir={out}",
        "--set",
        "execution.shard_segments=8",
        "--executor",
        "inprocess",
    ]
    marker = work_dir_for(out) / "done" / f"{kill_at}.done"
    process = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert process.poll() is None, "the build ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists(), "a killed build must not leave output that looks finished"
    finished = len(list((work_dir_for(out) / "done").glob("*.done")))
    assert finished >= 2

    resumed = subprocess.run(_cli(*args, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _digest(out) == reference["digest"]
    assert not work_dir_for(out).exists()


def test_resume_continues_and_refuses_another_cut_or_recipe(
    every_filter_recipe: Path, reference: dict, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    overrides = [f"output.dir={out}", "execution.shard_segments=10"]
    with pytest.raises(KeyboardInterrupt):
        run_build(load_recipe(every_filter_recipe, overrides), executor=InterruptingExecutor(5))
    state = json.loads((work_dir_for(out) / "state.json").read_text("utf-8"))
    assert state["shard_segments"] == 10 and state["shards"] > 5

    other_cut = load_recipe(every_filter_recipe, [*overrides, "execution.shard_segments=20"])
    with pytest.raises(BaylingError, match=r"cut into \d+ work shards of 10 segments"):
        run_build(other_cut, resume=True)
    other_recipe = load_recipe(every_filter_recipe, [*overrides, "seed=8"])
    with pytest.raises(BaylingError, match="another recipe"):
        run_build(other_recipe, resume=True)
    assert work_dir_for(out).exists(), "a refused resume leaves the unfinished build alone"

    # Resuming runs only what is left: the five finished work items are not run again.
    counting = InterruptingExecutor(10_000)
    run_build(load_recipe(every_filter_recipe, overrides), resume=True, executor=counting)
    assert _digest(out) == reference["digest"]
    fresh = InterruptingExecutor(10_000)
    run_build(load_recipe(every_filter_recipe, overrides), executor=fresh)
    assert (10_000 - counting.budget) == (10_000 - fresh.budget) - 5


def test_a_single_many_language_source_is_cut_into_several_work_shards(
    shared_corpora: Path, tmp_path: Path
) -> None:
    """Issue 16: the full Flores-200 dev set (997 segments in 204 languages) was one work shard,
    so a resume redid everything. With the default ``shard_cells`` every batch of about 321
    segments (whole documents) is a shard of its own, and a resume redoes only those in flight."""
    out = tmp_path / "out"
    overrides = [f"sources.0.path={shared_corpora / 'flores200'}", f"output.dir={out}"]
    with pytest.raises(KeyboardInterrupt):
        run_build(load_recipe(SAMPLE_RECIPE, overrides), executor=InterruptingExecutor(0))
    read = json.loads((work_dir_for(out) / "done" / "read.done").read_text("utf-8"))
    segments = [shard["segments"] for shard in read["shards"]]
    assert len(segments) == 4 and sum(segments) == 997
    assert max(segments) <= 65_536 // 204 + 10  # whole documents: a few over one batch


def test_resume_through_the_cli_reports_a_refusal_in_one_line(
    every_filter_recipe: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    overrides = [f"output.dir={out}", "execution.shard_segments=10"]
    with pytest.raises(KeyboardInterrupt):
        run_build(load_recipe(every_filter_recipe, overrides), executor=InterruptingExecutor(3))
    result = subprocess.run(
        _cli("build", str(every_filter_recipe), "--resume", "--quiet", "--set",
             f"output.dir={out}", "--set", "execution.shard_segments=30"),
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "execution.shard_segments" in result.stderr and "Traceback" not in result.stderr


def test_executor_choices_are_checked() -> None:
    with pytest.raises(BaylingError, match="workers"):
        make_executor("processes", 0)
    with pytest.raises(BaylingError, match="--executor ray"):
        make_executor("processes", 2, ray_address="auto")
    assert make_executor("auto", 4, work_items=1).name == "inprocess"


# --- the global filters' shard-level steps agree with the one-process path ------------------------


def _instruction_batches() -> list[pa.RecordBatch]:
    texts = ["a b c d e f", "the cat sat on the mat", "a b c d e f", "the cat sat on a mat", "z"]
    batches = []
    for shard in range(3):
        rows = [texts[(shard + i) % len(texts)] for i in range(5)]
        batches.append(
            pa.RecordBatch.from_pydict(
                {
                    "direction": ["eng_Latn-fra_Latn"] * 5,
                    "src_lang": ["eng_Latn"] * 5,
                    "tgt_lang": ["fra_Latn"] * 5,
                    "prompt_lang": ["eng_Latn"] * 5,
                    "src_text": rows,
                    "tgt_text": [f"{t} !" for t in rows],
                    "messages": [
                        [{"role": "user", "content": t}, {"role": "assistant", "content": "x"}]
                        for t in rows
                    ],
                }
            )
        )
    return batches


def _segment_batches() -> list[pa.RecordBatch]:
    meta = {"corpus": ["c"] * 4, "split": ["dev"] * 4, "doc_id": [None] * 4}
    return [
        pa.RecordBatch.from_pydict(
            {**meta, "segment_id": ["1", "2", "3", "4"], "eng_Latn": ["A", "B", "A", None],
             "fra_Latn": ["a", "b", "c", "a"]}
        ),
        pa.RecordBatch.from_pydict(
            {**meta, "segment_id": ["5", "6", "7", "8"], "eng_Latn": ["B", "C", "A", "D"],
             "fra_Latn": ["b", "c", "x", "a"]}
        ),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "batches"),
    [
        (lambda: SegmentDedup(), _segment_batches),
        (lambda: RowDedup(), _segment_batches),
        (lambda: PairDedup(), _instruction_batches),
        (lambda: InstructionDedup(), _instruction_batches),
        (lambda: NearDedup("pair", threshold=0.5, num_perm=32), _instruction_batches),
    ],
)
def test_shard_level_steps_keep_what_one_process_keeps(make, batches) -> None:
    sequential = make()
    expected = [sequential(batch) for batch in batches()]

    sharded = make()
    decided = sharded.decide(iter([(i, sharded.keys(b)) for i, b in enumerate(batches())]))
    shard_of = decided.column("shard").to_numpy()
    got = []
    for index, batch in enumerate(batches()):
        mine = decided.filter(pa.array(shard_of == index))
        got.append(sharded.timed(sharded.apply, batch, slot_masks(mine, batch.num_rows)))
    for want, have in zip(expected, got, strict=True):
        assert have.to_pylist() == want.to_pylist()
    assert sharded.stats.to_dict() == sequential.stats.to_dict()
    assert sharded.stats.dropped > 0


def test_a_process_pool_runs_items_elsewhere_and_answers_in_order() -> None:
    with make_executor("processes", 2) as executor:
        answers = executor.map(_square_and_pid, [3, 1, 2, 5])
    assert [square for square, _ in answers] == [9, 1, 4, 25]
    assert os.getpid() not in {pid for _, pid in answers}


def _square_and_pid(value: int) -> tuple[int, int]:
    return value * value, os.getpid()


def test_the_shard_size_does_not_change_the_bytes_of_an_unshuffled_build(tmp_path: Path) -> None:
    from conftest import SAMPLE_RECIPE

    common = ["output.shuffle=false", "batch_segments=4", "execution.executor=inprocess"]
    small = _build(SAMPLE_RECIPE, tmp_path / "small", *common, "execution.shard_segments=4")
    large = _build(SAMPLE_RECIPE, tmp_path / "large", *common, "execution.shard_segments=1000")
    assert small == large


def test_routing_in_many_small_flushes_does_not_change_the_bytes(
    every_filter_recipe: Path, reference: dict, tmp_path: Path, monkeypatch
) -> None:
    """A route item that writes its buckets after every leg batch (a tiny buffer) gives the
    same bytes as one that gathers the whole shard first; shuffled and not."""
    from conftest import SAMPLE_RECIPE

    from bayling_data import legs

    common = ["execution.executor=inprocess", "batch_segments=4"]
    unshuffled = [*common, "output.shuffle=false"]
    gathered = _build(SAMPLE_RECIPE, tmp_path / "gathered", *unshuffled)
    monkeypatch.setattr(legs, "ROUTE_BUFFER_BYTES", 1)
    flushed = _build(SAMPLE_RECIPE, tmp_path / "flushed", *unshuffled)
    assert flushed == gathered
    digest = _build(every_filter_recipe, tmp_path / "out", *common)
    assert digest == reference["digest"]


def test_a_second_build_of_the_same_output_is_refused_while_one_runs(tmp_path: Path) -> None:
    import fcntl

    from conftest import SAMPLE_RECIPE

    out = tmp_path / "out"
    lock = work_dir_for(out).with_name(f"{work_dir_for(out).name}.lock")
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(BaylingError, match="another build of this output is running"):
            run_build(load_recipe(SAMPLE_RECIPE, [f"output.dir={out}"]))
    run_build(load_recipe(SAMPLE_RECIPE, [f"output.dir={out}"]))
    assert (out / "manifest.json").exists() and not lock.exists()


def test_bounded_decide_and_mixture_budgets_do_not_change_the_bytes(
    every_filter_recipe: Path, reference: dict, tmp_path: Path, monkeypatch
) -> None:
    """Held to a few keys a decide step (dedup slices its partitions) and a few candidates a
    mixture selection (several radix passes), the build writes the same bytes."""
    from bayling_data import legs, selection

    monkeypatch.setattr(legs, "DECIDE_KEYS", 5)
    monkeypatch.setattr(selection, "GATHER_ROWS", 7)
    monkeypatch.setattr(selection, "HISTOGRAM_CELLS", 16)
    digest = _build(
        every_filter_recipe,
        tmp_path / "out",
        "execution.executor=inprocess",
        "execution.shard_segments=8",
        "execution.partitions=2",
    )
    assert digest == reference["digest"]
