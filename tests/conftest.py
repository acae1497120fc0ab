from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bayling_data.executors import InProcessExecutor

REPO = Path(__file__).resolve().parent.parent
SHARED_CORPORA = REPO.parent / "shared" / "corpora"
SAMPLE_RECIPE = REPO / "recipes" / "pivot_zh_en.yaml"


def manifest_of(out: Path) -> dict:
    """A build's manifest.json, parsed."""
    return json.loads((out / "manifest.json").read_text("utf-8"))


def summed_counts(manifest: dict, key: str) -> dict[str, int]:
    """A manifest's ``counts[key]`` added up over its splits."""
    total: Counter[str] = Counter()
    for split in manifest["splits"].values():
        total.update(split["counts"][key])
    return dict(sorted(total.items()))


def write_flores(root: Path, split: str, texts: dict[str, list[str]]) -> Path:
    """Write one split of a Flores-style corpus: ``root/split/<code>.<split>``."""
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    for code, lines in texts.items():
        (folder / f"{code}.{split}").write_text("".join(f"{line}\n" for line in lines), "utf-8")
    return root


SENTENCES = {
    "eng_Latn": [
        "The river is long.",
        "We ate rice today.",
        "Rain fell all night.",
        "The bus is late.",
    ],
    "zho_Hans": ["这条河很长。", "我们今天吃了米饭。", "雨下了一整夜。", "公交车晚点了。"],
    "swh_Latn": [
        "Mto ni mrefu.",
        "Tulikula wali leo.",
        "Mvua ilinyesha usiku kucha.",
        "Basi limechelewa.",
    ],
    "fra_Latn": [
        "Le fleuve est long.",
        "Nous avons mangé du riz.",
        "Il a plu toute la nuit.",
        "Le bus est en retard.",
    ],
}


@pytest.fixture
def small_flores(tmp_path: Path) -> Path:
    """A four-language, four-sentence Flores-200 layout with dev and devtest."""
    root = tmp_path / "flores200_dataset"
    write_flores(root, "dev", SENTENCES)
    write_flores(root, "devtest", {code: lines[:2] for code, lines in SENTENCES.items()})
    return root


@pytest.fixture
def shared_corpora() -> Path:
    if not SHARED_CORPORA.is_dir():
        pytest.skip("../shared/corpora is not present (it is only in the developers' checkout)")
    return SHARED_CORPORA


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    """Run the real console entry point in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "bayling_data", *args],
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


class InterruptingExecutor(InProcessExecutor):
    """Runs ``budget`` work items, then stops the build as Ctrl-C would."""

    def __init__(self, budget: int):
        self.budget = budget

    def map(self, fn, items, on_done=None):
        results = []
        for index, item in enumerate(items):
            if self.budget == 0:
                raise KeyboardInterrupt
            self.budget -= 1
            results.append(fn(item))
            if on_done is not None:
                on_done(index)
        return results
