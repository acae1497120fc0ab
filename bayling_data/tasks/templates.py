"""Prompt templates, kept as data files (``templates/<task>.yaml``) rather than strings in code."""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from bayling_data.errors import BaylingError
from bayling_data.languages import registry


@dataclass(frozen=True)
class Template:
    id: str
    user: str

    def render(self, **values: str) -> str:
        return self.user.format_map(values)


@dataclass(frozen=True)
class TemplateSet:
    """A task's templates, by prompt language (Flores-200 code)."""

    task: str
    by_language: dict[str, tuple[Template, ...]]

    def for_language(self, code: str) -> tuple[Template, ...]:
        try:
            return self.by_language[code]
        except KeyError:
            raise BaylingError(
                f"no {self.task} templates are written in {code}; "
                f"available prompt languages: {', '.join(self.by_language)}"
            ) from None


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def load_template_file(path: Path, required: set[str], allowed: set[str]) -> TemplateSet:
    """Read and check a template file: known placeholders only, the required ones present."""
    where = str(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("templates"), dict):
        raise BaylingError(f"{where}: expected keys 'task' and 'templates'")
    seen: set[str] = set()
    by_language: dict[str, tuple[Template, ...]] = {}
    for lang, entries in data["templates"].items():
        code = registry().resolve(lang).code
        templates = []
        for entry in entries:
            template = Template(id=str(entry["id"]), user=str(entry["user"]))
            names = _placeholders(template.user)
            if template.id in seen:
                raise BaylingError(f"{where}: template id {template.id} is used twice")
            if not required <= names or not names <= allowed:
                raise BaylingError(
                    f"{where}: template {template.id} must use {sorted(required)} "
                    f"and only {sorted(allowed)}; it uses {sorted(names)}"
                )
            seen.add(template.id)
            templates.append(template)
        by_language[code] = tuple(templates)
    return TemplateSet(task=str(data.get("task", path.stem)), by_language=by_language)


@cache
def bundled_templates(task: str, required: frozenset[str], allowed: frozenset[str]) -> TemplateSet:
    path = Path(str(resources.files("bayling_data.tasks").joinpath("templates", f"{task}.yaml")))
    return load_template_file(path, set(required), set(allowed))
