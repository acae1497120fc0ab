"""Chat templates: the tokenizer's own, or one shipped with the package, chosen in the config.

Shipped templates are Jinja files beside this module (``chat_templates/*.jinja``) rendered by the
tokenizer's own ``apply_chat_template``, so ``bos_token``/``eos_token`` come from the tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from bayling_data.train.config import TEMPLATE_NAMES, TrainConfigError

TEMPLATE_DIR = Path(__file__).with_name("chat_templates")
SHIPPED = tuple(name for name in TEMPLATE_NAMES if name != "tokenizer")

# Turn-end tokens a chat template may write, each with the tokens that end an answer when it does
# (Llama 3's reference stops at <|eot_id|> and <|end_of_text|>; ChatML, Phi-3, Qwen likewise).
TURN_ENDS = {
    "<|eot_id|>": ("<|eot_id|>", "<|end_of_text|>"),
    "<|im_end|>": ("<|im_end|>", "<|endoftext|>"),
    "<|end|>": ("<|end|>", "<|endoftext|>"),
}


def template_text(choice: str, tokenizer) -> str:
    """The Jinja source a config's ``data.template`` selects."""
    if choice == "tokenizer":
        text = getattr(tokenizer, "chat_template", None)
        if not text:
            raise TrainConfigError(
                "data.template: the tokenizer has no chat template; "
                f"choose one of {', '.join(SHIPPED)} or a Jinja file"
            )
        return text if isinstance(text, str) else text["default"]
    path = TEMPLATE_DIR / f"{choice}.jinja" if choice in SHIPPED else Path(choice).expanduser()
    return path.read_text("utf-8")


def render(tokenizer, template: str, messages: list[dict], generation_prompt: bool) -> str:
    """The conversation as text, optionally ending with the cue for the assistant's answer."""
    return tokenizer.apply_chat_template(
        messages,
        chat_template=template,
        tokenize=False,
        add_generation_prompt=generation_prompt,
    )


def stop_strings(tokenizer, template: str) -> list[str]:
    """The tokens that end an answer under this template: the tokenizer's eos (what ``bayling`` and
    ``llama2`` write after an answer) and the turn-end tokens the template itself writes."""
    stops = [tokenizer.eos_token] if tokenizer.eos_token else []
    for marker, ends in TURN_ENDS.items():
        if marker in template:
            stops += ends
    return list(dict.fromkeys(stops))


def stop_token_ids(tokenizer, template: str, model=None) -> list[int]:
    """Ids generation stops at: :func:`stop_strings` the vocabulary holds, eos, and the model's
    ``generation_config.eos_token_id``."""
    ids = [tokenizer.eos_token_id]
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += config_eos if isinstance(config_eos, list) else [config_eos]
    vocab = tokenizer.get_vocab()
    ids += [vocab[token] for token in stop_strings(tokenizer, template) if token in vocab]
    return list(dict.fromkeys(i for i in ids if i is not None))
