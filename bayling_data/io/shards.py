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


def _features_json(schema: pa.Schema) -> dict[str, object]:
    from datasets import Features

    return Features.from_arrow_schema(schema).to_dict()


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n", "utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_split(table: pa.Table, folder: Path, rows_per_shard: int) -> list[ShardInfo]:
    """Write one split as ``data-XXXXX-of-NNNNN.arrow`` shards plus the ``datasets`` metadata."""
    folder.mkdir(parents=True, exist_ok=False)
    features = _features_json(table.schema)
    schema = table.schema.with_metadata(
        {"huggingface": json.dumps({"info": {"features": features}}, ensure_ascii=False)}
    )
    table = table.replace_schema_metadata(schema.metadata)
    n_shards = max(1, math.ceil(table.num_rows / rows_per_shard))
    shards = []
    for index in range(n_shards):
        name = f"data-{index:05d}-of-{n_shards:05d}.arrow"
        part = table.slice(index * rows_per_shard, rows_per_shard)
        path = folder / name
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            batches = part.to_batches(max_chunksize=1000)
            # An empty split still gets one (empty) batch: readers need a chunk to know the type.
            for batch in batches or [pa.RecordBatch.from_pylist([], schema=schema)]:
                writer.write_batch(batch)
        shards.append(ShardInfo(name, part.num_rows, path.stat().st_size, _sha256(path)))
    fingerprint = hashlib.sha256("".join(s.sha256 for s in shards).encode()).hexdigest()[:16]
    _write_json(
        folder / "state.json",
        {
            "_data_files": [{"filename": shard.file} for shard in shards],
            "_fingerprint": fingerprint,
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
    return shards


def write_dataset_dict(out_dir: Path, splits: list[str]) -> None:
    _write_json(out_dir / "dataset_dict.json", {"splits": splits})


def read_split(out_dir: Path, split: str) -> pa.Table:
    """Read a split's shards back with pyarrow alone (no ``datasets`` needed)."""
    state = json.loads((out_dir / split / "state.json").read_text("utf-8"))
    tables = []
    for entry in state["_data_files"]:
        with pa.OSFile(str(out_dir / split / entry["filename"]), "rb") as source:
            tables.append(pa.ipc.open_stream(source).read_all())
    return pa.concat_tables(tables)
