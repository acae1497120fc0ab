"""Every shipped build recipe writes answers in the script of the language each row says it
answers in (``tgt_lang``), and Traditional Chinese answers in Traditional characters.

The recipes are built as they are (whatever their sources, tasks and filters say), from the
bundled samples: the ``BAYLING_*`` variables that point them at other data are cleared.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import hanzidentifier
import numpy as np
import pyarrow as pa
import pytest
import yaml
from conftest import REPO

from bayling_data.filters.lid.backends import SCRIPTS, ScriptBackend, script_letters
from bayling_data.io.shards import read_split
from bayling_data.languages import registry
from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe


def build_recipes() -> list[Path]:
    """The shipped recipes that build a dataset (train_sample.yaml configures training)."""
    found = []
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        body = yaml.safe_load(path.read_text("utf-8"))
        if isinstance(body, dict) and "tasks" in body:
            found.append(path)
    return found


RECIPES = build_recipes()
# Tasks whose prompt names the language of the answer through its template's {tgt_name}.
NAMING_TASKS = ("translation", "constrained_translation")


def test_the_shipped_build_recipes_are_checked():
    assert {"pivot_zh_en.yaml", "bayling2_mix.yaml"} <= {path.name for path in RECIPES}


@pytest.fixture(scope="module", params=RECIPES, ids=[path.stem for path in RECIPES])
def built(request, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp(request.param.stem) / "out"
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("BAYLING_"):
                patch.delenv(name)
        report = run_build(load_recipe(request.param, [f"output.dir={out}"]))
    tables = [read_split(out, split) for split in report.manifest["splits"]]
    rows = pa.concat_tables(tables).to_pylist()
    assert rows, f"{request.param.name} built no rows"
    return rows


def answer(row: dict) -> str:
    """The text the row teaches the model to write: its last assistant message."""
    assistant = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
    assert assistant and row["messages"][-1]["role"] == "assistant"
    return assistant[-1]


def script_mismatch(counts: np.ndarray, script: str) -> str | None:
    """None when the letters of the registry ``script`` (Hans and Hant: Han; Jpan: Han and kana;
    Hang: Hangul and Han) outnumber those of every other script, else the dominant script."""
    own = [SCRIPTS.index(s) for s in script_letters(script) if s in SCRIPTS]
    inside = int(counts[own].sum())
    others = counts.copy()
    others[own] = 0
    best = int(others.argmax())
    return None if inside and inside >= others[best] else SCRIPTS[best]


def describe(row: dict, text: str, why: str) -> str:
    return (
        f"{row['task']} {row['template_id']} {row['direction']} (tgt_lang {row['tgt_lang']}, "
        f"prompt in {row['prompt_lang']}): {why}: {text[:80]!r}"
    )


def test_answers_are_in_the_script_of_their_language(built):
    reg = registry()
    texts = [answer(row) for row in built]
    counts = ScriptBackend().letter_counts(texts)
    judged, wrong = 0, []
    for row, text, row_counts in zip(built, texts, counts, strict=True):
        if not row_counts.any():
            continue  # no letters ("7.", "2024"): nothing to judge
        judged += 1
        found = script_mismatch(row_counts, reg.get(row["tgt_lang"]).script)
        if found is not None:
            wrong.append(describe(row, text, f"mostly {found or 'no letters'}"))
    assert judged > 0.9 * len(built)
    assert not wrong, f"{len(wrong)} of {judged} answers in another script:\n" + "\n".join(
        wrong[:20]
    )


def test_chinese_answers_are_in_the_characters_their_row_names(built):
    expected = {"zho_Hant": hanzidentifier.TRADITIONAL, "zho_Hans": hanzidentifier.SIMPLIFIED}
    opposite = {
        hanzidentifier.TRADITIONAL: hanzidentifier.SIMPLIFIED,
        hanzidentifier.SIMPLIFIED: hanzidentifier.TRADITIONAL,
    }
    wrong, seen = [], Counter()
    for row in built:
        script = expected.get(row["tgt_lang"])
        if script is None:
            continue
        seen[row["tgt_lang"]] += 1
        text = answer(row)
        if hanzidentifier.identify(text) == opposite[script]:
            wrong.append(describe(row, text, "written in the other Chinese script"))
    assert seen["zho_Hans"], "no Simplified Chinese answers to check"
    assert not wrong, f"{len(wrong)} Chinese answers in the wrong script:\n" + "\n".join(wrong[:20])


def test_translation_prompts_name_the_language_of_the_answer(built):
    reg = registry()
    rows = [row for row in built if row["task"] in NAMING_TASKS]
    wrong = []
    for row in rows:
        prompt = next(m["content"] for m in row["messages"] if m["role"] == "user")
        for side in ("src_lang", "tgt_lang"):
            name = reg.prompt_name(row[side], row["prompt_lang"])
            if name not in prompt:
                wrong.append(describe(row, prompt, f"{side} not named as {name!r}"))
    assert rows and not wrong, "\n".join(wrong[:20])
