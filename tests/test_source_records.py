from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bayling_data.errors import CorpusError
from bayling_data.sources import HubSource, JsonlSource, ParquetSource
from bayling_data.sources.records import HubConfig, JsonlConfig, ParquetConfig

ROWS = [
    {"id": "a", "translation": {"de": "Hallo Welt.", "en": "Hello world."}},
    {"id": "b", "translation": {"de": "Ja.", "en": "  "}},
    {"id": "c", "translation": {"de": "Nein.", "en": "No."}},
]


def write_jsonl(path, rows, opener=open):
    with opener(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def test_jsonl_translation_field_learns_the_languages(tmp_path):
    source = JsonlSource(write_jsonl(tmp_path / "wmt.de-en.jsonl", ROWS))
    table = source.to_table()
    assert source.languages == ["deu_Latn", "eng_Latn"]
    assert table["segment_id"].to_pylist() == ["1", "3"]
    assert table["eng_Latn"].to_pylist() == ["Hello world.", "No."]
    assert source.skipped == {"blank eng_Latn": 1}


def test_jsonl_flat_columns_and_id_field(tmp_path):
    rows = [{"uid": 7, "src": "你好", "tgt": "Hello"}, {"uid": 8, "src": "谢谢", "tgt": "Thanks"}]
    path = write_jsonl(tmp_path / "pairs.jsonl.gz", rows, gzip.open)
    config = JsonlConfig(
        type="jsonl", path=str(path), columns={"zh": "src", "en": "tgt"}, id_field="uid"
    )
    table = JsonlSource.from_config(config, None).to_table()
    assert table["zho_Hans"].to_pylist() == ["你好", "谢谢"]
    assert table["segment_id"].to_pylist() == ["7", "8"]


def test_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"translation": {"de": "a", "en": "b"}}\n{oops\n', "utf-8")
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2: invalid JSON"):
        JsonlSource(path).to_table()
    config = JsonlConfig(type="jsonl", path=str(path), columns={"de": "x", "en": "y"})
    path.write_text('{"a": 1}\n', "utf-8")
    with pytest.raises(CorpusError, match="no field 'x'"):
        JsonlSource.from_config(config, None).to_table()


def test_unknown_language_key_names_the_source(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"translation": {"de": "a", "qqx": "b"}}])
    with pytest.raises(CorpusError, match="language 'qqx'"):
        JsonlSource(path)


def test_config_rejects_two_layouts():
    with pytest.raises(ValueError, match="either `columns`"):
        JsonlConfig(type="jsonl", path="x", columns={"de": "a", "en": "b"}, languages=["de"])


def test_parquet_struct_and_languages_subset(tmp_path):
    table = pa.Table.from_pylist(
        [{"translation": {"de": "Hallo", "en": "Hello", "fr": "Bonjour"}}] * 5
    )
    pq.write_table(table, tmp_path / "train-00000.parquet", row_group_size=2)
    config = ParquetConfig(type="parquet", path=str(tmp_path / "*.parquet"), languages=["fr", "en"])
    source = ParquetSource.from_config(config, None)
    out = pa.Table.from_batches(list(source.iter_batches(batch_rows=2)))
    assert source.languages == ["eng_Latn", "fra_Latn"]
    assert out.num_rows == 5
    assert out["segment_id"].to_pylist() == ["1", "2", "3", "4", "5"]


def test_hub_reads_a_local_dataset_folder(tmp_path):
    folder = tmp_path / "opus_books_de_en"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", ROWS)
    source = HubSource(str(folder))
    table = source.to_table()
    assert source.languages == ["deu_Latn", "eng_Latn"]
    assert table.num_rows == 2


def test_hub_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CorpusError) as err:
        HubSource("someone/wmt-de-en", HubConfig(type="hub", dataset="someone/wmt-de-en"))
    message = str(err.value)
    assert message.startswith("hub:someone/wmt-de-en:")
    assert "--local-dir" in message and "jsonl" in message
    assert "\n" not in message
