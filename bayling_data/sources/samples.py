"""Corpora bundled inside the package, so that a fresh install builds offline."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from bayling_data.errors import CorpusError

SAMPLES = {"flores200": "sample_flores"}


def sample_path(name: str) -> Path:
    """The folder of a bundled sample (``sample:flores200`` in a recipe)."""
    if name not in SAMPLES:
        raise CorpusError(
            f"sample:{name}: no such bundled sample; expected one of: "
            + ", ".join(f"sample:{key}" for key in SAMPLES)
        )
    return Path(str(resources.files("bayling_data").joinpath("data", SAMPLES[name])))
