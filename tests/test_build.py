from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pytest
import yaml
from conftest import SAMPLE_RECIPE, SENTENCES, run_cli, write_flores

from bayling_data.errors import BaylingError, CorpusError
from bayling_data.io.shards import read_split
from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe


def assert_alternates(messages: list[dict[str, str]]) -> None:
    """An optional system message, then user and assistant turns alternating, none empty."""
    roles = [m["role"] for m in messages]
    if roles and roles[0] == "system":
        roles = roles[1:]
    assert roles and roles == ["user", "assistant"] * (len(roles) // 2)
    assert all(m["content"] for m in messages)


def build_sample(out: Path, *overrides: str):
    recipe = load_recipe(SAMPLE_RECIPE, [f"output.dir={out}", *overrides])
    return run_build(recipe)


def shard_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.arrow"))}


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "out"
    build_sample(out)
    return out


def test_sample_build_loads_with_datasets(sample_build):
    loaded = datasets.load_from_disk(str(sample_build))
    manifest = json.loads((sample_build / "manifest.json").read_text("utf-8"))
    assert set(loaded) == set(manifest["splits"]) == {"train", "validation"}
    for split, ds in loaded.items():
        assert ds.num_rows == manifest["splits"][split]["rows"] > 0
        for messages in ds["messages"]:
            assert_alternates(messages)


def test_shards_load_with_the_arrow_builder(sample_build):
    files = sorted(str(p) for p in (sample_build / "train").glob("*.arrow"))
    ds = datasets.load_dataset("arrow", data_files={"train": files}, split="train")
    manifest = json.loads((sample_build / "manifest.json").read_text("utf-8"))
    assert ds.num_rows == manifest["splits"]["train"]["rows"]


def test_sample_covers_its_languages_with_both_prompt_languages(sample_build):
    manifest = json.loads((sample_build / "manifest.json").read_text("utf-8"))
    counts = manifest["splits"]["train"]["counts"]
    assert len(counts["language"]) >= 12
    assert set(counts["prompt_lang"]) == {"zho_Hans", "eng_Latn"}
    assert "swh_Latn-zho_Hans" in counts["direction"]
    assert "zho_Hans-eng_Latn" in counts["direction"]


def test_manifest_counts_match_the_shards(sample_build):
    manifest = json.loads((sample_build / "manifest.json").read_text("utf-8"))
    for split, entry in manifest["splits"].items():
        table = read_split(sample_build, split)
        assert table.num_rows == entry["rows"] == sum(s["rows"] for s in entry["shards"])
        for column in ("task", "direction", "src_lang", "tgt_lang", "prompt_lang"):
            counted = pa.compute.value_counts(table[column]).to_pylist()
            assert {c["values"]: c["counts"] for c in counted} == entry["counts"][column]


def test_validation_never_shares_a_sentence_with_train(sample_build):
    def segments(split: str) -> set[tuple[str, str, str]]:
        table = read_split(sample_build, split)
        return set(
            zip(
                table["source_corpus"].to_pylist(),
                table["source_split"].to_pylist(),
                table["source_segment_id"].to_pylist(),
                strict=True,
            )
        )

    assert segments("validation") and not segments("validation") & segments("train")


def test_ids_are_unique_and_funnel_adds_up(sample_build):
    manifest = json.loads((sample_build / "manifest.json").read_text("utf-8"))
    ids = [
        i for split in manifest["splits"] for i in read_split(sample_build, split)["id"].to_pylist()
    ]
    assert len(ids) == len(set(ids))
    for stage in manifest["funnel"]:
        for table in ("by_key", "by_language"):
            for entry in stage.get(table, {}).values():
                assert entry["in"] == entry["out"] + entry["dropped"]
                assert entry["dropped"] == sum(entry["reasons"].values())


def test_same_recipe_twice_gives_identical_bytes(tmp_path, sample_build):
    build_sample(tmp_path / "again")
    assert shard_files(tmp_path / "again") == shard_files(sample_build)
    first = json.loads((sample_build / "manifest.json").read_text("utf-8"))
    second = json.loads((tmp_path / "again" / "manifest.json").read_text("utf-8"))
    assert first["signature"] == second["signature"]
    first["recipe"]["output"].pop("dir")
    second["recipe"]["output"].pop("dir")
    assert first == second


def test_the_signature_changes_with_the_seed(tmp_path, sample_build):
    build_sample(tmp_path / "other", "seed=1")
    first = json.loads((sample_build / "manifest.json").read_text("utf-8"))
    second = json.loads((tmp_path / "other" / "manifest.json").read_text("utf-8"))
    assert first["signature"] != second["signature"]
    assert shard_files(tmp_path / "other") != shard_files(sample_build)


def test_rows_per_shard_and_no_shuffle(tmp_path):
    out = tmp_path / "o"
    build_sample(
        out, "output.rows_per_shard=500", "output.validation_fraction=0", "output.shuffle=false"
    )
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    shards = manifest["splits"]["train"]["shards"]
    assert len(shards) > 1 and all(s["rows"] <= 500 for s in shards)
    assert shards[0]["file"] == f"data-00000-of-{len(shards):05d}.arrow"
    assert list(manifest["splits"]) == ["train"]


def test_rebuild_replaces_a_previous_build_but_not_other_folders(tmp_path):
    out = tmp_path / "o"
    build_sample(out, "output.validation_fraction=0")
    build_sample(out, "output.validation_fraction=0", "seed=5")
    assert json.loads((out / "manifest.json").read_text("utf-8"))["seed"] == 5
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me", "utf-8")
    with pytest.raises(BaylingError, match="holds no bayling-data build"):
        build_sample(precious)
    assert (precious / "notes.txt").read_text("utf-8") == "keep me"


def test_a_failing_build_leaves_nothing_that_looks_finished(tmp_path, small_flores):
    # The corpus breaks on its last line, after the output staging has begun.
    with open(small_flores / "devtest" / "fra_Latn.devtest", "ab") as handle:
        handle.truncate(0)
        handle.write(b"ok\n\xff\n")
    out = tmp_path / "deep" / "out"
    recipe = load_recipe(SAMPLE_RECIPE, [f"sources.0.path={small_flores}", f"output.dir={out}"])
    with pytest.raises(CorpusError, match="invalid UTF-8"):
        run_build(recipe)
    assert not (tmp_path / "deep").exists()


def test_flores101_layout_builds(tmp_path):
    root = tmp_path / "flores101_dataset"
    write_flores(
        root,
        "dev",
        {
            "eng": SENTENCES["eng_Latn"],
            "zho_simpl": SENTENCES["zho_Hans"],
            "swh": SENTENCES["swh_Latn"],
        },
    )
    out = tmp_path / "o"
    build_sample(
        out, f"sources.0.path={root}", "target_languages=flores101", "output.validation_fraction=0"
    )
    table = read_split(out, "train")
    assert set(table["source_corpus"].to_pylist()) == {"flores101"}
    assert set(table["direction"].to_pylist()) == {
        "swh_Latn-zho_Hans",
        "swh_Latn-eng_Latn",
        "zho_Hans-swh_Latn",
        "eng_Latn-swh_Latn",
        "zho_Hans-eng_Latn",
        "eng_Latn-zho_Hans",
    }
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    funnel = {stage["name"]: stage for stage in manifest["funnel"]}
    assert funnel["translation"]["rows_out"] == 4 * 6
    dropped = sum(
        stage["rows_in"] - stage["rows_out"]
        for stage in manifest["funnel"]
        if stage["level"] == "instruction"
    )
    assert table.num_rows == 4 * 6 - dropped


def test_explicit_targets_must_be_in_a_source(tmp_path, small_flores):
    recipe = load_recipe(
        SAMPLE_RECIPE,
        [
            f"sources.0.path={small_flores}",
            f"output.dir={tmp_path / 'o'}",
            "target_languages=[swh, yor]",
        ],
    )
    with pytest.raises(BaylingError, match="target_languages: yor_Latn is in no source"):
        run_build(recipe)
    assert not (tmp_path / "o").exists()


def test_shared_flores200_builds_every_language(tmp_path, shared_corpora):
    out = tmp_path / "o"
    build_sample(out, f"sources.0.path={shared_corpora / 'flores200'}")
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    languages = set(manifest["sources"][0]["languages"])
    assert len(languages) == 204  # every Flores-200 dev file in ../shared/corpora
    total = 0
    for split, entry in manifest["splits"].items():
        table = read_split(out, split)
        assert table.num_rows == entry["rows"]
        total += table.num_rows
        langs = pa.compute.value_counts(table["src_lang"]).to_pylist()
        assert {c["values"]: c["counts"] for c in langs} == entry["counts"]["src_lang"]
    found = {lang for e in manifest["splits"].values() for lang in e["counts"]["language"]}
    assert found == languages
    # At most 202 targets x 2 pivots x 2 directions + 2 pivot directions per sentence, and the
    # filters keep nearly every side of clean dev text.
    funnel = {stage["name"]: stage for stage in manifest["funnel"]}
    generated = funnel["translation"]["rows_out"]
    assert 997 * 790 < generated <= 997 * 810
    dropped = sum(
        s["rows_in"] - s["rows_out"] for s in funnel.values() if s["level"] == "instruction"
    )
    assert total == generated - dropped


# --- the command line, as a user runs it ------------------------------------------------------


def test_cli_build_and_inspect(tmp_path):
    out = tmp_path / "cli_out"
    done = run_cli("build", str(SAMPLE_RECIPE), "--set", f"output.dir={out}")
    assert done.returncode == 0, done.stderr
    assert "rows written by task" in done.stderr
    assert (out / "manifest.json").is_file()
    shown = run_cli("inspect", str(out), "-n", "2")
    assert shown.returncode == 0, shown.stderr
    # Human summaries go to stderr (stdout is for --json).
    assert "translation" in shown.stderr and "assistant:" in shown.stderr
    assert shown.stdout == ""


def bad_recipe(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(SAMPLE_RECIPE.read_text("utf-8"))
    data["output"]["dir"] = str(tmp_path / "never")
    change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["output"].update(rows_per_shardd=5), "output.rows_per_shardd"),
        (lambda d: d.update(target_languages=["swh", "qqq"]), "'qqq'"),
        (lambda d: d["sources"][0].update(path="/no/such/flores"), "/no/such/flores"),
    ],
)
def test_cli_mistakes_are_one_line_without_traceback(tmp_path, change, named):
    path = bad_recipe(tmp_path, change)
    for command in ("build", "validate"):
        done = run_cli(command, str(path))
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert named in lines[0]
        assert not (tmp_path / "never").exists()


def test_cli_validate_ok():
    done = run_cli("validate", str(SAMPLE_RECIPE))
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


@pytest.mark.parametrize("query", ["swh", "斯瓦希里语", "Swahili", "sw"])
def test_cli_langs(query):
    done = run_cli("langs", query)
    assert done.returncode == 0, done.stderr
    assert "swh_Latn" in done.stdout and "斯瓦希里语" in done.stdout


def test_cli_langs_unknown():
    done = run_cli("langs", "swhh")
    assert done.returncode == 2
    assert "swh_Latn" in done.stderr and "Traceback" not in done.stderr


def test_a_moses_source_builds_through_the_recipe(tmp_path):
    (tmp_path / "talk.de-en.de").write_text("Guten Morgen.\nDanke schön.\n", "utf-8")
    (tmp_path / "talk.de-en.en").write_text("Good morning.\nThank you.\n", "utf-8")
    out = tmp_path / "o"
    source = f"{{type: moses, path: {tmp_path / 'talk.de-en'}}}"
    build_sample(out, f"sources.0={source}", "output.validation_fraction=0")
    table = read_split(out, "train")
    assert sorted(set(table["direction"].to_pylist())) == ["deu_Latn-eng_Latn", "eng_Latn-deu_Latn"]
    assert table.num_rows == 4
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["sources"][0]["type"] == "moses"
    assert manifest["languages"]["targets"] == ["deu_Latn"]


def test_unknown_source_type_lists_the_known_ones(tmp_path):
    with pytest.raises(
        BaylingError, match=r"sources\.0\.type: unknown type 'opus'; expected one of"
    ):
        load_recipe(SAMPLE_RECIPE, ["sources.0={type: opus, path: x}"])


def test_decontamination_in_a_build_removes_held_out_ids_in_every_language(tmp_path):
    from bayling_data.sources.samples import sample_path

    english = (sample_path("flores200") / "dev" / "eng_Latn.dev").read_text("utf-8").splitlines()
    held_out = {3, 17, 40}
    eval_root = tmp_path / "eval"
    (eval_root / "devtest").mkdir(parents=True)
    (eval_root / "devtest" / "eng_Latn.devtest").write_text(
        "".join(english[i - 1] + "\n" for i in sorted(held_out)), "utf-8"
    )
    common = ["output.validation_fraction=0", "sources.0.splits=[dev]"]
    build_sample(tmp_path / "plain", *common, "filters=[{type: dedup}]")
    decontaminate = (
        "{type: decontaminate, eval_sets: [{type: flores, path: " + str(eval_root) + "}]}"
    )
    build_sample(tmp_path / "clean", *common, f"filters=[{decontaminate}, {{type: dedup}}]")
    plain = read_split(tmp_path / "plain", "train")
    clean = read_split(tmp_path / "clean", "train")
    held = {str(i) for i in held_out}
    assert not held & set(clean["source_segment_id"].to_pylist())
    expected = {
        row_id
        for row_id, segment in zip(
            plain["id"].to_pylist(), plain["source_segment_id"].to_pylist(), strict=True
        )
        if segment not in held
    }
    assert set(clean["id"].to_pylist()) == expected
    manifest = json.loads((tmp_path / "clean" / "manifest.json").read_text("utf-8"))
    decon = next(s for s in manifest["funnel"] if s["name"] == "decontaminate")
    assert sum(decon["details"]["removed_by_eval_set"].values()) == len(held_out)


def test_the_funnel_adds_up_when_filters_drop(tmp_path):
    root = tmp_path / "dirty"
    eng = [
        "The river is long and wide in the spring.",
        "We ate rice with vegetables today at noon.",
        "Rain fell all night over the small town.",
        "The bus was late again this morning, sadly.",
        "The river is long and wide in the spring!",  # duplicate of line 1 up to punctuation
    ]
    swh = [
        "Mto ni mrefu na mpana wakati wa masika.",
        "Tulikula wali na mboga leo mchana.",
        "Мы ели рис с овощами сегодня в полдень.",  # Russian in the Swahili file
        "Basi lilichelewa tena asubuhi hii, kwa huzuni.",
        "Mvua kubwa ilinyesha jana usiku mjini.",
    ]
    zho = [
        "春天的时候，这条河又长又宽。",
        "我们今天中午吃了米饭和蔬菜。",
        "雨下了一整夜，笼罩着小镇。",
        "今天早上公共汽車又晚點了，真遺憾，這樣的事經常發生。",  # Traditional characters
        "昨晚镇上下了一场大雨。",
    ]
    write_flores(root, "dev", {"eng_Latn": eng, "swh_Latn": swh, "zho_Hans": zho})
    out = tmp_path / "o"
    build_sample(out, f"sources.0.path={root}", "output.validation_fraction=0")
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    funnel = {stage["name"]: stage for stage in manifest["funnel"]}
    assert funnel["lid"]["by_key"]["swh_Latn"]["reasons"] == {"wrong script": 1}
    assert funnel["normalize"]["by_key"]["zho_Hans"]["reasons"] == {"wrong Chinese script": 1}
    assert funnel["dedup_segment"]["by_key"]["eng_Latn"]["reasons"] == {"duplicate": 1}
    for stage in manifest["funnel"]:
        for table in ("by_key", "by_language"):
            for entry in stage.get(table, {}).values():
                assert entry["in"] == entry["out"] + entry["dropped"]
                assert entry["dropped"] == sum(entry["reasons"].values())
    # Segment filters see each side once; the next filter gets what the previous one let out.
    for before, after in (("normalize", "lid"), ("lid", "length"), ("length", "dedup_segment")):
        for code, entry in funnel[after]["by_key"].items():
            assert entry["in"] == funnel[before]["by_key"][code]["out"]
    table = read_split(out, "train")
    assert "swh_Latn" not in {
        lang
        for lang, seg in zip(
            table["src_lang"].to_pylist(), table["source_segment_id"].to_pylist(), strict=True
        )
        if seg == "3"
    }


MIX_RECIPE = SAMPLE_RECIPE.parent / "bayling2_mix.yaml"
FAMILIES = {
    "instructions_zh",
    "instructions_en",
    "translation",
    "constrained_translation",
    "comprehension",
    "chat",
    "pivot_qa",
}


def check_every_family(out: Path) -> pa.Table:
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    tables = [read_split(out, split) for split in manifest["splits"]]
    for table, (split, entry) in zip(tables, manifest["splits"].items(), strict=True):
        assert table.num_rows == entry["rows"]
        counted = pa.compute.value_counts(table["task"]).to_pylist()
        assert {c["values"]: c["counts"] for c in counted} == entry["counts"]["task"], split
    table = pa.concat_tables(tables)
    assert set(table["task"].to_pylist()) == FAMILIES
    for messages in table["messages"].to_pylist():
        assert_alternates(messages)
    return table


def test_the_bayling2_mix_recipe_builds_offline(tmp_path):
    out = tmp_path / "mix"
    run_build(load_recipe(MIX_RECIPE, [f"output.dir={out}"]))
    table = check_every_family(out)
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    kept = {task: entry["kept"] for task, entry in manifest["mixture"]["tasks"].items()}
    # The zh instructions are the scarcest relative to their weight (43): all are kept, and the
    # other tasks follow the weights.
    assert kept["instructions_zh"] == 30
    assert kept["instructions_en"] == int(30 / 43 * 26)
    assert table.num_rows == sum(kept.values())


def test_every_task_family_over_shared_flores(tmp_path, shared_corpora):
    def jsonl(path: Path, rows: list[dict]) -> str:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
        return str(path)

    zh = jsonl(
        tmp_path / "zh.jsonl",
        [
            {"instruction": f"写一句关于数字{i}的话。", "input": "", "output": f"{i}是一个数字。"}
            for i in range(200)
        ],
    )
    en = jsonl(
        tmp_path / "en.jsonl",
        [
            {"instruction": f"Say something about {i}.", "input": "", "output": f"{i} is a number."}
            for i in range(200)
        ],
    )
    qa_rows = []
    for i in range(20):
        for lang, question, answer in (
            ("zho_Hans", f"{i}加一等于几？", f"{i + 1}。"),
            ("eng_Latn", f"What is {i} plus one?", f"{i + 1}."),
            ("swh_Latn", f"{i} jumlisha moja ni ngapi?", f"{i + 1}."),
        ):
            qa_rows.append({"id": f"q{i}", "lang": lang, "question": question, "answer": answer})
    qa = jsonl(tmp_path / "qa.jsonl", qa_rows)
    out = tmp_path / "all"
    overrides = [
        f"sources.0.path={shared_corpora / 'flores200'}",
        f"tasks.0.path={zh}",
        f"tasks.1.path={en}",
        f"tasks.6.path={qa}",
        "target_languages=flores200",
        f"output.dir={out}",
    ]
    run_build(load_recipe(MIX_RECIPE, overrides))
    table = check_every_family(out)
    chats = [
        m
        for m, t in zip(table["messages"].to_pylist(), table["task"].to_pylist(), strict=True)
        if t == "chat"
    ]
    assert chats and all(sum(x["role"] == "user" for x in m) >= 2 for m in chats)
