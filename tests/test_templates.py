from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from bayling_data.cli import main
from bayling_data.errors import BaylingError
from bayling_data.languages import registry
from bayling_data.sources import FloresSource
from bayling_data.tasks.templates import (
    Template,
    bundled_files,
    bundled_templates,
    known_specs,
    load_bundled,
    load_template_file,
    load_templates,
    render_sample,
    sample_values,
)
from bayling_data.tasks.translation import TranslationTask, TranslationTaskConfig

PLACEHOLDER = re.compile(r"\{[^{}]*\}")
PIVOTS = ("zho_Hans", "eng_Latn")


def write(tmp_path: Path, body: str, name: str = "custom.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"task: translation\ntemplates:\n  eng_Latn:\n{body}", encoding="utf-8")
    return path


def entry(template_id: str, user: str) -> str:
    return f"    - id: {template_id}\n      user: {user!r}\n".replace("'", '"')


@pytest.mark.parametrize("task", sorted(bundled_files()))
def test_every_shipped_template_renders_for_every_language(task):
    """Every template file in the folder (other tasks' too) fills in for all 204 languages."""
    templates = load_bundled(task)
    declared = task in known_specs()  # another task's file: its own placeholders, shown as <name>
    assert set(templates.by_language) == set(PIVOTS)
    languages = [lang.code for lang in registry()]
    assert len(languages) == 204
    for prompt_lang, entries in templates.by_language.items():
        assert len(entries) >= (8 if declared else 1)
        for code in languages:
            other = "eng_Latn" if code == "zho_Hans" else "zho_Hans"
            for src, tgt in ((code, other), (other, code)):
                values = sample_values(src, tgt, prompt_lang)
                for template in entries:
                    text = render_sample(template, values)
                    literal = "".join(lit for lit, _ in template.pieces)
                    if "{" not in literal and "}" not in literal:
                        assert not PLACEHOLDER.search(text), (template.id, text)
                    if declared:
                        assert not re.search(r"<\w+>", text), (template.id, text)
                    for name in template.placeholders & set(values):
                        assert values[name] in text


def test_declared_specs_cover_the_shipped_task_templates():
    specs = known_specs()
    for task in ("translation", "constrained_translation", "system_prompts"):
        assert task in specs and task in bundled_files()
        load_templates(task)  # checked against the declaration


@pytest.mark.parametrize(
    ("user", "why"),
    [
        ("{src_text.__class__} {src_name} {tgt_name}", "attribute"),
        ("{src_text[0]} {src_name} {tgt_name}", "index"),
        ("{src_text!r} {src_name} {tgt_name}", "conversion"),
        ("{src_text:>10} {src_name} {tgt_name}", "format spec"),
        ("{0} {src_text} {src_name} {tgt_name}", "positional"),
        ("{} {src_text} {src_name} {tgt_name}", "positional"),
        ("{src_text} {src_name} {tgt_name} {", "lone brace"),
    ],
)
def test_sandbox_rejects_anything_but_plain_fields(tmp_path, user, why):
    path = write(tmp_path, entry("ok-1", "{src_name} {tgt_name} {src_text}") + entry("bad-7", user))
    with pytest.raises(BaylingError) as err:
        load_templates("translation", path)
    message = str(err.value)
    assert str(path) in message and "bad-7" in message, why
    assert "\n" not in message


def test_rendering_never_formats_values():
    template = Template(id="t", user="{{literal}} {src_text} {{x}}")
    assert template.placeholders == {"src_text"}
    assert template.render(src_text="{src_text.__class__} {0}") == (
        "{literal} {src_text.__class__} {0} {x}"
    )


def test_unknown_missing_and_repeated_ids_fail(tmp_path):
    unknown = write(tmp_path, entry("u-1", "{src_name} {tgt_name} {src_text} {secret}"))
    with pytest.raises(BaylingError, match=r"custom\.yaml: template u-1: unknown placeholder"):
        load_templates("translation", unknown)
    missing = write(tmp_path, entry("m-1", "{src_name} {src_text}"))
    with pytest.raises(BaylingError, match=r"template m-1: missing placeholder \{tgt_name\}"):
        load_templates("translation", missing)
    twice = write(tmp_path, entry("d-1", "{src_name} {tgt_name} {src_text}") * 2)
    with pytest.raises(BaylingError, match=r"custom\.yaml: template id d-1 is used twice"):
        load_templates("translation", twice)
    with pytest.raises(BaylingError, match="cannot read"):
        load_templates("translation", tmp_path / "absent.yaml")


def test_existing_callers_still_work():
    fields = frozenset({"src_name", "tgt_name", "src_text"})
    assert len(bundled_templates("translation", fields, fields)) == 20
    path = bundled_files()["translation"]
    assert load_template_file(path, set(fields), set(fields)).task == "translation"


def test_user_template_file_from_the_config(tmp_path, small_flores):
    path = write(tmp_path, entry("my-1", "MINE {src_name}>{tgt_name}: {src_text} {{ok}}"))
    config = TranslationTaskConfig(
        type="translation", templates=str(path), prompt_languages={"eng_Latn": 1.0}
    )
    task = TranslationTask.from_config(config, _context())
    table = _generate(FloresSource(small_flores, splits=["dev"]), task)
    assert set(table["template_id"].to_pylist()) == {"my-1"}
    assert all(p.startswith("MINE ") and "{ok}" in p for p in _prompts(table))


def _context():
    from bayling_data.tasks.base import TaskContext

    return TaskContext(pivots=list(PIVOTS), targets={"swh_Latn", "fra_Latn"}, seed=5)


def _generate(source: FloresSource, task: TranslationTask, batch_rows: int = 100) -> pa.Table:
    return pa.Table.from_batches([task(b) for b in source.iter_batches(batch_rows=batch_rows)])


def _prompts(table: pa.Table) -> list[str]:
    return [
        next(m["content"] for m in ms if m["role"] == "user")
        for ms in table["messages"].to_pylist()
    ]


def test_system_prompt_share_and_message_order(shared_corpora):
    source = FloresSource(
        shared_corpora / "flores200", languages=["eng_Latn", "zho_Hans", "swh_Latn"]
    )
    task = TranslationTask(list(PIVOTS), seed=2, system_prompt=0.3)
    table = _generate(source, task, 500)
    rows = table.to_pylist()
    with_system = [r for r in rows if r["messages"][0]["role"] == "system"]
    assert abs(len(with_system) / len(rows) - 0.3) < 0.03
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        body = roles[1:] if roles[0] == "system" else roles
        assert body == ["user", "assistant"] * (len(body) // 2) and len(body) >= 2
        assert ("+sys-" in row["template_id"]) == (roles[0] == "system")
    used = Counter(r["template_id"].split("+")[1] for r in with_system)
    assert len(used) == 18  # every system prompt of both languages
    for row in with_system:
        system_id = row["template_id"].split("+")[1]
        assert system_id.startswith("sys-zh" if row["prompt_lang"] == "zho_Hans" else "sys-en")
    # the system prompt comes on top of the unchanged user prompt and answer
    plain = _generate(source, TranslationTask(list(PIVOTS), seed=2), 500)
    assert _prompts(plain) == _prompts(table)


def test_system_prompt_is_deterministic_and_off_by_default(small_flores):
    source = FloresSource(small_flores)
    a = _generate(source, TranslationTask(list(PIVOTS), seed=4, system_prompt=0.5), 1)
    b = _generate(source, TranslationTask(list(PIVOTS), seed=4, system_prompt=0.5), 1000)
    assert a.equals(b)
    assert any("+sys-" in t for t in a["template_id"].to_pylist())
    off = _generate(source, TranslationTask(list(PIVOTS), seed=4), 1000)
    assert all(m[0]["role"] == "user" for m in off["messages"].to_pylist())
    assert TranslationTaskConfig(type="translation").system_prompt == 0
    with pytest.raises(ValueError):
        TranslationTaskConfig(type="translation", system_prompt=1.5)


def test_cli_lists_template_files(capsys):
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    for task in ("translation", "constrained_translation", "system_prompts"):
        assert f"{task}: " in out
    assert "zho_Hans 10, eng_Latn 10" in out


def test_cli_renders_templates_for_a_pair(capsys):
    assert main(["templates", "translation", "--src", "swh", "--tgt", "zh"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- tr-en-") == 10 and "Swahili" in out and "{" not in out
    args = ["templates", "constrained_translation", "--src", "en", "--tgt", "zh"]
    assert main([*args, "--prompt-lang", "zh", "--id", "ct-zh-01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--- ct-zh-01\n") and "英语" in out and "The river is long" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["templates", "nope"],
        ["templates", "translation", "--id", "tr-xx-99"],
        ["templates", "translation", "--prompt-lang", "fr"],
        ["templates", "translation", "--src", "klingonish"],
    ],
)
def test_cli_errors_are_one_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayling-data templates: error: ") and err.count("\n") == 1
