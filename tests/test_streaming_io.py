"""report, publish and export read a build batch by batch: memory bounded by design.

No memory is measured here (``benchmarks/io_memory.py`` does that). Instead: at most one shard
is memory-mapped at a time, what the readers keep does not grow when the same rows come four
times over, and the streamed Parquet files are the bytes that writing the split from memory gave.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_RECIPE

from bayling_data.io import publish as publish_module
from bayling_data.io.export import export
from bayling_data.io.html_report import _char_sizes, _collect, write_report
from bayling_data.io.publish import SplitCensus, _parquet_parts, stage
from bayling_data.io.shards import iter_split_batches, read_split
from bayling_data.pipeline import run_build
from bayling_data.progress import Progress
from bayling_data.recipe import load_recipe

TIMES = 4


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample build cut into many small shards."""
    out = tmp_path_factory.mktemp("streaming") / "out"
    run_build(load_recipe(SAMPLE_RECIPE, [f"output.dir={out}", "output.rows_per_shard=300"]))
    return out


def _repeated(out: Path, to: Path, times: int) -> Path:
    """A build whose splits list every shard ``times`` times: the same rows, ``times`` as many."""
    shutil.copytree(out, to)
    manifest = json.loads((to / "manifest.json").read_text("utf-8"))
    for split, info in manifest["splits"].items():
        state_path = to / split / "state.json"
        state = json.loads(state_path.read_text("utf-8"))
        state["_data_files"] = state["_data_files"] * times
        state_path.write_text(json.dumps(state), "utf-8")
        info["shards"] = info["shards"] * times
        info["rows"] *= times
    (to / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    return to


@pytest.fixture(scope="module")
def big(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _repeated(build, tmp_path_factory.mktemp("big") / "out", TIMES)


def test_one_shard_mapped_at_a_time(big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real = pa.memory_map
    open_now, most, opened = [0], [0], [0]

    class Counted:
        def __init__(self, *args: object):
            self.file = real(*args)

        def __enter__(self) -> pa.MemoryMappedFile:
            open_now[0] += 1
            opened[0] += 1
            most[0] = max(most[0], open_now[0])
            return self.file.__enter__()

        def __exit__(self, *exc: object) -> None:
            open_now[0] -= 1
            self.file.__exit__(*exc)

    monkeypatch.setattr(pa, "memory_map", Counted)
    shards = sum(len(list((big / s).glob("*.arrow"))) for s in ("train", "validation")) * TIMES
    for run in (
        lambda: write_report(big, tmp_path / "report"),
        lambda: stage(big, "org/name", tmp_path / "staged"),
        lambda: export(big, "openai", tmp_path / "exported"),
        lambda: export(big, "parquet", tmp_path / "parquet"),
    ):
        opened[0] = most[0] = 0
        run()
        assert most[0] == 1 and open_now[0] == 0
        assert opened[0] >= shards


def test_what_the_readers_keep_does_not_grow(build: Path, big: Path):
    manifest = json.loads((build / "manifest.json").read_text("utf-8"))
    once = _collect(build, manifest, None, Progress.off())
    many = _collect(
        big, json.loads((big / "manifest.json").read_text("utf-8")), None, Progress.off()
    )
    for key in ("rows_by_language", "tokens_by_language", "rows_by_task", "rows_by_direction"):
        assert many[key] == {k: v * TIMES for k, v in once[key].items()}
    for task, lengths in once["lengths"].items():
        assert many["lengths"][task] == {n: c * TIMES for n, c in lengths.items()}
    assert many["samples"] == once["samples"]
    for split in ("train", "validation"):
        small, large = SplitCensus(), SplitCensus()
        for batch in iter_split_batches(build, split):
            small.add(batch)
        for batch in iter_split_batches(big, split):
            large.add(batch)
        assert large.rows == small.rows * TIMES
        assert large.languages == small.languages and large.templates == small.templates
        assert large.task_rows == {t: n * TIMES for t, n in small.task_rows.items()}


def _in_memory_parts(table: pa.Table, n: int, row_group: int) -> list[bytes]:
    """What ``publish`` wrote before it streamed: the whole split, sliced."""
    rows_per = -(-table.num_rows // n) or 1
    parts = []
    for index in range(n):
        sink = pa.BufferOutputStream()
        pq.write_table(
            table.slice(index * rows_per, rows_per),
            sink,
            compression="zstd",
            row_group_size=row_group,
        )
        parts.append(sink.getvalue().to_pybytes())
    return parts


def _streamed_parts(
    batches: list[pa.RecordBatch], schema: pa.Schema, n: int, folder: Path
) -> list[bytes]:
    paths = [folder / f"part-{i}.parquet" for i in range(n)]
    rows = sum(batch.num_rows for batch in batches)
    _parquet_parts(iter(batches), schema, paths, -(-rows // n) or 1, SplitCensus(), lambda _n: None)
    return [path.read_bytes() for path in paths]


def test_streamed_parquet_is_the_in_memory_bytes(
    big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Row groups smaller than a shard and not aligned with its batches, parts across shards.
    monkeypatch.setattr(publish_module, "ROW_GROUP_ROWS", 333)
    table = read_split(big, "train")
    batches = list(iter_split_batches(big, "train"))
    for n in (1, 3, 7):
        folder = tmp_path / f"n{n}"
        folder.mkdir()
        streamed = _streamed_parts(batches, table.schema, n, folder)
        assert streamed == _in_memory_parts(table, n, 333), n


@pytest.mark.parametrize(
    ("rows", "batch_rows", "files", "row_group"),
    [(0, 1, 1, 10), (4, 1, 3, 10), (1000, 7, 3, 50), (100, 100, 2, 25)],
)
def test_streamed_parquet_edge_cases(
    rows: int,
    batch_rows: int,
    files: int,
    row_group: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(publish_module, "ROW_GROUP_ROWS", row_group)
    schema = pa.schema([("n", pa.int64()), ("s", pa.string())], metadata={"k": "v"})
    whole = pa.table({"n": list(range(rows)), "s": [f"row {i}" for i in range(rows)]}, schema)
    batches = whole.to_batches(max_chunksize=batch_rows) or [
        pa.RecordBatch.from_pylist([], schema=schema)
    ]
    table = pa.Table.from_batches(batches, schema)
    assert _streamed_parts(batches, schema, files, tmp_path) == _in_memory_parts(
        table, files, row_group
    )


def test_character_lengths_on_the_column():
    rows = [
        [{"role": "user", "content": "héllo"}, {"role": "assistant", "content": "世界"}],
        [],
        [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}],
        [{"role": "system", "content": "s"}],
    ]
    kind = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    sizes = _char_sizes(pa.array(rows, kind))
    expected = ["\n".join(m["content"] or "" for m in messages) for messages in rows]
    assert sizes.tolist() == [len(text) for text in expected]
