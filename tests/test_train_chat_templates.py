"""The shipped chat templates, token for token against the published formats of their models.

The references are built by hand the way each model's own code builds its prompts: Meta's
``chat_completion`` (Llama 2: bos + "[INST] question [/INST] answer " + eos per exchange, the system
prompt folded into the first question) and ``ChatFormat.encode_dialog_prompt`` (Llama 3: header
tokens around the role, "\\n\\n", the stripped content, <|eot_id|>), and BayLing's "BayLing"
conversation (system prompt, "\\n", "### Instruction:\\n" question "\\n" "### Response:\\n" answer
"</s>", "\\n" between exchanges)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from bayling_data.train.chat_templates import (
    render,
    stop_strings,
    stop_token_ids,
    template_text,
)
from bayling_data.train.tokenize import MaskSpec, answer_spans

SYSTEM = "You translate carefully. "
CONVERSATION = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": " Translate into Chinese: The river is long.\n"},
    {"role": "assistant", "content": "这条河很长。"},
    {"role": "user", "content": "Now into French, please."},
    {"role": "assistant", "content": " Le fleuve est long. "},
    {"role": "user", "content": "And German?"},
]
BAYLING_SYSTEM = (
    "I am an intelligent language assistant developed by the NLP Group of ICT/CAS.\n"
    "Below is a dialog consisting of instructions and responses. "
    "Write a response that completes the request.\n"
)
TEXTS = [m["content"] for m in CONVERSATION] + [BAYLING_SYSTEM, "[INST] <<SYS>> [/INST] ###"] * 3


def tokenizer_with(specials: list[str], bos: str, eos: str, merges: bool):
    """A byte-level BPE with these special tokens; without merges every byte is one token, so that
    encoding pieces one by one (as Meta's Llama 3 code does) equals encoding their concatenation."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    size = len(alphabet) + len(specials) + (300 if merges else 0)
    trainer = trainers.BpeTrainer(
        vocab_size=size, special_tokens=specials, initial_alphabet=alphabet
    )
    core.train_from_iterator(TEXTS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=bos,
        eos_token=eos,
        additional_special_tokens=[t for t in specials if t not in (bos, eos)],
    )
    assert merges == (len(tokenizer) > len(alphabet) + len(specials))
    return tokenizer


@pytest.fixture(scope="module")
def llama2_tokenizer():
    return tokenizer_with(["<s>", "</s>"], "<s>", "</s>", merges=True)


@pytest.fixture(scope="module")
def llama3_tokenizer():
    specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    return tokenizer_with(specials, "<|begin_of_text|>", "<|eot_id|>", merges=False)


def ours(tokenizer, name: str, messages: list[dict], generation_prompt: bool) -> list[int]:
    text = render(tokenizer, template_text(name, tokenizer), messages, generation_prompt)
    return tokenizer(text, add_special_tokens=False).input_ids


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def llama2_reference(tokenizer, dialog: list[dict]) -> list[int]:
    """Meta's Llama 2 ``chat_completion`` encoding of a dialog (with or without a last question)."""
    if dialog[0]["role"] == "system":
        first = "<<SYS>>\n" + dialog[0]["content"] + "\n<</SYS>>\n\n" + dialog[1]["content"]
        dialog = [{"role": "user", "content": first}, *dialog[2:]]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    ids = []
    for question, answer in zip(dialog[::2], dialog[1::2], strict=False):
        text = f"[INST] {question['content'].strip()} [/INST] {answer['content'].strip()} "
        ids += [bos, *encode(tokenizer, text), eos]
    if dialog[-1]["role"] == "user":
        ids += [bos, *encode(tokenizer, f"[INST] {dialog[-1]['content'].strip()} [/INST]")]
    return ids


def llama3_reference(tokenizer, dialog: list[dict], generation_prompt: bool) -> list[int]:
    """Meta's Llama 3 ``ChatFormat``: encode_dialog_prompt, piece by piece."""
    special = tokenizer.convert_tokens_to_ids

    def header(role: str) -> list[int]:
        return [
            special("<|start_header_id|>"),
            *encode(tokenizer, role),
            special("<|end_header_id|>"),
            *encode(tokenizer, "\n\n"),
        ]

    ids = [special("<|begin_of_text|>")]
    for message in dialog:
        ids += header(message["role"]) + encode(tokenizer, message["content"].strip())
        ids += [special("<|eot_id|>")]
    return ids + (header("assistant") if generation_prompt else [])


def bayling_reference(tokenizer, dialog: list[dict]) -> list[int]:
    """BayLing's "BayLing" conversation prompt (bos added by its Llama tokenizer); the cue for an
    answer after a last question. After a last answer BayLing's code writes one more "\\n", which
    ends nothing and is left out here and by the template."""
    system = BAYLING_SYSTEM
    if dialog[0]["role"] == "system":
        system, dialog = dialog[0]["content"], dialog[1:]
    text = system + "\n"
    for i, message in enumerate(dialog):
        if i % 2 == 0:
            text += "### Instruction:\n" + message["content"] + "\n"
        else:
            text += "### Response:\n" + message["content"] + "</s>" + "\n"
    text = text + "### Response:\n" if dialog[-1]["role"] == "user" else text.removesuffix("\n")
    return [tokenizer.bos_token_id, *encode(tokenizer, text)]


DIALOGS = {
    "system, three questions": CONVERSATION,
    "system, two exchanges": CONVERSATION[:-1],
    "no system, one question": CONVERSATION[1:2],
    "no system, two exchanges": CONVERSATION[1:5],
}


@pytest.mark.parametrize("dialog", DIALOGS.values(), ids=DIALOGS.keys())
def test_llama2_is_metas_chat_completion_token_for_token(llama2_tokenizer, dialog):
    prompt = dialog[-1]["role"] == "user"
    assert ours(llama2_tokenizer, "llama2", dialog, prompt) == llama2_reference(
        llama2_tokenizer, dialog
    )


@pytest.mark.parametrize("dialog", DIALOGS.values(), ids=DIALOGS.keys())
def test_llama3_is_metas_chat_format_token_for_token(llama3_tokenizer, dialog):
    prompt = dialog[-1]["role"] == "user"
    assert ours(llama3_tokenizer, "llama3", dialog, prompt) == llama3_reference(
        llama3_tokenizer, dialog, prompt
    )


@pytest.mark.parametrize("dialog", DIALOGS.values(), ids=DIALOGS.keys())
def test_bayling_is_baylings_conversation_token_for_token(llama2_tokenizer, dialog):
    prompt = dialog[-1]["role"] == "user"
    assert ours(llama2_tokenizer, "bayling", dialog, prompt) == bayling_reference(
        llama2_tokenizer, dialog
    )


def test_the_renderings_read_as_published(llama2_tokenizer, llama3_tokenizer):
    two = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
    ]

    def text(tokenizer, name):
        return render(tokenizer, template_text(name, tokenizer), two, True)

    assert text(llama2_tokenizer, "llama2") == (
        "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST]"
    )
    assert text(llama3_tokenizer, "llama3") == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert text(llama2_tokenizer, "bayling") == (
        "<s>S\n### Instruction:\nQ1\n### Response:\nA1</s>\n### Instruction:\nQ2\n### Response:\n"
    )


@pytest.mark.parametrize("name", ["llama2", "llama3", "bayling"])
def test_answers_are_found_under_every_template(llama2_tokenizer, llama3_tokenizer, name):
    tokenizer = llama3_tokenizer if name == "llama3" else llama2_tokenizer
    end = {"llama2": " </s>", "llama3": "<|eot_id|>", "bayling": "</s>"}[name]
    full, spans = answer_spans(
        tokenizer, CONVERSATION[:-1], MaskSpec(template=template_text(name, tokenizer))
    )
    answers = [full[start:stop] for start, stop in spans]
    if name == "llama2":  # the space after [/INST] opens the answer
        answers = [a.removeprefix(" ") for a in answers]
    # Meta's formats strip the answers; BayLing's keeps them as written.
    second = " Le fleuve est long. " if name == "bayling" else "Le fleuve est long."
    assert answers == ["这条河很长。" + end, second + end]


def test_stop_tokens_come_from_the_template(llama2_tokenizer, llama3_tokenizer):
    for name in ("llama2", "bayling"):
        template = template_text(name, llama2_tokenizer)
        assert stop_strings(llama2_tokenizer, template) == ["</s>"]
        assert stop_token_ids(llama2_tokenizer, template) == [llama2_tokenizer.eos_token_id]
    template = template_text("llama3", llama3_tokenizer)
    assert stop_strings(llama3_tokenizer, template) == ["<|eot_id|>", "<|end_of_text|>"]
    ids = llama3_tokenizer.convert_tokens_to_ids(["<|eot_id|>", "<|end_of_text|>"])
    assert stop_token_ids(llama3_tokenizer, template) == ids

    from types import SimpleNamespace

    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[7, ids[0]]))
    assert stop_token_ids(llama3_tokenizer, template, model) == [ids[0], 7, ids[1]]
