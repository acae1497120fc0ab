"""The shards' ``datasets`` features, written without importing ``datasets``, are the ones
``datasets`` itself derives from the schema."""

from __future__ import annotations

import pyarrow as pa
import pytest
from datasets import Features

from bayling_data.io.shards import _feature, _features_json
from bayling_data.schema import INSTRUCTION_SCHEMA, WORK_INSTRUCTION_SCHEMA

KNOWN_TYPES = [
    pa.string(),
    pa.large_string(),
    pa.int8(),
    pa.int64(),
    pa.uint64(),
    pa.float16(),
    pa.float32(),
    pa.float64(),
    pa.bool_(),
    pa.list_(pa.string()),
    pa.large_list(pa.int32()),
    pa.list_(pa.float32(), 4),
    pa.struct([("a", pa.int8()), ("b", pa.list_(pa.string()))]),
    pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
]


@pytest.mark.parametrize("schema", [INSTRUCTION_SCHEMA, WORK_INSTRUCTION_SCHEMA])
def test_instruction_features_match_datasets(schema: pa.Schema) -> None:
    assert _features_json(schema) == Features.from_arrow_schema(schema).to_dict()


@pytest.mark.parametrize("arrow_type", KNOWN_TYPES, ids=str)
def test_each_known_type_matches_datasets(arrow_type: pa.DataType) -> None:
    schema = pa.schema([("x", arrow_type)])
    assert _feature(arrow_type) is not None
    assert _features_json(schema) == Features.from_arrow_schema(schema).to_dict()


def test_other_types_are_left_to_datasets() -> None:
    schema = pa.schema([("when", pa.timestamp("s")), ("text", pa.string())])
    assert _feature(pa.timestamp("s")) is None
    assert _features_json(schema) == Features.from_arrow_schema(schema).to_dict()
