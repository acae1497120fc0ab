"""Issue 15: a dataset card and a report that hold at 204 languages.

The card names every source with its licence and rows and publishes no local path; the plots have
a fixed size and add up to the manifest; ``--json`` prints one object that matches the manifest;
``inspect`` summarises; ``report --tokenizer`` reads local tokenizers only.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, SHARED_CORPORA, manifest_of, summed_counts

from bayling_data.cli import main
from bayling_data.errors import BaylingError
from bayling_data.io.card import public_path, public_recipe
from bayling_data.io.html_report import write_report
from bayling_data.io.publish import publish
from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe

MIX = REPO / "recipes" / "bayling2_mix.yaml"
PIVOT = REPO / "recipes" / "pivot_zh_en.yaml"
FLORES_DEV = SHARED_CORPORA / "flores200" / "dev"
LINES_PER_LANGUAGE = 6  # of the 997: every language, few rows, a fast build


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _front_matter(readme: Path) -> dict:
    return yaml.safe_load(readme.read_text("utf-8").split("---\n")[1])


def _local_paths(*paths: Path) -> list[bytes]:
    """Absolute paths of this machine that must not be published (and their parents that are
    specific enough: the temporary folders, the checkout, the home folder)."""
    found = {str(p.resolve()) for p in paths} | {str(REPO), str(Path.home())}
    return [p.encode() for p in found if len(p) > 4]


def _instruction_file(path: Path, lang: str, n: int) -> Path:
    rows = [
        {"instruction": f"{lang} instruction {i}: say a number", "input": "", "output": f"{i}"}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


@pytest.fixture(scope="module")
def mix_with_local_instructions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """bayling2_mix with the two instruction sources read from local files (licences unknown)."""
    root = tmp_path_factory.mktemp("mixlocal")
    zh = _instruction_file(root / "my_zh_instructions.jsonl", "zh", 30)
    en = _instruction_file(root / "my_en_instructions.jsonl", "en", 30)
    out = root / "out"
    run_build(load_recipe(MIX, [f"output.dir={out}", f"tasks.0.path={zh}", f"tasks.1.path={en}"]))
    staging = root / "staging"
    publish(out, "org/mix", dry_run=True, staging_dir=staging, echo=lambda _: None)
    return {"root": root, "out": out, "staging": staging, "zh": zh, "en": en}


def test_card_names_every_source_with_licence_and_rows(mix_with_local_instructions):
    staging = mix_with_local_instructions["staging"]
    card = (staging / "README.md").read_text("utf-8")
    meta = _front_matter(staging / "README.md")
    rows: Counter[str] = Counter()
    for part in (staging / "data").glob("*.parquet"):
        rows.update(pq.read_table(part, columns=["source_corpus"])["source_corpus"].to_pylist())
    assert {"flores200", "my_zh_instructions", "my_en_instructions"} <= set(rows)
    table = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[1:-1]]
        for line in card.split("##### Sources")[1].split("License of the data set")[0].splitlines()
        if line.startswith("| ") and not line.startswith("| corpus")
    }
    assert set(table) == set(rows)
    for corpus, n in rows.items():
        assert table[corpus][4] == f"{n:,}"  # rows column
    assert table["flores200"][5] == "cc-by-sa-4.0"  # the bundled sample's licence
    assert table["my_zh_instructions"][5].startswith("unknown")
    assert table["my_en_instructions"][2] == "`<local>/my_en_instructions.jsonl`"
    # An unknown licence makes the combined one "other", never the recipe's claim.
    assert meta["license"] == "other"
    assert "not known for my_en_instructions, my_zh_instructions" in card


def test_no_local_path_in_any_published_file(mix_with_local_instructions):
    paths = mix_with_local_instructions
    forbidden = _local_paths(paths["root"], paths["out"], paths["zh"], paths["en"])
    files = [p for p in paths["staging"].rglob("*") if p.is_file()]
    assert len(files) >= 3
    for path in files:
        data = path.read_bytes()
        for local in forbidden:
            assert local not in data, f"{path.name} publishes {local!r}"


def test_card_metadata_parses_with_huggingface_hub(tmp_path: Path):
    from huggingface_hub import DatasetCard

    out = tmp_path / "out"
    run_build(load_recipe(PIVOT, [f"output.dir={out}"]))
    publish(out, "org/pivot", dry_run=True, staging_dir=tmp_path / "s", echo=lambda _: None)
    card = DatasetCard.load(tmp_path / "s" / "README.md")
    data = card.data.to_dict()
    assert {"zh-Hans", "zh-Hant"} <= set(data["language_details"])
    assert data["language"].count("zh") == 1
    assert data["license"] == "cc-by-sa-4.0"  # every source is CC BY-SA 4.0 here
    assert set(data["multilinguality"]) == {"multilingual", "translation"}
    assert data["source_datasets"] == ["original"]  # the bundled sample, not Flores itself
    assert data["annotations_creators"] == ["machine-generated"]
    assert data["language_creators"]
    manifest = manifest_of(out)
    info = data["dataset_info"]
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {
        s: v["rows"] for s, v in manifest["splits"].items()
    }
    assert [f["name"] for f in info["features"]][:3] == ["id", "messages", "task"]
    for section in (
        "## Uses",
        "## Dataset Structure",
        "## Bias, Risks, and Limitations",
        "## Citation",
        "BayLing 2",
    ):
        assert section in card.text
    # The Languages table counts rows, not sides: eng_Latn appears in every row with it once.
    eng = next(line for line in card.text.splitlines() if line.startswith("| eng_Latn |"))
    cells = [c.strip() for c in eng.split("|")[1:-1]]
    src, tgt = int(cells[4].replace(",", "")), int(cells[5].replace(",", ""))
    assert int(cells[3].replace(",", "")) == src + tgt - summed_counts(manifest, "direction").get(
        "eng_Latn-eng_Latn", 0
    )


def test_public_paths():
    assert public_path("/home/me/data/flores200") == "<local>/flores200"
    assert public_path("sample:flores200") == "sample:flores200"
    assert public_path("C:\\data\\zh.jsonl") == "<local>/zh.jsonl"
    assert public_path("auto") == "auto"
    recipe = {
        "sources": [{"path": "/srv/x/flores"}],
        "filters": [{"tokenizer": "Qwen/Qwen2-7B"}, {"eval_dirs": ["/data/eval", ""]}],
        "output": {"dir": "/tmp/out", "shuffle": True},
    }
    assert public_recipe(recipe) == {
        "sources": [{"path": "<local>/flores"}],
        "filters": [{"tokenizer": "Qwen/Qwen2-7B"}, {"eval_dirs": ["<local>/eval", ""]}],
        "output": {"shuffle": True},
    }


# --- 204 languages ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_scale(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A build of every Flores-200 dev language (the first lines of each file), its report and
    its staged repo, made once for the module."""
    if not FLORES_DEV.is_dir():
        pytest.skip("../shared/corpora/flores200/dev is not present")
    root = tmp_path_factory.mktemp("flores204")
    dev = root / "flores200" / "dev"
    dev.mkdir(parents=True)
    for path in sorted(FLORES_DEV.glob("*.dev")):
        with path.open(encoding="utf-8", newline="\n") as source:
            head = [next(source) for _ in range(LINES_PER_LANGUAGE)]
        (dev / path.name).write_text("".join(head), "utf-8", newline="\n")
    out = root / "out"
    run_build(load_recipe(PIVOT, [f"output.dir={out}", f"sources.0.path={root / 'flores200'}"]))
    report = write_report(out, root / "report")
    staging = root / "staging"
    publish(out, "org/flores204", dry_run=True, staging_dir=staging, echo=lambda _: None)
    return {"root": root, "out": out, "report": report, "staging": staging}


def test_every_png_is_at_most_2400_px(full_scale):
    report = full_scale["report"]
    assert len(report.language_rows) == 204
    for name, path in report.png_paths.items():
        width, height = _png_size(path)
        assert max(width, height) <= 2400, (name, width, height)
        assert min(width, height) >= 600, (name, width, height)


def test_report_figures_add_up_to_the_manifest(full_scale):
    report, manifest = full_scale["report"], manifest_of(full_scale["out"])
    total = sum(split["rows"] for split in manifest["splits"].values())
    assert report.total_rows == total
    # Fig. 3: the categories and the direction kinds each cover every row once.
    assert sum(sum(t.values()) for t in report.rows_by_category.values()) == total
    assert sum(report.rows_by_direction_kind.values()) == total
    per_task: Counter[str] = Counter()
    for tasks in report.rows_by_category.values():
        per_task.update(tasks)
    assert dict(per_task) == summed_counts(manifest, "task")
    # Fig. 2: rows per language, a row counted once per language it involves.
    src, tgt = summed_counts(manifest, "src_lang"), summed_counts(manifest, "tgt_lang")
    directions = summed_counts(manifest, "direction")
    for code, n in report.language_rows.items():
        same = directions.get(f"{code}-{code}", 0)
        assert n == src.get(code, 0) + tgt.get(code, 0) - same
    # The funnel, in rows from the tasks on, ends with the mixture and the rows written.
    stages = report.funnel_rows
    assert [s["stage"] for s in stages[-2:]] == ["mixture", "written"]
    assert stages[-1]["out"] == total and stages[-2]["out"] == total
    rows_stages = [s for s in stages if s["unit"] == "rows"]
    for before, after in pairwise(rows_stages):
        assert after["in"] == before["out"]
    filters = [f for f in manifest["funnel"] if f["level"] == "instruction"]
    assert stages[-3]["out"] == filters[-1]["rows_out"]
    segment = [f for f in manifest["funnel"] if f["level"] == "segment"]
    sides = [s for s in stages if s["unit"] == "sides"]
    assert [s["out"] for s in sides] == [
        sum(e["out"] for e in f["by_key"].values()) for f in segment
    ]


def test_card_at_full_scale(full_scale):
    staging = full_scale["staging"]
    meta = _front_matter(staging / "README.md")
    assert len(meta["language_details"]) == 204
    assert len(set(meta["language"])) < 204  # zho_Hans and zho_Hant share "zh", and others
    assert "extended|facebook/flores" in meta["source_datasets"]
    card = (staging / "README.md").read_text("utf-8")
    assert "No Language Left Behind" in card  # a real Flores source is cited
    forbidden = _local_paths(full_scale["root"], full_scale["out"], FLORES_DEV)
    for path in staging.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(local in data for local in forbidden), path.name


def test_inspect_summarises_a_204_language_build(full_scale, capsys):
    out = full_scale["out"]
    assert main(["inspect", str(out)]) == 0
    shown = capsys.readouterr()
    assert shown.out == ""  # human summaries go to stderr
    lines = shown.err.splitlines()
    assert 20 < len(lines) <= 60
    assert any("… and 196 more" in line for line in lines)
    assert main(["inspect", str(out), "--all", "-n", "0"]) == 0
    every = capsys.readouterr().err
    assert len(every.splitlines()) > 800  # every language and direction
    assert "… and" not in every


def test_json_outputs_match_the_manifest(full_scale, tmp_path, capsys):
    out = full_scale["out"]
    manifest = manifest_of(out)
    rows = {s: v["rows"] for s, v in manifest["splits"].items()}

    assert main(["inspect", str(out), "--json", "-n", "1"]) == 0
    printed = capsys.readouterr()
    shown = json.loads(printed.out)
    assert printed.err == ""
    assert shown["signature"] == manifest["signature"]
    assert {s: v["rows"] for s, v in shown["splits"].items()} == rows
    assert shown["splits"]["train"]["counts"] == manifest["splits"]["train"]["counts"]
    assert len(shown["samples"]) == 1

    argv = ["export", str(out), "--format", "jsonl", "--to", str(tmp_path / "e"), "--json"]
    assert main(argv) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["rows"] == rows and exported["format"] == "jsonl"
    assert all(Path(p).is_file() for p in exported["files"].values())

    assert main(["report", str(out), "--to", str(tmp_path / "r"), "--json", "--quiet"]) == 0
    printed = capsys.readouterr()
    reported = json.loads(printed.out)
    assert printed.err == ""
    assert reported["figures"]["total_rows"] == sum(rows.values())
    assert reported["figures"]["rows_by_task"] == summed_counts(manifest, "task")
    assert reported["figures"]["funnel"][-1]["out"] == sum(rows.values())
    assert set(reported["png"]) == {"languages", "categories", "lengths", "funnel"}

    staged = tmp_path / "s"
    argv = ["publish", str(out), "--repo", "org/x", "--dry-run", "--staging-dir", str(staged)]
    assert main([*argv, "--json"]) == 0
    printed = capsys.readouterr()
    published = json.loads(printed.out)
    assert "would create dataset repo org/x" in printed.err
    assert published["dry_run"] and published["rows"] == rows and published["url"] is None
    assert "README.md" in published["files"]


def test_build_json(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["build", str(PIVOT), "--set", f"output.dir={out}", "--json", "--quiet"]) == 0
    printed = capsys.readouterr()
    built = json.loads(printed.out)
    assert printed.err == ""
    manifest = manifest_of(out)
    assert built["signature"] == manifest["signature"]
    assert built["rows"] == {s: v["rows"] for s, v in manifest["splits"].items()}
    assert built["tasks"] == summed_counts(manifest, "task")
    assert built["languages"] == len(summed_counts(manifest, "language"))


# --- report --tokenizer -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "out"
    run_build(load_recipe(PIVOT, [f"output.dir={out}"]))
    return out


def _texts(out: Path, splits: tuple[str, ...] = ("train",)) -> list[str]:
    from bayling_data.io.shards import read_split

    texts = []
    for split in splits:
        messages = read_split(out, split)["messages"].to_pylist()
        texts += ["\n".join(m["content"] for m in msgs) for msgs in messages]
    return texts


def test_report_tokenizer_json(small_build: Path, tmp_path: Path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    tokenizer = tokenizers.Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    texts = _texts(small_build)
    tokenizer.train_from_iterator(texts[:200], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    result = write_report(small_build, tmp_path / "r", tokenizer=str(path))
    assert result.length_unit == "tokens" and result.tokenizer_label == "tokenizer.json"
    manifest = manifest_of(small_build)
    assert sum(sum(c) for c, _ in result.length_histograms.values()) == sum(
        s["rows"] for s in manifest["splits"].values()
    )
    every = _texts(small_build, ("train", "validation"))
    expected = sum(len(e.ids) for e in tokenizer.encode_batch(every, add_special_tokens=False))
    assert result.mean_length["translation"] * len(every) == pytest.approx(expected)
    # The folder that holds it works the same.
    again = write_report(small_build, tmp_path / "r2", tokenizer=str(tmp_path))
    assert again.length_histograms == result.length_histograms


def test_report_sentencepiece_model(small_build: Path, tmp_path: Path, capsys):
    import sentencepiece

    # English text (few distinct characters) for a tiny vocabulary; other scripts map to <unk>.
    corpus = REPO / "bayling_data" / "data" / "sample_flores" / "dev" / "eng_Latn.dev"
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tmp_path / "tiny"),
        vocab_size=200,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    model = tmp_path / "tiny.model"
    argv = ["report", str(small_build), "--to", str(tmp_path / "r"), "--tokenizer", str(model)]
    assert main([*argv, "--json", "--quiet"]) == 0
    figures = json.loads(capsys.readouterr().out)["figures"]
    assert figures["length_unit"] == "tokens" and figures["tokenizer"] == "tiny.model"
    processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
    first = _texts(small_build)[0]
    assert len(processor.encode(first)) > 0


def test_report_tokenizer_errors_are_one_line(
    small_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(BaylingError, match="Hub is offline") as info:
        write_report(small_build, tmp_path / "r", tokenizer="some-org/some-tokenizer")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r").exists()  # refused before anything was written
    bad = ["report", str(small_build), "--to", str(tmp_path / "r"), "--tokenizer"]
    assert main([*bad, str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no such file" in err
    (tmp_path / "broken.json").write_text("{not json", "utf-8")
    pytest.importorskip("tokenizers")
    assert main([*bad, str(tmp_path / "broken.json")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a tokenizers JSON file" in err


# --- loading shards with a glob ---------------------------------------------------------------


def test_readme_glob_only_matches_shards(small_build: Path, tmp_path: Path):
    import datasets

    readme = (REPO / "README.md").read_text("utf-8")
    sharing = (REPO / "docs" / "sharing.md").read_text("utf-8")
    assert "train/*.arrow" not in readme + sharing
    assert "train/data-*-of-*.arrow" in readme
    # A consumer's .map() on load_from_disk writes cache-*.arrow beside the shards ...
    loaded = datasets.load_from_disk(str(small_build))
    loaded["train"].map(lambda row: {"n": len(row["messages"])})
    assert list((small_build / "train").glob("cache-*.arrow"))
    # ... and the documented glob still reads exactly the shards.
    ds = datasets.load_dataset(
        "arrow",
        data_files=str(small_build / "train" / "data-*-of-*.arrow"),
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert ds.num_rows == manifest_of(small_build)["splits"]["train"]["rows"]
