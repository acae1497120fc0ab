"""Chat templates: the tokenizer's own, or one shipped with the package, chosen in the config.

Shipped templates are Jinja files beside this module (``chat_templates/*.jinja``) rendered by the
tokenizer's own ``apply_chat_template``, so ``bos_token``/``eos_token`` come from the tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from bayling_data.train.config import TEMPLATE_NAMES, TrainConfigError

TEMPLATE_DIR = Path(__file__).with_name("chat_templates")
SHIPPED = tuple(name for name in TEMPLATE_NAMES if name != "tokenizer")


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
