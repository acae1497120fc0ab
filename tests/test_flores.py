from __future__ import annotations

import pyarrow as pa
import pytest
from conftest import SENTENCES, write_flores

from bayling_data.errors import CorpusError
from bayling_data.sources import FloresSource


def test_reads_flores200_layout_as_multiway_segments(small_flores):
    source = FloresSource(small_flores)
    table = source.to_table()
    assert source.layout == "flores200"
    assert source.languages == ["eng_Latn", "fra_Latn", "swh_Latn", "zho_Hans"]
    assert table.num_rows == 6
    dev = table.filter(pa.compute.equal(table["split"], "dev"))
    assert dev["segment_id"].to_pylist() == ["1", "2", "3", "4"]
    assert dev["swh_Latn"].to_pylist() == SENTENCES["swh_Latn"]
    assert dev["zho_Hans"].to_pylist() == SENTENCES["zho_Hans"]
    assert set(table["corpus"].to_pylist()) == {"flores200"}


def test_reads_flores101_layout(tmp_path):
    root = tmp_path / "flores101_dataset"
    write_flores(
        root,
        "dev",
        {
            "eng": SENTENCES["eng_Latn"],
            "zho_simpl": SENTENCES["zho_Hans"],
            "swh": SENTENCES["swh_Latn"],
        },
    )
    write_flores(root, "devtest", {"eng": ["a b c"], "zho_simpl": ["甲乙丙"], "swh": ["x y z"]})
    source = FloresSource(root)
    assert source.layout == "flores101"
    assert source.corpus == "flores101"
    assert source.languages == ["eng_Latn", "swh_Latn", "zho_Hans"]
    table = source.to_table()
    assert table.num_rows == 5
    assert table["zho_Hans"].to_pylist()[-1] == "甲乙丙"


def test_subset_of_languages_and_splits(small_flores):
    source = FloresSource(small_flores, languages=["sw", "zh"], splits=["devtest"])
    table = source.to_table()
    assert source.languages == ["swh_Latn", "zho_Hans"]
    assert table.num_rows == 2
    assert set(table["split"].to_pylist()) == {"devtest"}


def test_a_split_folder_can_be_the_path(small_flores):
    source = FloresSource(small_flores / "dev")
    assert source.splits == ["dev"]
    assert source.num_segments == 4


def test_batches_stream_the_same_rows_in_any_batch_size(small_flores):
    source = FloresSource(small_flores)
    whole = source.to_table()
    batches = list(source.iter_batches(batch_rows=3))
    assert max(batch.num_rows for batch in batches) == 3
    assert pa.Table.from_batches(batches).equals(whole)


def test_line_count_mismatch_names_the_file_and_both_counts(small_flores):
    (small_flores / "dev" / "swh_Latn.dev").write_text("only one line\n", "utf-8")
    with pytest.raises(CorpusError) as err:
        FloresSource(small_flores)
    message = str(err.value)
    assert "swh_Latn.dev has 1 lines" in message
    assert "has 4" in message


def test_invalid_utf8_names_file_and_line(small_flores):
    (small_flores / "dev" / "fra_Latn.dev").write_bytes(b"a\nb\n\xff\xfe bad\nd\n")
    with pytest.raises(CorpusError, match=r"fra_Latn\.dev:3: invalid UTF-8"):
        FloresSource(small_flores).to_table()


def test_unknown_file_code_is_an_error(small_flores):
    (small_flores / "dev" / "xyz_Fake.dev").write_text("a\nb\nc\nd\n", "utf-8")
    with pytest.raises(CorpusError, match=r"xyz_Fake\.dev: 'xyz_Fake' is not a Flores-200 code"):
        FloresSource(small_flores)


def test_missing_folder_and_split(tmp_path, small_flores):
    with pytest.raises(CorpusError, match="no such Flores folder"):
        FloresSource(tmp_path / "absent")
    with pytest.raises(CorpusError, match="no split 'test' here; found: dev, devtest"):
        FloresSource(small_flores, splits=["test"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match="no Flores split folders"):
        FloresSource(empty)


def test_blank_lines_are_null_and_crlf_is_stripped(tmp_path):
    root = tmp_path / "f"
    (root / "dev").mkdir(parents=True)
    (root / "dev" / "eng_Latn.dev").write_bytes(b"one\r\n   \nthree")
    (root / "dev" / "fra_Latn.dev").write_bytes(b"un\ndeux\ntrois\n")
    table = FloresSource(root).to_table()
    assert table["eng_Latn"].to_pylist() == ["one", None, "three"]


def test_metadata_gives_document_ids(small_flores):
    rows = ["URL\tdomain\ttopic\thas_image\thas_hyperlink"]
    rows += [f"https://example.org/doc{i // 2}\twikinews\tx\tno\tno" for i in range(4)]
    (small_flores / "metadata_dev.tsv").write_text("\n".join(rows) + "\n", "utf-8")
    table = FloresSource(small_flores, splits=["dev"]).to_table()
    assert table["doc_id"].to_pylist() == [
        "https://example.org/doc0",
        "https://example.org/doc0",
        "https://example.org/doc1",
        "https://example.org/doc1",
    ]


def test_shared_flores200_dev(shared_corpora):
    source = FloresSource(shared_corpora / "flores200")
    assert len(source.languages) == 204
    assert source.line_counts == {"dev": 997}
    table = source.to_table()
    assert table.num_rows == 997
    first_english = (
        (shared_corpora / "flores200/dev/eng_Latn.dev").read_text("utf-8").split("\n")[0]
    )
    assert table["eng_Latn"][0].as_py() == first_english
    assert table["doc_id"][0].as_py().startswith("https://en.wikinews.org/")
