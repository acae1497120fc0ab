"""Corpora bundled inside the package, so that a fresh install builds offline."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from bayling_data.errors import CorpusError

SAMPLE_PREFIX = "sample:"
# Everything bundled for offline builds, written in a recipe as ``sample:NAME``.
SAMPLES = {
    "flores200": "sample_flores",
    "instructions_zh": "instructions/alpaca_zh_sample.jsonl",
    "instructions_en": "instructions/alpaca_en_sample.jsonl",
    "qa": "qa/qa_sample.jsonl",
}


def sample_path(name: str) -> Path:
    """The folder of a bundled sample (``sample:flores200`` in a recipe)."""
    if name not in SAMPLES:
        raise CorpusError(
            f"{SAMPLE_PREFIX}{name}: no such bundled sample; expected one of: "
            + ", ".join(f"{SAMPLE_PREFIX}{key}" for key in SAMPLES)
        )
    return Path(str(resources.files("bayling_data").joinpath("data", *SAMPLES[name].split("/"))))


def resolve_source_path(raw: str) -> Path:
    """A source path as written: ``sample:NAME`` for a bundled sample, else a filesystem path."""
    if raw.startswith(SAMPLE_PREFIX):
        return sample_path(raw[len(SAMPLE_PREFIX) :])
    return Path(os.path.expanduser(raw))
