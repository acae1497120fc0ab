"""The Arrow schemas that pass between stages.

Two record kinds flow through a build:

* **segment batches** (sources -> segment filters -> task generators): one row per aligned segment,
  the metadata columns below plus one nullable string column per language, named by its Flores-200
  code. A null cell means "this segment has no text in that language" (absent in the corpus, or
  dropped by a filter), so a multi-way corpus and a bilingual one share one shape.
* **instruction batches** (task generators -> instruction filters -> shard writer): the output
  schema, :data:`INSTRUCTION_SCHEMA`, documented in ``docs/formats.md``, plus the work columns
  of :data:`WORK_INSTRUCTION_SCHEMA` that stages use and the writer leaves out.
"""

from __future__ import annotations

import pyarrow as pa

# Metadata columns of a segment batch; every other column is a language (Flores-200 code).
SEGMENT_META_FIELDS = (
    pa.field("corpus", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("segment_id", pa.string(), nullable=False),
    pa.field("doc_id", pa.string()),
)
SEGMENT_META_COLUMNS = tuple(field.name for field in SEGMENT_META_FIELDS)


def segment_schema(languages: list[str]) -> pa.Schema:
    """Schema of a segment batch holding the given languages (Flores-200 codes)."""
    return pa.schema([*SEGMENT_META_FIELDS, *(pa.field(code, pa.string()) for code in languages)])


def segment_languages(data: pa.RecordBatch | pa.Table | pa.Schema) -> list[str]:
    """The language columns of a segment batch (or its schema), in column order."""
    schema = data if isinstance(data, pa.Schema) else data.schema
    return [name for name in schema.names if name not in SEGMENT_META_COLUMNS]


MESSAGE_TYPE = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])

INSTRUCTION_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("messages", pa.list_(MESSAGE_TYPE), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("direction", pa.string(), nullable=False),
        pa.field("src_lang", pa.string(), nullable=False),
        pa.field("tgt_lang", pa.string(), nullable=False),
        pa.field("prompt_lang", pa.string(), nullable=False),
        pa.field("template_id", pa.string(), nullable=False),
        pa.field("source_corpus", pa.string(), nullable=False),
        pa.field("source_split", pa.string(), nullable=False),
        pa.field("source_segment_id", pa.string(), nullable=False),
    ]
)


# Columns that travel with instruction batches between stages but are not written: the plain
# source and target sentence of a translation-like row, so that pair filters (length ratio, pair
# dedup, near dedup, decontamination) need not parse them back out of the prompt; and the row's
# mixture key (a hash of the seed, the task and the record the row is made from, known before the
# row is rendered, so that a build generates only the rows its mixture plan can keep).
WORK_FIELDS = (
    pa.field("src_text", pa.string()),
    pa.field("tgt_text", pa.string()),
    pa.field("mix_key", pa.uint64()),
)
WORK_INSTRUCTION_SCHEMA = pa.schema([*INSTRUCTION_SCHEMA, *WORK_FIELDS])


def empty_instructions() -> pa.RecordBatch:
    """An instruction batch with no rows (a stage's answer when everything was dropped)."""
    return pa.RecordBatch.from_pylist([], schema=WORK_INSTRUCTION_SCHEMA)
