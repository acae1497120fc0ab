from __future__ import annotations

import pyarrow as pa

from bayling_data.filters import ExactDedup, LengthFilter, Normalize
from bayling_data.schema import INSTRUCTION_SCHEMA, segment_schema


def segments(eng: list[str | None], zho: list[str | None]) -> pa.RecordBatch:
    n = len(eng)
    return pa.RecordBatch.from_pydict(
        {
            "corpus": ["c"] * n,
            "split": ["dev"] * n,
            "segment_id": [str(i) for i in range(n)],
            "doc_id": [None] * n,
            "eng_Latn": eng,
            "zho_Hans": zho,
        },
        schema=segment_schema(["eng_Latn", "zho_Hans"]),
    )


def test_normalize_folds_space_controls_and_unicode():
    step = Normalize("NFC")
    out = step(
        segments(
            [" a\u00a0\u00a0b\x07 ", "e\u0301", "\u3000 ", None], ["你好\u3000世界", "x", "y", "z"]
        )
    )
    assert out["eng_Latn"].to_pylist() == ["a b", "\u00e9", None, None]
    assert out["zho_Hans"].to_pylist()[0] == "你好 世界"
    assert step.stats.by_key["eng_Latn"] == {"in": 3, "dropped": 1}
    assert step.stats.by_key["zho_Hans"] == {"in": 4, "dropped": 0}


def test_nfkc_is_optional():
    assert Normalize("NFKC")(segments(["ｆｕｌｌ"], ["，"]))["eng_Latn"].to_pylist() == ["full"]
    assert Normalize("NFC")(segments(["ｆｕｌｌ"], ["，"]))["zho_Hans"].to_pylist() == ["，"]


def test_length_drops_each_side_on_its_own_and_counts_per_language():
    step = LengthFilter(min_chars=2, max_chars=5)
    out = step(segments(["a", "abc", "abcdefg"], ["你好", "好", "你好吗"]))
    assert out["eng_Latn"].to_pylist() == [None, "abc", None]
    assert out["zho_Hans"].to_pylist() == ["你好", None, "你好吗"]
    assert step.stats.by_key == {
        "eng_Latn": {"in": 3, "dropped": 2},
        "zho_Hans": {"in": 3, "dropped": 1},
    }
    assert step.score(pa.array(["abc", "你好"])).to_pylist() == [3, 2]


def instructions(ids: list[str], directions: list[str]) -> pa.RecordBatch:
    n = len(ids)
    return pa.RecordBatch.from_pydict(
        {
            "id": ids,
            "messages": [[{"role": "user", "content": i}] for i in ids],
            "task": ["t"] * n,
            "direction": directions,
            "src_lang": ["a"] * n,
            "tgt_lang": ["b"] * n,
            "prompt_lang": ["eng_Latn"] * n,
            "template_id": ["x"] * n,
            "source_corpus": ["c"] * n,
            "source_split": ["dev"] * n,
            "source_segment_id": ["1"] * n,
        },
        schema=INSTRUCTION_SCHEMA,
    )


def test_exact_dedup_keeps_the_first_across_batches():
    step = ExactDedup()
    first = step(instructions(["aa" * 16, "bb" * 16, "aa" * 16], ["x-y", "x-y", "y-x"]))
    second = step(instructions(["bb" * 16, "cc" * 16], ["x-y", "x-y"]))
    assert first["id"].to_pylist() == ["aa" * 16, "bb" * 16]
    assert second["id"].to_pylist() == ["cc" * 16]
    assert step.stats.by_key == {"x-y": {"in": 4, "dropped": 1}, "y-x": {"in": 1, "dropped": 1}}
