from __future__ import annotations

import pyarrow as pa
import pytest

from bayling_data.filters import InstructionDedup, LengthFilter, Normalize, PairDedup, RatioFilter
from bayling_data.filters.dedup import RowDedup, SegmentDedup
from bayling_data.filters.matching import normalize_for_matching
from bayling_data.filters.units import measure
from bayling_data.schema import WORK_INSTRUCTION_SCHEMA, segment_schema


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


def reasons(stats, key):
    return stats.by_key[key]["reasons"]


def test_normalize_folds_space_controls_and_unicode():
    step = Normalize("NFC")
    out = step(
        segments(
            [" a\u00a0\u00a0b\x07 ", "e\u0301", "\u3000 ", None], ["你好\u3000世界", "x", "y", "z"]
        )
    )
    assert out["eng_Latn"].to_pylist() == ["a b", "\u00e9", None, None]
    assert out["zho_Hans"].to_pylist()[0] == "你好 世界"
    assert step.stats.by_key["eng_Latn"]["in"] == 3
    assert reasons(step.stats, "eng_Latn") == {"empty after normalization": 1}
    assert step.stats.by_key["zho_Hans"] == {"in": 4, "dropped": 0, "reasons": {}}


def test_white_space_hint_finds_every_text_the_replace_changes():
    # The fast path replaces only where _SPACES_HINT matches: it must match exactly there.
    import pyarrow.compute as pc

    from bayling_data.filters.normalize import _SPACES, _SPACES_HINT

    texts = []
    for c in map(chr, range(0x3100)):
        texts += [f"a{c}b", f"a {c}b", f"a{c} b", f"a{c}{c}b", c]
    texts += ["a b", "a  b", " a", "a ", "\u3000\u3000", "x\u2028y"]
    arr = pa.array(texts)
    changed = pc.not_equal(pc.replace_substring_regex(arr, pattern=_SPACES, replacement=" "), arr)
    assert pc.match_substring_regex(arr, _SPACES_HINT).equals(changed)


def test_nfc_makes_no_text_one_that_a_repair_hint_matches():
    # Normalize skips the repairs on the texts no hint matches: NFC must not give any of them a
    # control character or a space the hints would find (NFKC does, and takes the slow path).
    import pyarrow.compute as pc

    from bayling_data.filters.normalize import _CONTROL, _MOJIBAKE_HINT, _SPACES_HINT

    hints = "|".join(f"(?:{hint})" for hint in (_MOJIBAKE_HINT, _CONTROL, _SPACES_HINT))
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    chars = pa.array([chr(c) for c in points])
    clean = chars.filter(pc.invert(pc.match_substring_regex(chars, hints)))
    normalized = pc.utf8_normalize(clean, form="NFC")
    repairs = f"(?:{_CONTROL})|(?:{_SPACES_HINT})"
    assert not pc.any(pc.match_substring_regex(normalized, repairs)).as_py()
    spaced = pa.array(["a \u00a8b"])  # NFKC: "a", two spaces, a combining diaeresis, "b"
    assert not pc.any(pc.match_substring_regex(spaced, hints)).as_py()
    assert pc.any(pc.match_substring_regex(pc.utf8_normalize(spaced, form="NFKC"), repairs)).as_py()


def test_normalize_skips_repairs_only_where_no_hint_matches():
    # Batches with some, none and only texts that need a repair give what every step on every
    # text gives.
    texts = ["Caf\u00e9 plain", "Cafe\u0301  x", "\x07bell", None, "a\u00a0b", "ok", " pad "]
    texts += ["GrÃ¼ÃŸe aus KÃ¶ln", "\ufeffbom"]
    for form in ("NFC", "NFKC", "none"):
        step = Normalize(unicode=form)
        for batch in (texts, texts[:1] + texts[5:6], texts[1:3]):
            arr = pa.array(batch, pa.string())
            assert step.transform(arr, "eng_Latn").equals(step._repaired(arr)), (form, batch)


def test_normalize_fast_paths_equal_the_plain_kernels():
    import pyarrow.compute as pc

    from bayling_data.filters.normalize import _CONTROL, _SPACES

    texts = pa.array(
        ["plain ascii", "Cafe\u0301  au\tlait", None, "\x07bell", "ﬁ wide\u3000space", "", " x "]
    )
    plain = pc.utf8_trim_whitespace(
        pc.replace_substring_regex(
            pc.replace_substring_regex(
                pc.utf8_normalize(texts, form="NFC"), pattern=_CONTROL, replacement=""
            ),
            pattern=_SPACES,
            replacement=" ",
        )
    )
    assert Normalize(fix_encoding=False).transform(texts, "eng_Latn").equals(plain)


def test_nfkc_is_optional():
    assert Normalize("NFKC")(segments(["ｆｕｌｌ"], ["，"]))["eng_Latn"].to_pylist() == ["full"]
    assert Normalize("NFC")(segments(["ｆｕｌｌ"], ["，"]))["zho_Hans"].to_pylist() == ["，"]


def test_mojibake_is_repaired_and_clean_text_untouched():
    broken = "The cafÃ© served crÃ¨me brÃ»lÃ©e."
    clean = "L'âge d'or du café, déjà vu à Noël."
    out = Normalize()(segments([broken, clean], ["甲", "乙"]))
    assert out["eng_Latn"].to_pylist() == ["The café served crème brûlée.", clean]


def test_moses_punctuation_per_language():
    step = Normalize(moses_punctuation=True)
    out = step(segments(["He said „hello“ – twice…", "Plain text"], ["他说“你好”。", "好"]))
    assert out["eng_Latn"].to_pylist() == ['He said "hello" - twice...', "Plain text"]
    assert out["zho_Hans"].to_pylist() == ["他说“你好”。", "好"]


def test_chinese_script_guard():
    step = Normalize()
    out = step(segments(["a", "b", "c"], ["这是简体中文的句子。", "這是繁體中文的句子。", "中文"]))
    assert out["zho_Hans"].to_pylist() == ["这是简体中文的句子。", None, "中文"]
    assert reasons(step.stats, "zho_Hans") == {"wrong Chinese script": 1}
    unguarded = Normalize(chinese_script="off")(segments(["b"], ["這是繁體中文的句子。"]))
    assert unguarded["zho_Hans"][0].as_py() == "這是繁體中文的句子。"


def test_length_drops_each_side_on_its_own_and_counts_why():
    step = LengthFilter(min=2, max=5)
    out = step(segments(["a", "abc", "abcdefg"], ["你好", "好", "你好吗"]))
    assert out["eng_Latn"].to_pylist() == [None, "abc", None]
    assert out["zho_Hans"].to_pylist() == ["你好", None, "你好吗"]
    assert reasons(step.stats, "eng_Latn") == {"too long": 1, "too short": 1}
    assert step.stats.by_key["zho_Hans"]["dropped"] == 1


def test_length_units_suit_the_script():
    texts = pa.array(["one two three", None])
    assert measure(texts, "eng_Latn", "words").to_pylist() == [3, None]
    assert measure(texts, "eng_Latn", "auto").to_pylist() == [3, None]
    assert measure(pa.array(["你好世界"]), "zho_Hans", "auto").to_pylist() == [4]
    assert measure(pa.array(["สวัสดีครับ"]), "tha_Thai", "auto").to_pylist() == [10]


def test_length_in_sentencepiece_tokens(tmp_path):
    sentencepiece = pytest.importorskip("sentencepiece")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"the river {i} is long and the bus is late" for i in range(200)))
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=40, minloglevel=2
    )
    model = str(tmp_path / "sp.model")
    counts = measure(pa.array(["the river is long", None]), "eng_Latn", "tokens", model)
    assert counts[0].as_py() >= 4 and counts[1].as_py() is None
    step = LengthFilter(min=1, max=3, unit="tokens", tokenizer=model)
    assert step(segments(["the river is long"], ["河"]))["eng_Latn"][0].as_py() is None


def test_segment_dedup_ignores_case_and_punctuation_per_language():
    step = SegmentDedup()
    first = step(
        segments(
            ["Hello, world!", None, "hello world", "Other."], ["你好", "你好", "再见", "你好。"]
        )
    )
    second = step(segments(["HELLO   WORLD"], ["新的"]))
    assert first["eng_Latn"].to_pylist() == ["Hello, world!", None, None, "Other."]
    assert first["zho_Hans"].to_pylist() == ["你好", None, "再见", None]
    assert second["eng_Latn"].to_pylist() == [None]
    assert step.stats.by_key["eng_Latn"] == {"in": 4, "dropped": 2, "reasons": {"duplicate": 2}}


def test_row_dedup_removes_repeated_segments_before_templating():
    step = RowDedup()
    out = step(segments(["Hello!", "hello", "Hello!", "Bye"], ["你好", "你好。", "再见", "再见"]))
    assert out["eng_Latn"].to_pylist() == ["Hello!", "Hello!", "Bye"]
    assert out["zho_Hans"].to_pylist() == ["你好", "再见", "再见"]
    assert step.stats.by_key["zho_Hans"] == {"in": 4, "dropped": 1, "reasons": {"duplicate row": 1}}


def instructions(rows: list[tuple[str, str, str]], direction: str = "swh_Latn-eng_Latn"):
    n = len(rows)
    src_lang, tgt_lang = direction.split("-")
    return pa.RecordBatch.from_pydict(
        {
            "id": [f"{i:032x}" for i in range(n)],
            "messages": [
                [{"role": "user", "content": p}, {"role": "assistant", "content": t}]
                for p, _, t in rows
            ],
            "task": ["translation"] * n,
            "direction": [direction] * n,
            "src_lang": [src_lang] * n,
            "tgt_lang": [tgt_lang] * n,
            "prompt_lang": ["eng_Latn"] * n,
            "template_id": ["x"] * n,
            "source_corpus": ["c"] * n,
            "source_split": ["dev"] * n,
            "source_segment_id": [str(i) for i in range(n)],
            "src_text": [s for _, s, _ in rows],
            "tgt_text": [t for _, _, t in rows],
            "mix_key": list(range(n)),
        },
        schema=WORK_INSTRUCTION_SCHEMA,
    )


def test_instruction_dedup_keeps_the_first_across_batches():
    step = InstructionDedup()
    first = step(
        instructions(
            [("Translate: a", "a", "A."), ("Translate: b", "b", "B"), ("translate a", "a", "a")]
        )
    )
    second = step(instructions([("Translate: b", "b", "B!"), ("Translate: c", "c", "C")]))
    assert first["src_text"].to_pylist() == ["a", "b"]
    assert second["src_text"].to_pylist() == ["c"]
    assert step.stats.by_key["swh_Latn-eng_Latn"]["reasons"] == {"duplicate instruction": 2}
    exact = InstructionDedup(normalize=False)
    assert exact(instructions([("T: a", "a", "A."), ("T: a", "a", "A")])).num_rows == 2


def test_pair_dedup_ignores_the_template():
    step = PairDedup()
    out = step(instructions([("Translate: a", "Mto.", "River."), ("Render: a", "mto", "river")]))
    assert out.num_rows == 1
    other_direction = step(instructions([("x", "Mto.", "River.")], "eng_Latn-swh_Latn"))
    assert other_direction.num_rows == 1


def test_ratio_compares_chinese_characters_with_english_words():
    step = RatioFilter(max_ratio=3.0)
    rows = [
        ("p", "这条河很长。", "The river is long."),  # 6 chars / 2 per word vs 4 words: 1.33
        ("p", "这条河很长，而且非常宽阔。", "Yes."),  # 13 / 2 vs 1: 6.5
        (
            "p",
            "这条河很长，而且非常非常宽阔，一直流到大海。",
            "The river is long and very very wide, flowing to the sea.",
        ),
    ]
    out = step(instructions(rows, "zho_Hans-eng_Latn"))
    assert out["tgt_text"].to_pylist() == [rows[0][2], rows[2][2]]
    assert step.stats.by_language()["zho_Hans"]["dropped"] == 1


def test_matching_key():
    keys = normalize_for_matching(pa.array(["Hello,  World!", "ＨＥＬＬＯ world", None]))
    assert keys.to_pylist() == ["hello world", "hello world", None]


def test_exact_dedup_removes_injected_variants_and_keeps_distinct_sentences():
    from bayling_data.sources.samples import sample_path

    distinct = (sample_path("flores200") / "dev" / "eng_Latn.dev").read_text("utf-8").splitlines()
    variants = [
        distinct[0].upper(),
        "  " + distinct[1].replace(" ", "   ") + " ",
        distinct[2].rstrip(".") + " !",
        distinct[3].replace(",", " ,"),
        distinct[4].lower().replace(".", ""),
    ]
    texts = distinct + variants
    step = SegmentDedup()
    out = step(segments(texts, ["x"] * len(texts)))["eng_Latn"].to_pylist()
    assert out[: len(distinct)] == distinct  # every distinct sentence kept
    assert out[len(distinct) :] == [None] * len(variants)  # every injected variant removed
