"""Prompt templates, kept as data files (``templates/<task>.yaml``) rather than strings in code.

Templates may come from a user's own file (a task's ``templates: PATH`` key), so they are treated
as untrusted: only plain ``{name}`` fields are allowed (no ``{x.attr}``, ``{x[0]}``, ``{x!r}`` or
``{x:>10}``), checked when the file is loaded, and rendering joins pre-parsed pieces instead of
calling ``str.format``, so a template can never reach Python objects. ``{{`` and ``}}`` are
literal braces.
"""

from __future__ import annotations

import importlib
import string
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from bayling_data.errors import BaylingError
from bayling_data.languages import prompt_name, registry

# Keys an entry may hold its text under: prompts are "user" turns, system prompts "system" ones.
TEXT_KEYS = ("user", "system", "text")


@dataclass(frozen=True)
class TemplateSpec:
    """The placeholders a task's templates must use (required) and may use (optional)."""

    task: str
    required: frozenset[str]
    optional: frozenset[str] = frozenset()

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional


# Every task with a bundled template file declares its placeholders here, so that loading any
# template file (bundled or a user's) checks against one declaration.
TEMPLATE_SPECS: dict[str, TemplateSpec] = {}


def declare_templates(
    task: str,
    required: set[str] | frozenset[str],
    optional: set[str] | frozenset[str] = frozenset(),
) -> TemplateSpec:
    """Record a task's placeholders (called by each task module at import)."""
    spec = TemplateSpec(task, frozenset(required), frozenset(optional) - frozenset(required))
    TEMPLATE_SPECS[task] = spec
    return spec


SYSTEM_PROMPTS = declare_templates("system_prompts", set(), {"src_name", "tgt_name"})


class UnsafeTemplateError(ValueError):
    """A template field other than a plain ``{name}``."""


def parse_template(text: str) -> tuple[tuple[str, str | None], ...]:
    """Split a template into (literal, field name or None) pieces; refuse all but ``{name}``."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:  # a lone "{" or "}"
        raise UnsafeTemplateError(f"{err} (write {{{{ and }}}} for literal braces)") from None
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None:
            shown = (
                "{"
                + name
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            if not name.isidentifier():
                raise UnsafeTemplateError(
                    f"field {shown} is not allowed: only plain {{name}} fields "
                    "(no attribute or index access, no positional fields)"
                )
            if conversion is not None:
                raise UnsafeTemplateError(f"field {shown} is not allowed: no !conversions")
            if spec:
                raise UnsafeTemplateError(f"field {shown} is not allowed: no :format specs")
        pieces.append((literal, name))
    return tuple(pieces)


@dataclass(frozen=True)
class Template:
    """One template; ``user`` is its text (a user prompt, or a system prompt's content)."""

    id: str
    user: str
    pieces: tuple[tuple[str, str | None], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.pieces:
            object.__setattr__(self, "pieces", parse_template(self.user))

    @property
    def placeholders(self) -> set[str]:
        return {name for _, name in self.pieces if name is not None}

    def partial(self, **values: str) -> Template:
        """The template with some fields filled (same id): a generator fills the language names
        once per direction and the text once per row."""
        pieces: list[tuple[str, str | None]] = []
        pending = ""
        for literal, name in self.pieces:
            pending += literal
            if name is None:
                continue
            if name in values:
                pending += str(values[name])
            else:
                pieces.append((pending, name))
                pending = ""
        pieces.append((pending, None))
        return Template(self.id, self.user, tuple(pieces))

    def render(self, **values: str) -> str:
        """Fill the fields with plain strings; values are never parsed as templates."""
        out: list[str] = []
        for literal, name in self.pieces:
            out.append(literal)
            if name is not None:
                out.append(str(values[name]))
        return "".join(out)


@dataclass(frozen=True)
class TemplateSet:
    """A task's templates, by prompt language (Flores-200 code)."""

    task: str
    by_language: dict[str, tuple[Template, ...]]
    path: str = ""

    def for_language(self, code: str) -> tuple[Template, ...]:
        try:
            return self.by_language[code]
        except KeyError:
            where = f" in {self.path}" if self.path else ""
            raise BaylingError(
                f"no {self.task} templates are written in {code}{where}; "
                f"available prompt languages: {', '.join(self.by_language)}"
            ) from None

    def get(self, template_id: str) -> Template:
        for templates in self.by_language.values():
            for template in templates:
                if template.id == template_id:
                    return template
        raise BaylingError(
            f"{self.path or self.task}: no template with id {template_id!r}; "
            f"ids: {', '.join(t.id for ts in self.by_language.values() for t in ts)}"
        )

    def __len__(self) -> int:
        return sum(len(templates) for templates in self.by_language.values())


def _entry_text(entry: object, where: str, index: int) -> tuple[str, str]:
    if not isinstance(entry, dict) or "id" not in entry:
        raise BaylingError(
            f"{where}: entry {index} needs an 'id' and one of {', '.join(TEXT_KEYS)}"
        )
    template_id = str(entry["id"])
    texts = [key for key in TEXT_KEYS if key in entry]
    if len(texts) != 1 or not isinstance(entry[texts[0]], str):
        raise BaylingError(
            f"{where}: template {template_id} needs exactly one text key "
            f"({', '.join(TEXT_KEYS)}) holding a string"
        )
    return template_id, entry[texts[0]]


def _read_text(path: Path) -> str:
    """The file as text; invalid UTF-8 is one error naming the line (not a traceback)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise BaylingError(
            f"{path}:{line}: invalid UTF-8 ({err.reason}); template files must be UTF-8"
        ) from None


def load_template_file(
    path: str | Path,
    required: set[str] | frozenset[str] | None = None,
    allowed: set[str] | frozenset[str] | None = None,
) -> TemplateSet:
    """Read and check a template file: plain fields only, known placeholders only, the required
    ones present, ids unique. ``required``/``allowed`` default to the declared spec of the file's
    ``task`` (or of its name); ``allowed=None`` with no spec accepts any plain field."""
    path = Path(path)
    where = str(path)
    try:
        data = yaml.safe_load(_read_text(path))
    except OSError as err:
        raise BaylingError(f"{where}: cannot read template file: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise BaylingError(f"{where}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("templates"), dict):
        raise BaylingError(f"{where}: expected keys 'task' and 'templates'")
    task = str(data.get("task", path.stem))
    spec = TEMPLATE_SPECS.get(task)
    if required is None:
        required = spec.required if spec else frozenset()
    if allowed is None and spec is not None:
        allowed = spec.allowed
    seen: set[str] = set()
    by_language: dict[str, tuple[Template, ...]] = {}
    for lang, entries in data["templates"].items():
        code = registry().resolve(str(lang)).code
        if not isinstance(entries, list):
            raise BaylingError(f"{where}: templates.{lang} must be a list of templates")
        templates = []
        for index, entry in enumerate(entries):
            template_id, text = _entry_text(entry, f"{where}: templates.{lang}", index)
            if template_id in seen:
                raise BaylingError(f"{where}: template id {template_id} is used twice")
            try:
                template = Template(id=template_id, user=text)
            except UnsafeTemplateError as err:
                raise BaylingError(f"{where}: template {template_id}: {err}") from None
            names = template.placeholders
            missing = set(required) - names
            unknown = names - set(allowed) if allowed is not None else set()
            if missing or unknown:
                problems = [f"unknown placeholder {{{n}}}" for n in sorted(unknown)]
                problems += [f"missing placeholder {{{n}}}" for n in sorted(missing)]
                raise BaylingError(
                    f"{where}: template {template_id}: {', '.join(problems)} "
                    f"(required: {', '.join(sorted(required)) or 'none'}; "
                    f"allowed: {', '.join(sorted(allowed or ())) or 'none'})"
                )
            seen.add(template_id)
            templates.append(template)
        by_language[code] = tuple(templates)
    return TemplateSet(task=task, by_language=by_language, path=where)


def templates_folder() -> Path:
    """The folder of the bundled template files."""
    return Path(str(resources.files("bayling_data.tasks").joinpath("templates")))


def bundled_path(task: str) -> Path:
    return templates_folder() / f"{task}.yaml"


@cache
def bundled_templates(
    task: str, required: frozenset[str] | None = None, allowed: frozenset[str] | None = None
) -> TemplateSet:
    """A bundled template file, checked against the given placeholders or the task's spec."""
    return load_template_file(bundled_path(task), required, allowed)


def load_templates(task: str, path: str | Path | None = None) -> TemplateSet:
    """A task's templates: the user's file when given, else the bundled one; both checked against
    the task's declared placeholders."""
    spec = TEMPLATE_SPECS[task]
    if path is None:
        return bundled_templates(task, spec.required, spec.allowed)
    return load_template_file(path, spec.required, spec.allowed)


# --- Looking templates up and trying them out (the ``bayling-data templates`` command) ---------

# Sample sentences for showing templates; other languages get a bracketed stand-in.
SAMPLE_SENTENCES = {
    "eng_Latn": "The river is long and the water is cold.",
    "zho_Hans": "这条河很长，河水很冷。",
    "zho_Hant": "這條河很長，河水很冷。",
}


# Task modules that declare their placeholders at import.
DECLARING_MODULES = (
    "bayling_data.tasks.translation",
    "bayling_data.tasks.constrained",
    "bayling_data.tasks.comprehension",
    "bayling_data.tasks.chat",
)


def known_specs() -> dict[str, TemplateSpec]:
    """Every declared task's placeholders (importing the task modules declares them)."""
    for module in DECLARING_MODULES:
        importlib.import_module(module)
    return dict(TEMPLATE_SPECS)


def bundled_files() -> dict[str, Path]:
    """The bundled template files, by task (file stem)."""
    return {path.stem: path for path in sorted(templates_folder().glob("*.yaml"))}


def load_bundled(task: str) -> TemplateSet:
    """A bundled template file, checked against its task's spec when one is declared."""
    files = bundled_files()
    if task not in files:
        raise BaylingError(f"no templates for task {task!r}; tasks: {', '.join(files)}")
    known_specs()
    return load_template_file(files[task])


def sample_sentence(code: str) -> str:
    return SAMPLE_SENTENCES.get(code, f"[a sample {prompt_name(code, 'eng_Latn')} sentence]")


def sample_values(src: str, tgt: str, prompt_lang: str) -> dict[str, str]:
    """Values for every known placeholder, for showing a template with a sample sentence;
    languages are named as the tasks name them (:func:`~bayling_data.languages.prompt_name`)."""
    from bayling_data.tasks.constrained import JOINERS, draw_constraints

    reference = sample_sentence(tgt)
    script = registry().get(tgt).script if tgt in SAMPLE_SENTENCES else "Latn"
    constraints = draw_constraints(reference, script, 0, "sample", src, tgt)
    return {
        "src_name": prompt_name(src, prompt_lang),
        "tgt_name": prompt_name(tgt, prompt_lang),
        "src_text": sample_sentence(src),
        "tgt_text": reference,
        "lang_name": prompt_name(src, prompt_lang),
        "pivot_name": prompt_name(prompt_lang, prompt_lang),
        "constraints": JOINERS.get(prompt_lang, ", ").join(constraints),
    }


def render_sample(template: Template, values: dict[str, str]) -> str:
    """Render with sample values; a placeholder without one shows as ``<name>``."""
    return template.render(
        **{name: values.get(name, f"<{name}>") for name in template.placeholders}
    )
