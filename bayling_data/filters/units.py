"""Measuring text length in the unit that suits the script: characters, words or tokens.

Chinese, Japanese, Thai, Khmer, Lao, Burmese and Tibetan do not separate words with spaces, so a
word count says little there; ``auto`` counts characters for those scripts and words elsewhere.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from bayling_data.errors import BaylingError
from bayling_data.languages import registry

LengthUnit = Literal["chars", "words", "auto", "tokens"]

# Scripts written without spaces between words: length is counted in characters, and, to compare
# with a spaced language, divided by the characters one English word takes. Measured as characters
# per English word on Flores-200 dev (Hans 2.01, Hant 1.87, Jpan 2.61, Khmr 7.19); Thai, Lao,
# Burmese and Tibetan are estimates from typical word lengths.
CHARS_PER_WORD = {
    "Hans": 2.0,
    "Hant": 1.9,
    "Jpan": 2.6,
    "Khmr": 7.2,
    "Thai": 5.0,
    "Laoo": 5.0,
    "Mymr": 6.0,
    "Tibt": 5.0,
}
UNSPACED_SCRIPTS = frozenset(CHARS_PER_WORD)


def unit_for(lang: str, unit: LengthUnit) -> LengthUnit:
    """The concrete unit (chars, words or tokens) for a language."""
    if unit != "auto":
        return unit
    try:
        script = registry().get(lang).script
    except BaylingError:
        return "words"
    return "chars" if script in UNSPACED_SCRIPTS else "words"


def word_equivalents(texts: pa.Array, lang: str) -> pa.Array:
    """Length in words, or for an unspaced script in characters over its characters-per-word, so
    that a Chinese and an English side of one sentence come out about equally long."""
    try:
        script = registry().get(lang).script
    except BaylingError:
        script = ""
    if script in CHARS_PER_WORD:
        return pc.divide(pc.cast(pc.utf8_length(texts), pa.float64()), CHARS_PER_WORD[script])
    return pc.cast(pc.list_value_length(pc.utf8_split_whitespace(texts)), pa.float64())


def measure(
    texts: pa.Array, lang: str, unit: LengthUnit = "chars", tokenizer: str | None = None
) -> pa.Array:
    """The length of each text (null stays null) in ``unit`` for ``lang``."""
    concrete = unit_for(lang, unit)
    if concrete == "chars":
        return pc.utf8_length(texts)
    if concrete == "words":
        return pc.list_value_length(pc.utf8_split_whitespace(texts))
    if tokenizer is None:
        raise BaylingError("length in tokens needs a `tokenizer` (a SentencePiece .model file)")
    counter = load_token_counter(tokenizer)
    values = texts.to_pylist()
    present = [text for text in values if text is not None]
    counts = iter(counter(present))
    return pa.array([None if text is None else next(counts) for text in values], pa.int32())


@cache
def load_token_counter(name: str):
    """A function counting tokens per text: a SentencePiece ``.model`` file, or a
    ``transformers`` tokenizer name or folder (loaded from local files only when offline)."""
    if name.endswith(".model"):
        try:
            import sentencepiece
        except ImportError:
            raise BaylingError(
                "tokenizer: SentencePiece models need `pip install sentencepiece`"
            ) from None
        try:
            processor = sentencepiece.SentencePieceProcessor(model_file=name)
        except (OSError, RuntimeError) as err:
            raise BaylingError(
                f"tokenizer: {name}: cannot load the SentencePiece model ({err})"
            ) from None
        return lambda texts: [len(ids) for ids in processor.encode(texts)]
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise BaylingError(
            f"tokenizer: {name} is not a SentencePiece .model file, and transformers tokenizers "
            "need `pip install 'bayling-data[train]'`"
        ) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise BaylingError(
            f"tokenizer: cannot load {name!r} ({str(err).splitlines()[0]}); offline, give a local "
            "folder or a SentencePiece .model file"
        ) from None
    return lambda texts: [
        len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]
    ]
