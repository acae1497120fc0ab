from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import SAMPLE_RECIPE

from bayling_data.errors import RecipeError
from bayling_data.recipe import apply_override, load_recipe


def write_recipe(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return path


@pytest.fixture
def base() -> dict:
    return {
        "name": "t",
        "seed": 1,
        "target_languages": ["swh", "fr"],
        "sources": [{"type": "flores", "path": "corpus"}],
        "tasks": [{"type": "translation"}],
        "filters": [{"type": "normalize"}, {"type": "length", "max": 100}],
        "output": {"dir": "out"},
    }


def test_sample_recipe_is_valid():
    recipe = load_recipe(SAMPLE_RECIPE)
    assert recipe.pivot_languages == ["zho_Hans", "eng_Latn"]
    assert recipe.sources[0].path == "sample:flores200"


def test_languages_are_resolved_to_flores200(tmp_path, base):
    recipe = load_recipe(write_recipe(tmp_path, base))
    assert recipe.target_languages == ["swh_Latn", "fra_Latn"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(sead=3), "sead: unknown key (did you mean 'seed'?)"),
        (
            lambda d: d["tasks"][0].update(wieght=2),
            "tasks.0.wieght: unknown key (did you mean 'weight'?)",
        ),
        (
            lambda d: d["filters"][1].update(maxx=5),
            "filters.1.maxx: unknown key (did you mean 'max'?)",
        ),
        (lambda d: d["output"].update(rows_per_shard="many"), "output.rows_per_shard:"),
        (
            lambda d: d.update(target_languages=["swh", "xx_Fake"]),
            "target_languages: item 1: unknown language 'xx_Fake'",
        ),
        (lambda d: d.update(target_languages="flores300"), "named sets flores101, flores200"),
        (
            lambda d: d["filters"][0].update(type="normalise"),
            "filters.0.type: unknown type 'normalise'",
        ),
        (lambda d: d.pop("output"), "output: required key is missing"),
        (
            lambda d: d["filters"][1].update(min=500),
            "min (500) is above max (100)",
        ),
        (
            lambda d: d["tasks"][0].update(prompt_languages={"fra": 1}),
            "fra_Latn is not a pivot language",
        ),
    ],
)
def test_mistakes_name_the_key(tmp_path, base, change, expected):
    change(base)
    path = write_recipe(tmp_path, base)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    message = str(err.value)
    assert message.startswith(str(path) + ": ")
    assert expected in message
    assert "\n" not in message


def test_unknown_key_lists_what_is_expected(tmp_path, base):
    base["output"]["shards"] = 3
    with pytest.raises(RecipeError, match="expected one of: dir, rows_per_shard"):
        load_recipe(write_recipe(tmp_path, base))


def test_env_substitution(tmp_path, base, monkeypatch):
    base["sources"][0]["path"] = "${CORPUS_ROOT}/flores"
    base["output"]["dir"] = "${OUT_ROOT:-default_out}"
    path = write_recipe(tmp_path, base)
    monkeypatch.setenv("CORPUS_ROOT", "/data")
    monkeypatch.delenv("OUT_ROOT", raising=False)
    recipe = load_recipe(path)
    assert recipe.sources[0].path == "/data/flores"
    assert recipe.output.dir == "default_out"
    monkeypatch.delenv("CORPUS_ROOT")
    with pytest.raises(
        RecipeError, match=r"sources\.0\.path: environment variable CORPUS_ROOT is not set"
    ):
        load_recipe(path)


def test_overrides(tmp_path, base):
    path = write_recipe(tmp_path, base)
    recipe = load_recipe(
        path,
        [
            "seed=7",
            "sources.0.path=/elsewhere",
            "target_languages=[yor, zh-Hant]",
            "output.shuffle=false",
        ],
    )
    assert recipe.seed == 7
    assert recipe.sources[0].path == "/elsewhere"
    assert recipe.target_languages == ["yor_Latn", "zho_Hant"]
    assert recipe.output.shuffle is False


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("sources.3.path=x", "not an item of a list of 1 entries"),
        ("seed", "expected key.path=value"),
        ("seed.x=1", "seed is not a mapping or list"),
        ("output.dirr=x", "output.dirr: unknown key"),
    ],
)
def test_bad_overrides(tmp_path, base, override, expected):
    with pytest.raises(RecipeError, match=expected):
        load_recipe(write_recipe(tmp_path, base), [override])


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsources: [\n  - a: b\n", "utf-8")
    with pytest.raises(RecipeError, match=r"broken\.yaml:\d+: could not parse the YAML"):
        load_recipe(path)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")


def test_apply_override_creates_nested_keys():
    data: dict = {}
    apply_override(data, "output.dir=x")
    assert data == {"output": {"dir": "x"}}
