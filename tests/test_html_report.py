"""The HTML report: each plot's numbers match the manifest, and the page is self-contained."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest
from conftest import manifest_of, summed_counts

from bayling_data.io.html_report import PLOTS, write_report
from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe

REPO = Path(__file__).resolve().parent.parent


def _build(recipe: str, out: Path, *overrides: str) -> Path:
    run_build(load_recipe(str(REPO / "recipes" / recipe), [f"output.dir={out}", *overrides]))
    return out


@pytest.fixture(scope="module")
def pivot_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build("pivot_zh_en.yaml", tmp_path_factory.mktemp("pivot") / "out")


@pytest.fixture(scope="module")
def mix_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bayling2_mix with English instructions that carry HTML, to check the escaping."""
    root = tmp_path_factory.mktemp("mix")
    items = root / "en.jsonl"
    lines = [
        {
            "instruction": f"Explain this tag number {i}: <script>alert({i})</script>",
            "input": "",
            "output": f"It runs code {i} & more <b>bold</b>.",
        }
        for i in range(30)
    ]
    items.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    return _build("bayling2_mix.yaml", root / "out", f"tasks.1.path={items}")


def _funnel(manifest: dict) -> dict[str, dict[str, dict[str, int]]]:
    expected = {}
    for stage in manifest["funnel"]:
        field = {"segment": "by_key", "instruction": "by_language"}.get(stage["level"])
        if field is None:
            continue
        name = stage["name"] if stage["name"] not in expected else f"{stage['name']}#2"
        expected[name] = {
            lang: {k: entry[k] for k in ("in", "dropped", "out")}
            for lang, entry in stage[field].items()
        }
    return expected


@pytest.mark.parametrize("which", ["pivot_build", "mix_build"])
def test_numbers_match_the_manifest(which: str, request: pytest.FixtureRequest, tmp_path: Path):
    out = request.getfixturevalue(which)
    manifest = manifest_of(out)
    result = write_report(out, tmp_path / "rep")
    total_rows = sum(split["rows"] for split in manifest["splits"].values())

    assert result.rows_by_language == summed_counts(manifest, "language")
    assert result.rows_by_task == summed_counts(manifest, "task")
    assert result.rows_by_direction == summed_counts(manifest, "direction")
    assert result.funnel == _funnel(manifest)
    assert set(result.length_histograms) == set(result.rows_by_task)
    for task, (counts, edges) in result.length_histograms.items():
        assert sum(counts) == result.rows_by_task[task]
        assert len(edges) == len(counts) + 1
    assert sum(sum(c) for c, _ in result.length_histograms.values()) == total_rows
    assert result.length_unit == "characters" and result.tokenizer is None
    assert set(result.tokens_by_language) == set(result.rows_by_language)
    assert all(v > 0 for v in result.tokens_by_language.values())
    assert result.tier_by_language["eng_Latn"] == "high"
    assert set(result.samples) == set(result.rows_by_task)
    # The figures at this scale too: a fixed size, and every row in one category and kind.
    assert sum(sum(t.values()) for t in result.rows_by_category.values()) == total_rows
    assert sum(result.rows_by_direction_kind.values()) == total_rows
    assert result.funnel_rows[-1] == {
        "stage": "written",
        "level": "output",
        "unit": "rows",
        "in": total_rows,
        "out": total_rows,
        "dropped": 0,
    }
    for path in result.png_paths.values():
        width, height = struct.unpack(">II", path.read_bytes()[16:24])
        assert max(width, height) <= 2400


def test_mix_has_every_task_family(mix_build: Path, tmp_path: Path):
    result = write_report(mix_build, tmp_path / "rep")
    assert len(result.rows_by_task) >= 6
    assert {"translation", "chat", "comprehension"} <= set(result.rows_by_task)
    # BayLing 2's categories: the pivot instructions are the Chinese and English rows.
    tasks = summed_counts(manifest_of(mix_build), "task")
    assert result.rows_by_category["Chinese"] == {"instructions_zh": tasks["instructions_zh"]}
    assert result.rows_by_category["English"] == {"instructions_en": tasks["instructions_en"]}
    assert "translation" in result.rows_by_category["cross-lingual"]


def test_html_embeds_every_png_and_reads_offline(pivot_build: Path, tmp_path: Path):
    result = write_report(pivot_build, tmp_path / "rep")
    page = result.html_path.read_text("utf-8")
    assert set(result.png_paths) == set(PLOTS)
    for path in result.png_paths.values():
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG")
        assert f"data:image/png;base64,{base64.b64encode(data).decode()}" in page
    for external in ("<script", "<link", "http://", "https://", "@import"):
        assert external not in page


def test_samples_are_escaped(mix_build: Path, tmp_path: Path):
    result = write_report(mix_build, tmp_path / "rep")
    page = result.html_path.read_text("utf-8")
    assert any("<script>" in row["user"] for row in result.samples["instructions_en"])
    assert "&lt;script&gt;alert(" in page
    assert "<script" not in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_default_folder_keeps_the_build_loadable(pivot_build: Path):
    datasets = pytest.importorskip("datasets")
    result = write_report(pivot_build)
    assert result.html_path == pivot_build / "report" / "report.html"
    assert all(p.parent == pivot_build / "report" for p in result.png_paths.values())
    loaded = datasets.load_from_disk(str(pivot_build))
    manifest = manifest_of(pivot_build)
    assert {name: len(split) for name, split in loaded.items()} == {
        name: split["rows"] for name, split in manifest["splits"].items()
    }


def test_same_build_same_numbers(pivot_build: Path, tmp_path: Path):
    first = write_report(pivot_build, tmp_path / "a")
    second = write_report(pivot_build, tmp_path / "b")
    for name in (
        "rows_by_language",
        "tokens_by_language",
        "rows_by_task",
        "rows_by_direction",
        "length_histograms",
        "funnel",
        "samples",
    ):
        assert getattr(first, name) == getattr(second, name)


def test_recipe_tokenizer_is_named(tmp_path: Path):
    from bayling_data.io.html_report import _recipe_tokenizer

    recipe = {"filters": [{"type": "length", "unit": "tokens", "tokenizer": "spm/x.model"}]}
    assert _recipe_tokenizer(recipe) == "spm/x.model"
    assert _recipe_tokenizer({"filters": [{"type": "length", "tokenizer": None}]}) is None


def test_report_command_line(tmp_path):
    from bayling_data.cli import main

    out = tmp_path / "build"
    run_build(load_recipe(REPO / "recipes" / "pivot_zh_en.yaml", [f"output.dir={out}"]))
    assert main(["report", str(out), "--to", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.html").is_file()
    assert main(["report", str(tmp_path / "nothing")]) == 2
