from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import SAMPLE_RECIPE, run_cli

from bayling_data.errors import RecipeError
from bayling_data.recipe import _substitute_env, apply_override, load_recipe


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


# --- YAML limits (issue 16): a recipe cannot hurt a build ----------------------------------------

BILLION_LAUGHS = """\
name: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def write_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text, "utf-8")
    return path


def one_line_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(RecipeError) as err:
        load_recipe(path, overrides)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_billion_laughs_is_refused(tmp_path):
    path = write_text(tmp_path, BILLION_LAUGHS)
    message = one_line_error(path)
    assert message.startswith(f"{path}:6: ")
    assert "aliases expand to more than 100,000 nodes" in message


def test_self_referencing_alias_is_refused(tmp_path):
    path = write_text(tmp_path, "a: &a [*a]\n")
    message = one_line_error(path)
    assert message.startswith(f"{path}:1: ")
    assert "alias *a refers to a node that contains it" in message


def test_self_referencing_alias_in_an_override_is_refused(tmp_path, base):
    message = one_line_error(write_recipe(tmp_path, base), ("sources=&a [*a]",))
    assert message.startswith("--set sources: alias *a refers to a node that contains it")


@pytest.mark.parametrize("opening", ["[", "{a: ", "- "])
def test_deep_nesting_is_refused(tmp_path, opening):
    text = "x:\n  " + opening * 20_000 + "\n"
    message = one_line_error(write_text(tmp_path, text))
    assert "nested more than 100 levels deep" in message


def test_deep_nesting_in_an_override_is_refused(tmp_path, base):
    message = one_line_error(write_recipe(tmp_path, base), ("sources=" + "[" * 20_000,))
    assert message.startswith("--set sources: nested more than 100 levels deep")


def test_nesting_up_to_the_limit_is_read(tmp_path, base):
    # The top-level mapping is level 1, so a key may hold 99 more levels.
    value = "[" * 99 + "]" * 99
    message = one_line_error(write_recipe(tmp_path, base), (f"description={value}",))
    assert "description:" in message and "nested" not in message


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("seed: !!int 1!\n", 2, "seed: cannot read '1!' as an integer"),
        ("seed: !!float n\n", 2, "seed: cannot read 'n' as a number"),
        ("output:\n  dir: !!timestamp x\n", 3, "output.dir: cannot read 'x' as a date or time"),
        ("seed: !!python/object:os.system x\n", 2, "seed: could not determine a constructor"),
    ],
)
def test_bad_tags_name_the_file_line_and_key(tmp_path, text, line, expected):
    path = write_text(tmp_path, "name: t\n" + text)
    message = one_line_error(path)
    assert message.startswith(f"{path}:{line}: {expected}")


def test_bad_tag_in_an_override(tmp_path, base):
    message = one_line_error(write_recipe(tmp_path, base), ("seed=!!int 1!",))
    assert message == "--set seed: cannot read '1!' as an integer"


def test_override_that_is_not_yaml_is_still_a_string(tmp_path, base):
    recipe = load_recipe(write_recipe(tmp_path, base), ["description=a: b: c"])
    assert recipe.description == "a: b: c"


REUSED_ANCHOR = """\
name: &name anchors
description: *name
target_languages: &targets [swh, fr]
sources:
  - {type: flores, path: corpus}
tasks:
  - &task {type: translation}
  - *task
filters:
  - &length {type: length, max: 100}
  - *length
output: {dir: "${OUT_ROOT:-out}"}
"""


def test_a_reused_anchor_still_loads(tmp_path, monkeypatch):
    monkeypatch.delenv("OUT_ROOT", raising=False)
    recipe = load_recipe(write_text(tmp_path, REUSED_ANCHOR))
    assert recipe.description == "anchors"
    assert recipe.target_languages == ["swh_Latn", "fra_Latn"]
    assert len(recipe.tasks) == 2 and len(recipe.filters) == 2
    assert recipe.filters[1].max == 100
    assert recipe.output.dir == "out"


def test_override_of_a_reused_node_changes_only_its_place(tmp_path):
    recipe = load_recipe(write_text(tmp_path, REUSED_ANCHOR), ["tasks.0.weight=3"])
    assert recipe.tasks[0].weight == 3
    assert recipe.tasks[1].weight == 1


def test_substitution_keeps_shared_nodes_shared():
    shared = {"path": "${NOT_SET_HERE:-x}"}
    result = _substitute_env({"a": [shared, shared], "b": shared}, "r.yaml", "")
    assert result["a"][0] is result["a"][1] is result["b"]
    assert result["b"] == {"path": "x"}


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        (BILLION_LAUGHS, (), "aliases expand to more than 100,000 nodes"),
        (None, ("sources=&a [*a]",), "alias *a refers to a node that contains it"),
    ],
)
def test_cli_refuses_hostile_yaml_in_one_line(tmp_path, base, text, overrides, expected):
    path = write_text(tmp_path, text) if text is not None else write_recipe(tmp_path, base)
    sets = [arg for override in overrides for arg in ("--set", override)]
    result = run_cli("validate", str(path), *sets, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
