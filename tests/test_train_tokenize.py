"""Loss masks found by rendering prefixes, drops and truncation, and the tokenized cache."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import pyarrow as pa  # noqa: E402
from train_fixtures import train_assets  # noqa: E402

from bayling_data.train.chat_templates import template_text  # noqa: E402
from bayling_data.train.data import (  # noqa: E402
    TokenizedBuild,
    read_build_split,
    tokenize_build,
)
from bayling_data.train.tokenize import (  # noqa: E402
    MaskSpec,
    encode_row,
    read_cached,
    tokenize_batches,
    tokenize_table,
    write_cached,
)

CONVERSATION = [
    {"role": "system", "content": "You translate carefully."},
    {"role": "user", "content": "Translate into Chinese: The river is long."},
    {"role": "assistant", "content": "这条河很长。"},
    {"role": "user", "content": "Now into French, please."},
    {"role": "assistant", "content": "Le fleuve est long."},
]
END_OF_TURN = {
    "llama3": "<|eot_id|>",
    "tokenizer": "<|eot_id|>",
    "llama2": " </s>",  # Meta's format: "[/INST] answer </s>"
    "bayling": "</s>",
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return transformers.AutoTokenizer.from_pretrained(train_assets(tmp_path_factory).tokenizer_dir)


def trained_runs(tokenizer, ids: list[int], trained: list[int]) -> list[str]:
    """The trained tokens decoded run by run (a run: one contiguous stretch of trained tokens)."""
    runs, current = [], []
    for token, flag in zip(ids, trained, strict=True):
        if flag:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run, skip_special_tokens=False) for run in runs]


@pytest.mark.parametrize("template", sorted(END_OF_TURN))
def test_trained_tokens_are_exactly_the_assistant_turns_and_their_end_tokens(tokenizer, template):
    spec = MaskSpec(template=template_text(template, tokenizer))
    ids, trained = encode_row(tokenizer, CONVERSATION, spec)
    answers = [
        m["content"] + END_OF_TURN[template] for m in CONVERSATION if m["role"] == "assistant"
    ]
    # llama2 puts one space between the cue and the answer; it merges into the answer's first
    # token, which is the first token the model must produce.
    assert [run.removeprefix(" ") for run in trained_runs(tokenizer, ids, trained)] == answers
    # The whole row still decodes to the rendered conversation: nothing was lost or added.
    rendered = tokenizer.apply_chat_template(
        CONVERSATION, chat_template=spec.template, tokenize=False
    )
    assert tokenizer.decode(ids, skip_special_tokens=False) == rendered


def test_last_turn_only_trains_the_final_answer(tokenizer):
    spec = MaskSpec(template=template_text("llama3", tokenizer), loss_on="last_assistant")
    ids, trained = encode_row(tokenizer, CONVERSATION, spec)
    assert trained_runs(tokenizer, ids, trained) == ["Le fleuve est long.<|eot_id|>"]


def test_rows_without_answers_or_cut_answers_are_dropped_and_counted(tokenizer):
    template = template_text("llama3", tokenizer)
    full_length = len(encode_row(tokenizer, CONVERSATION, MaskSpec(template=template))[0])
    first_turn = CONVERSATION[:3]
    first_length = len(encode_row(tokenizer, first_turn, MaskSpec(template=template))[0])
    rows = pa.table(
        {
            "messages": [CONVERSATION, [CONVERSATION[1]], first_turn],
            "tgt_lang": ["fra_Latn", "zho_Hans", "zho_Hans"],
            "direction": ["eng_Latn-fra_Latn", "eng_Latn-zho_Hans", "eng_Latn-zho_Hans"],
        }
    )
    # Too long for the whole conversation, long enough for its first exchange.
    limit = (first_length + full_length) // 2
    dropping = MaskSpec(template=template, max_length=limit, truncation="drop")
    kept, drops = tokenize_table(rows, tokenizer, dropping)
    assert kept.column("row").to_pylist() == [2]
    assert drops == {"too_long": 1, "answer_truncated": 0, "no_trained_tokens": 1}

    keeping = MaskSpec(template=template, max_length=limit, truncation="keep_complete_turns")
    kept, drops = tokenize_table(rows, tokenizer, keeping)
    assert kept.column("row").to_pylist() == [0, 2]
    cut_ids, cut_trained = kept.column("input_ids")[0].as_py(), kept.column("trained")[0].as_py()
    assert len(cut_ids) == first_length  # cut right after the first answer's <|eot_id|>
    assert trained_runs(tokenizer, cut_ids, cut_trained) == ["这条河很长。<|eot_id|>"]

    too_short = MaskSpec(
        template=template, max_length=first_length - 1, truncation="keep_complete_turns"
    )
    _, drops = tokenize_table(rows.slice(0, 1), tokenizer, too_short)
    assert drops["answer_truncated"] == 1


def test_tokenizing_in_parallel_gives_the_same_rows(tokenizer, tmp_path_factory):
    table, _ = read_build_split(train_assets(tmp_path_factory).build, "validation")
    spec = MaskSpec(template=template_text("llama3", tokenizer), max_length=256)
    one, drops_one = tokenize_table(table, tokenizer, spec, num_proc=1)
    # batches of 4 rows, at most 4 in flight: the bounded queue turns over several times
    two, drops_two = tokenize_table(table, tokenizer, spec, num_proc=2, batch_rows=4)
    assert table.num_rows > 8 * 4
    assert one.equals(two) and drops_one == drops_two


def test_the_cache_is_reused_and_keyed_by_what_decides_the_tokens(
    tokenizer, tmp_path_factory, tmp_path
):
    build = train_assets(tmp_path_factory).build
    spec = MaskSpec(template=template_text("llama3", tokenizer), max_length=256)
    first = tokenize_build(str(build), "validation", tokenizer, spec, tmp_path, num_proc=1)
    entries = sorted(p.name for p in tmp_path.iterdir())
    again = tokenize_build(str(build), "validation", tokenizer, spec, tmp_path, num_proc=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == entries  # read, not written again
    assert again.tokens.equals(first.tokens)
    shorter = MaskSpec(template=spec.template, max_length=128)
    tokenize_build(str(build), "validation", tokenizer, shorter, tmp_path, num_proc=1)
    assert len(list(tmp_path.iterdir())) == 2


def test_the_cache_is_an_arrow_file_read_memory_mapped_in_record_batches(
    tokenizer, tmp_path_factory, tmp_path
):
    """Streamed in batches, the entry reads back the rows tokenize_table gives, without copies:
    every row's tokens are views of the mapped file."""
    build = train_assets(tmp_path_factory).build
    table, _ = read_build_split(build, "validation")
    spec = MaskSpec(template=template_text("llama3", tokenizer), max_length=256)
    entry = tmp_path / "entry"
    write_cached(entry, tokenize_batches(table, tokenizer, spec, num_proc=2, batch_rows=7))
    tokens, dropped = read_cached(entry)
    expected, expected_drops = tokenize_table(table, tokenizer, spec)
    assert tokens.num_rows == expected.num_rows and dropped == expected_drops
    assert tokens.column("input_ids").num_chunks == -(-table.num_rows // 7)  # one per batch
    assert tokens.equals(expected)
    schema = pa.ipc.open_file(pa.memory_map(str(entry / "tokens.arrow"))).schema
    assert schema.field("input_ids").type == pa.list_(pa.int32())
    built = TokenizedBuild(str(build), tokens, dropped)
    for index in (0, 10, tokens.num_rows - 1):
        ids, trained = built.row(index)
        assert ids.tolist() == expected.column("input_ids")[index].as_py()
        assert trained.tolist() == expected.column("trained")[index].as_py()
        assert not ids.flags.owndata  # a view, not a copy
    assert built.lengths.sum() == sum(len(x) for x in expected.column("input_ids").to_pylist())
    assert [built.langs[code] for code in built.lang_codes] == expected.column("lang").to_pylist()
