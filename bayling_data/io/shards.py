"""Sharded Arrow output that Hugging Face ``datasets`` reads.

The layout is the one ``DatasetDict.save_to_disk`` writes, so ``datasets.load_from_disk(out_dir)``
returns the splits, and each shard is a plain Arrow IPC stream that
``datasets.load_dataset("arrow", data_files=...)`` reads::

    out_dir/
      dataset_dict.json
      manifest.json                      (bayling-data's record of the build)
      train/data-00000-of-00002.arrow
      train/dataset_info.json
      train/state.json
      validation/...

Shards are written with fixed settings and no timestamps, so the same rows give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa


@dataclass(frozen=True)
class ShardInfo:
    file: str
    rows: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


# Arrow's names for the float types that ``datasets`` spells by width.
_FLOAT_DTYPES = {"halffloat": "float16", "float": "float32", "double": "float64"}


def _feature(arrow_type: pa.DataType) -> dict[str, object] | None:
    """``datasets``' feature dict of an Arrow type (``Features.to_dict`` form, datasets >= 4), or
    None for a type this does not know. Written out because importing ``datasets`` for it cost
    0.7-0.8 s of a one-worker build (measured on the bible pair in benchmarks/scale_compare.py);
    tests/test_shards.py checks it against ``datasets`` itself."""
    if pa.types.is_struct(arrow_type):
        fields = {}
        for index in range(arrow_type.num_fields):
            field = arrow_type.field(index)
            fields[field.name] = _feature(field.type)
            if fields[field.name] is None:
                return None
        return fields
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = _feature(arrow_type.value_type)
        kind = "LargeList" if pa.types.is_large_list(arrow_type) else "List"
        return None if inner is None else {"feature": inner, "_type": kind}
    if pa.types.is_fixed_size_list(arrow_type):
        inner = _feature(arrow_type.value_type)
        if inner is None:
            return None
        return {"feature": inner, "length": arrow_type.list_size, "_type": "List"}
    if (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_boolean(arrow_type)
    ):
        dtype = str(arrow_type)
        return {"dtype": _FLOAT_DTYPES.get(dtype, dtype), "_type": "Value"}
    return None


def _features_json(schema: pa.Schema) -> dict[str, object]:
    """The ``datasets`` features of a schema, as ``Features.to_dict`` gives them."""
    features = {field.name: _feature(field.type) for field in schema}
    if any(feature is None for feature in features.values()):
        from datasets import Features  # types not written out above

        return Features.from_arrow_schema(schema).to_dict()
    return features


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n", "utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


BATCH_ROWS = 1000  # rows per record batch inside a shard file, whatever the input's chunking


def _hf_schema(schema: pa.Schema) -> tuple[pa.Schema, dict[str, object]]:
    features = _features_json(schema)
    metadata = {"huggingface": json.dumps({"info": {"features": features}}, ensure_ascii=False)}
    return schema.with_metadata(metadata), features


def split_features(schema: pa.Schema) -> dict[str, object]:
    """The ``datasets`` features a split of this schema is written with."""
    return _hf_schema(schema)[1]


def _tight(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with freshly allocated buffers. Arrow writes a buffer as allocated, and the same
    rows can sit in buffers of different capacity depending on how they were sliced and
    concatenated; copying makes a shard's bytes depend on its rows alone."""
    columns = [pa.concat_arrays([column]) for column in batch.columns]
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def shard_rows(total_rows: int, rows_per_shard: int, first: int, end: int) -> tuple[int, int]:
    """The split's rows (first, end) that its shards ``first`` to ``end`` (exclusive) hold."""
    return min(total_rows, first * rows_per_shard), min(total_rows, end * rows_per_shard)


class SplitWriter:
    """Writes one split as ``data-XXXXX-of-NNNNN.arrow`` shards plus the ``datasets`` metadata,
    from tables handed over in order (a split never needs to be in memory whole).

    The total row count is known in advance (it names the files); rows are re-cut into batches of
    :data:`BATCH_ROWS`, so the bytes depend on the rows alone, not on how they arrived.
    """

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        rows_per_shard: int,
        total_rows: int,
        shards: tuple[int, int] | None = None,
    ):
        self.n_shards = max(1, math.ceil(total_rows / rows_per_shard))
        #: The shards this writer writes (``shards``: a range of them, which several writers can
        #: write at once; :func:`finish_split` then writes the split's metadata). Default: all.
        self.first_shard, self.end_shard = shards or (0, self.n_shards)
        folder.mkdir(parents=True, exist_ok=shards is not None)
        self.folder = folder
        self.schema, self.features = _hf_schema(schema)
        self.rows_per_shard = rows_per_shard
        self.total_rows = total_rows
        start, end = shard_rows(total_rows, rows_per_shard, self.first_shard, self.end_shard)
        self.expected_rows = end - start
        self.shards: list[ShardInfo] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._sink: pa.OSFile | None = None
        self._in_shard = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._pending.append(table.replace_schema_metadata(self.schema.metadata))
            self._pending_rows += table.num_rows
            self._drain(final=False)

    def _drain(self, final: bool) -> None:
        while self._pending_rows:
            if self._writer is None:
                self._open()
            room = min(BATCH_ROWS, self.rows_per_shard - self._in_shard)
            if self._pending_rows < room and not final:
                return
            buffered = pa.concat_tables(self._pending)
            take = min(room, buffered.num_rows)
            batch = buffered.slice(0, take).combine_chunks().to_batches()[0]
            rest = buffered.slice(take)
            self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
            assert self._writer is not None
            self._writer.write_batch(_tight(batch))
            self._in_shard += take
            if self._in_shard == self.rows_per_shard:
                self._close_shard()

    def _open(self) -> None:
        index = self.first_shard + len(self.shards)
        self._name = f"data-{index:05d}-of-{self.n_shards:05d}.arrow"
        self._sink = pa.OSFile(str(self.folder / self._name), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)
        self._in_shard = 0

    def _close_shard(self) -> None:
        assert self._writer is not None and self._sink is not None
        self._writer.close()
        self._sink.close()
        path = self.folder / self._name
        self.shards.append(
            ShardInfo(self._name, self._in_shard, path.stat().st_size, _sha256(path))
        )
        self._writer = self._sink = None

    def close(self) -> list[ShardInfo]:
        self._drain(final=True)
        if self._writer is None and not self.shards and self.total_rows == 0:
            self._open()
            # An empty split still gets one (empty) batch: readers need a chunk to know the type.
            self._writer.write_batch(pa.RecordBatch.from_pylist([], schema=self.schema))  # type: ignore[union-attr]
        if self._writer is not None:
            self._close_shard()
        written = sum(shard.rows for shard in self.shards)
        if written != self.expected_rows or len(self.shards) != self.end_shard - self.first_shard:
            raise RuntimeError(
                f"{self.folder}: wrote {written} rows, expected {self.expected_rows}"
            )
        if (self.first_shard, self.end_shard) == (0, self.n_shards):
            finish_split(self.folder, self.features, self.shards)
        return self.shards


def finish_split(folder: Path, features: dict[str, object], shards: list[ShardInfo]) -> None:
    """A split's ``datasets`` metadata, once all its shards are written (by one writer or by
    several, each a range of them)."""
    fingerprint = hashlib.sha256("".join(s.sha256 for s in shards).encode()).hexdigest()
    _write_json(
        folder / "state.json",
        {
            "_data_files": [{"filename": shard.file} for shard in shards],
            "_fingerprint": fingerprint[:16],
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": folder.name,
        },
    )
    _write_json(
        folder / "dataset_info.json",
        {"citation": "", "description": "", "features": features, "homepage": "", "license": ""},
    )


def write_split(table: pa.Table, folder: Path, rows_per_shard: int) -> list[ShardInfo]:
    """Write one split as ``data-XXXXX-of-NNNNN.arrow`` shards plus the ``datasets`` metadata."""
    writer = SplitWriter(folder, table.schema, rows_per_shard, table.num_rows)
    writer.write(table)
    return writer.close()


def write_dataset_dict(out_dir: Path, splits: list[str]) -> None:
    _write_json(out_dir / "dataset_dict.json", {"splits": splits})


def split_files(out_dir: Path, split: str) -> list[Path]:
    """A split's shard files, in order, as its ``state.json`` lists them."""
    state = json.loads((out_dir / split / "state.json").read_text("utf-8"))
    return [out_dir / split / entry["filename"] for entry in state["_data_files"]]


def iter_shard_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """One shard's record batches, memory-mapped: a batch's buffers are pages of the file, not
    copies, and the mapping goes when the shard is done, so reading a split of any size holds
    about a shard's pages at a time. Use each batch before asking for the next shard's."""
    with pa.memory_map(str(path), "r") as source:
        yield from pa.ipc.open_stream(source)


def iter_split_batches(out_dir: Path, split: str) -> Iterator[pa.RecordBatch]:
    """A split's record batches, shard after shard (see :func:`iter_shard_batches`)."""
    for path in split_files(out_dir, split):
        yield from iter_shard_batches(path)


def split_schema(out_dir: Path, split: str) -> pa.Schema:
    """The schema of a split's shards (its first shard's, ``huggingface`` metadata included)."""
    with pa.memory_map(str(split_files(out_dir, split)[0]), "r") as source:
        return pa.ipc.open_stream(source).schema


def read_split(out_dir: Path, split: str) -> pa.Table:
    """Read a split's shards back with pyarrow alone (no ``datasets`` needed). The whole split
    is in memory: commands that read a build (report, publish, export) stream
    :func:`iter_split_batches` instead."""
    tables = []
    for path in split_files(out_dir, split):
        with pa.OSFile(str(path), "rb") as source:
            tables.append(pa.ipc.open_stream(source).read_all())
    return pa.concat_tables(tables)
