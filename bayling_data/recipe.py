"""Recipes: the YAML file that says what a build reads, generates, filters and writes.

A recipe is validated into frozen pydantic models. Every mistake (an unknown key, a wrong type, an
unknown language, an unset ``${ENV_VAR}``, a bad ``--set`` override) becomes one
:class:`~bayling_data.errors.RecipeError` line that names the file, the key path and what was
expected. ``docs/recipes.md`` documents every key.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from bayling_data.config import StrictModel, resolve_codes
from bayling_data.errors import RecipeError
from bayling_data.filters import FILTER_CONFIG_UNION
from bayling_data.languages import NAMED_SETS, registry
from bayling_data.mixture import MixtureConfig
from bayling_data.sources import SOURCE_CONFIG_UNION
from bayling_data.tasks import TASK_CONFIG_UNION

# --- sources -------------------------------------------------------------------------------------


SourceConfig = Annotated[SOURCE_CONFIG_UNION, Field(discriminator="type")]


# --- tasks ---------------------------------------------------------------------------------------

TaskConfig = Annotated[TASK_CONFIG_UNION, Field(discriminator="type")]


# --- filters -------------------------------------------------------------------------------------


FilterConfig = Annotated[FILTER_CONFIG_UNION, Field(discriminator="type")]


# --- output and the recipe -----------------------------------------------------------------------


class OutputConfig(StrictModel):
    dir: str = Field(description="Output folder; replaced only if it holds a previous build.")
    rows_per_shard: int = Field(default=100_000, gt=0)
    validation_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    shuffle: bool = True


class ExecutionConfig(StrictModel):
    """How a build runs. None of it changes what the output holds, so it is left out of the
    manifest's recipe and the signature: 1 worker, 16 or a Ray cluster give the same bytes."""

    executor: Literal["auto", "inprocess", "processes", "ray"] = Field(
        default="auto",
        description="auto: a process pool over the cores, or this process when one worker would "
        "do; inprocess; processes; ray (the [ray] extra).",
    )
    workers: int | None = Field(
        default=None, gt=0, description="Worker processes (processes, ray); default the cores."
    )
    ray_address: str | None = Field(
        default=None, description="A Ray cluster to join (ray://host:10001, auto); default local."
    )
    shard_segments: int = Field(
        default=16_384,
        gt=0,
        description="Segments per work shard, in whole batches: the unit of parallel work and "
        "of resuming. Shards group batches, so the output does not depend on it.",
    )
    partitions: int = Field(
        default=8, gt=0, description="Hash partitions of a global step's keys (dedup)."
    )
    shard_cells: int = Field(
        default=65_536,
        gt=0,
        description="Most texts (segments x languages) per work shard, in whole batches: a "
        "many-language corpus is cut into as many shards as its size asks for.",
    )
    plan_mixture: bool = Field(
        default=True,
        description="Make only the rows the mixture plan can keep (false: make every candidate "
        "row, then apply the same plan; the same bytes, at the cost of the rows left out).",
    )


class Recipe(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    license: str = Field(
        default="other",
        description="The data's license as a Hub license id (cc-by-sa-4.0 for Flores); "
        "published in the dataset card.",
    )
    seed: int = 0
    pivot_languages: list[str] = Field(default=["zho_Hans", "eng_Latn"], min_length=1)
    target_languages: list[str] | str = "flores200"
    sources: list[SourceConfig] = Field(min_length=1)
    tasks: list[TaskConfig] = Field(min_length=1)
    filters: list[FilterConfig] = Field(default_factory=list)
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    batch_segments: int = Field(
        default=2048,
        gt=0,
        description="Segments per batch handed to the stages (a document is never split). "
        "Generation order follows batches, so this decides which of two duplicates made from "
        "different batches is kept: part of the signature.",
    )
    batch_cells: int = Field(
        default=65_536,
        gt=0,
        description="Most texts (segments x languages) per batch: a 204-language corpus gets "
        "batches of 321 segments, so that a batch's rows stay in bounds and work shards come "
        "in numbers that keep every worker busy. Part of the signature, like batch_segments.",
    )
    output: OutputConfig
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    def segments_per_batch(self, languages: int) -> int:
        """Segments per batch for a source of this many languages."""
        return max(1, min(self.batch_segments, self.batch_cells // max(1, languages)))

    @field_validator("pivot_languages")
    @classmethod
    def _pivots(cls, value: list[str]) -> list[str]:
        codes = resolve_codes(value)
        if len(set(codes)) != len(codes):
            raise ValueError("a pivot language is listed twice")
        return codes

    @field_validator("target_languages")
    @classmethod
    def _targets(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, str):
            if value not in NAMED_SETS:
                raise ValueError(
                    f"expected a list of languages or one of the named sets "
                    f"{', '.join(NAMED_SETS)}, got {value!r}"
                )
            return value
        return list(dict.fromkeys(resolve_codes(value)))

    @model_validator(mode="after")
    def _prompt_languages_are_pivots(self) -> Recipe:
        for index, task in enumerate(self.tasks):
            for code in task.prompt_languages:
                if code not in self.pivot_languages:
                    raise ValueError(
                        f"tasks.{index}.prompt_languages: {code} is not a pivot language "
                        f"(pivots: {', '.join(self.pivot_languages)})"
                    )
        return self

    def target_codes(self) -> list[str] | None:
        """Explicit target languages, or None for a named set (whatever the sources hold of it)."""
        return None if isinstance(self.target_languages, str) else list(self.target_languages)

    def named_set_codes(self) -> set[str]:
        if isinstance(self.target_languages, str):
            return {lang.code for lang in registry().named_set(self.target_languages)}
        return set(self.target_languages)


# --- loading -------------------------------------------------------------------------------------

# Limits on what a recipe's YAML may ask of the loader (docs/recipes.md, "Limits"). A recipe is
# hand-written and small; these only refuse files made to exhaust memory, time or the stack.
MAX_ALIAS_NODES = 100_000
"""Most nodes that a recipe's aliases may stand for, all aliases together, each counted as the
nodes it expands to: an anchor reused a few times costs a few dozen, a "billion laughs" file
millions."""
MAX_DEPTH = 100
"""Most levels of nested mappings and lists: recipes use fewer than ten."""

_TAG_EXPECTED = {
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:timestamp": "a date or time such as 2024-05-01 or 2024-05-01T12:00:00",
}


class _LimitError(yaml.composer.ComposerError):
    """A recipe that breaks one of the limits above (kept apart: ``--set`` never falls back to a
    plain string for it)."""


def _too_deep() -> str:
    return (
        f"nested more than {MAX_DEPTH} levels deep (the limit for a recipe); expected a few "
        "levels of mappings and lists"
    )


class _RecipeLoader(yaml.SafeLoader):
    """A SafeLoader that refuses alias bombs, recursive aliases and deep nesting while composing.

    The checks run in ``compose_node``, before a node is built, so a hostile file costs no more
    than the limits allow and never reaches Python's recursion limit. The C loader (CSafeLoader)
    composes in C, where these hooks cannot run, so it is not used: recipes are small and the pure
    Python loader reads them in milliseconds. Each node keeps its key path (``key_path``), so that
    a value no constructor accepts is reported with its key.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open_anchors: list[str | None] = []
        self._nodes = 0
        self._alias_nodes = 0
        self._paths: list[str] = []

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # The scanner reads ahead of the composer, and a long run of `[` costs it time of its own:
        # refuse deep flow nesting here already.
        if self.flow_level >= MAX_DEPTH:
            raise _LimitError(None, None, _too_deep(), self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                if event.anchor in self._open_anchors:
                    raise _LimitError(
                        None,
                        None,
                        f"alias *{event.anchor} refers to a node that contains it; expected an "
                        "alias of a finished node (a recipe cannot be recursive)",
                        event.start_mark,
                    )
                size = getattr(target, "expanded_nodes", 1)
                self._alias_nodes += size
                self._nodes += size
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise _LimitError(
                        None,
                        None,
                        f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes (the limit for a "
                        "recipe); expected an anchor reused a few times",
                        event.start_mark,
                    )
            return super().compose_node(parent, index)
        event = self.peek_event()
        collection = isinstance(event, yaml.CollectionStartEvent)
        if collection and len(self._open_anchors) >= MAX_DEPTH:
            raise _LimitError(None, None, _too_deep(), event.start_mark)
        if parent is None:
            key = ""
        elif isinstance(index, yaml.ScalarNode):
            key = str(index.value)
        elif isinstance(index, int):
            key = str(index)
        else:
            key = "?"
        path = ".".join(part for part in (*self._paths[-1:], key) if part)
        before = self._nodes
        self._nodes += 1
        if collection:
            self._open_anchors.append(event.anchor)
        self._paths.append(path)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._paths.pop()
            if collection:
                self._open_anchors.pop()
        node.expanded_nodes = self._nodes - before
        node.key_path = path
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError as err:
            if getattr(err, "key_path", None) is None:
                err.key_path = getattr(node, "key_path", None)
            raise
        except (ValueError, TypeError, AttributeError, OverflowError, IndexError, KeyError):
            # PyYAML's own int, float and timestamp constructors fail this way on `!!int 1!`.
            expected = _TAG_EXPECTED.get(node.tag, f"a value for the tag {node.tag}")
            err = yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read {node.value!r} as {expected}",
                node.start_mark,
            )
            err.key_path = getattr(node, "key_path", None)
            raise err from None


def _parse_yaml(text: str) -> Any:
    """Parse one YAML document within the recipe limits; raises ``yaml.YAMLError``."""
    loader = _RecipeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_error(err: yaml.YAMLError, where: str, lines: bool = True) -> RecipeError:
    """The one-line RecipeError for a YAML problem: file, line, key where known, what is wrong."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    line = f":{mark.line + 1}" if lines and mark is not None else ""
    problem = " ".join(str(getattr(err, "problem", None) or "invalid YAML").split())
    key = getattr(err, "key_path", None)
    if isinstance(err, _LimitError | yaml.constructor.ConstructorError):
        return RecipeError(f"{where}{line}: {f'{key}: ' if key else ''}{problem}")
    return RecipeError(f"{where}{line}: could not parse the YAML: {problem}")


_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute_env(node: Any, where: str, path: str, done: dict[int, Any] | None = None) -> Any:
    """Replace ``${NAME}`` in string values; a node reached through several aliases is
    substituted once and stays shared, so aliases cost no copies."""
    done = {} if done is None else done
    if isinstance(node, dict | list) and id(node) in done:
        return done[id(node)]
    if isinstance(node, dict):
        result: Any = {}
        done[id(node)] = result
        for key, value in node.items():
            result[key] = _substitute_env(value, where, f"{path}.{key}" if path else str(key), done)
        return result
    if isinstance(node, list):
        result = []
        done[id(node)] = result
        result.extend(
            _substitute_env(value, where, f"{path}.{i}", done) for i, value in enumerate(node)
        )
        return result
    if isinstance(node, str) and "${" in node:

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise RecipeError(
                f"{where}: {path}: environment variable {name} is not set "
                f"(set it, or write ${{{name}:-default}})"
            )

        return _ENV_PATTERN.sub(replace, node)
    return node


def _shown(text: str) -> str:
    """``text`` as an error message may quote it: as written, or escaped (``'a\\nb'``) when it
    holds a line break or another unprintable character, so that the message stays one line."""
    return text if text.isprintable() else repr(text)


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one ``key.path=value`` override in place; the value is parsed as YAML.

    A value that is not valid YAML is taken as a string, as before; one that breaks the recipe
    limits or has a tag it cannot satisfy (``!!int x``) is an error. The mappings and lists on
    the path are copied first, so an override of a node reused through an alias changes only
    the place it names.
    """
    if "=" not in override:
        raise RecipeError(f"--set {_shown(override)}: expected key.path=value")
    dotted, raw = override.split("=", 1)
    keys = [part for part in dotted.strip().split(".")]
    if not all(keys):
        raise RecipeError(
            f"--set {_shown(override)}: expected a dotted key path such as output.dir"
        )
    try:
        value = _parse_yaml(raw) if raw.strip() else ""
    except (_LimitError, yaml.constructor.ConstructorError) as err:
        raise _yaml_error(err, f"--set {_shown(dotted.strip())}", lines=False) from None
    except yaml.YAMLError:
        value = raw
    node: Any = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        here = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise RecipeError(
                    f"--set {_shown(dotted)}: {_shown(here)} is not an item of a list of "
                    f"{len(node)} entries"
                )
            if last:
                node[int(key)] = value
            else:
                node[int(key)] = _own_copy(node[int(key)])
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node[key] = _own_copy(node.get(key, {}))
                node = node[key]
        else:
            raise RecipeError(
                f"--set {_shown(dotted)}: {_shown('.'.join(keys[:depth]))} is not a mapping or list"
            )


def _own_copy(node: Any) -> Any:
    """A shallow copy of a mapping or list (an alias may share it), anything else as it is."""
    if isinstance(node, dict):
        return dict(node)
    if isinstance(node, list):
        return list(node)
    return node


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override, substitute and validate a recipe file."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{where}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError(f"{where}: cannot read the recipe ({err})") from None
    try:
        data = _parse_yaml(text)
    except yaml.YAMLError as err:
        raise _yaml_error(err, where) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping of recipe keys at the top level")
    for override in overrides:
        apply_override(data, override)
    data = _substitute_env(data, where, "")
    return validate_recipe(data, where)


def validate_recipe(data: dict[str, Any], where: str = "<recipe>") -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(format_validation_error(err, where)) from None


# --- one-line messages from pydantic errors ------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _union_members(annotation: Any) -> list[Any]:
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return [_unwrap(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
    return [annotation]


def _type_tag(model: Any) -> str | None:
    if isinstance(model, type) and issubclass(model, BaseModel) and "type" in model.model_fields:
        args = typing.get_args(model.model_fields["type"].annotation)
        return args[0] if args else None
    return None


def _walk(loc: tuple[Any, ...]) -> tuple[list[str], Any]:
    """Turn a pydantic error location into the user's key path and the annotation it points at.

    Discriminated unions add their tag (``length``) to the location; the user never wrote it, so
    it is left out of the path shown.
    """
    shown: list[str] = []
    current: Any = Recipe
    for part in loc:
        members = _union_members(current) if current is not None else []
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if isinstance(part, str) and models and not any(part in m.model_fields for m in models):
            tagged = [m for m in models if _type_tag(m) == part]
            if tagged:
                current = tagged[0]
                continue
        shown.append(str(part))
        if len(models) == 1 and isinstance(part, str):
            field = models[0].model_fields.get(part)
            current = field.annotation if field is not None else None
            continue
        current = None
        for member in members:
            origin = typing.get_origin(member)
            if origin in (list, tuple) and isinstance(part, int):
                current = typing.get_args(member)[0]
                break
            if origin is dict:
                current = typing.get_args(member)[1]
                break
    return shown, current


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    shown, _ = _walk(loc)
    path = _shown(".".join(shown)) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        container = _walk(loc[:-1])[1]
        models = [
            m for m in _union_members(container) if isinstance(m, type) and issubclass(m, BaseModel)
        ]
        allowed = list(models[0].model_fields) if len(models) == 1 else []
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        expected = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown key{hint}{expected}"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        ctx = error.get("ctx") or {}
        expected = ctx.get("expected_tags", "")
        if kind == "union_tag_not_found":
            return f"{path}: missing key 'type'; expected one of: {expected}"
        return f"{path}.type: unknown type {ctx.get('tag')!r}; expected one of: {expected}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif "input" in error and not isinstance(error["input"], dict | list):
        message = f"{message} (got {error['input']!r})"
    return f"{path}: {message}".replace("\n", "\\n")  # a validator may quote a value


def format_validation_error(err: ValidationError, where: str) -> str:
    """One line for the first problem, and how many more there are."""
    errors = err.errors()
    first = _describe(errors[0])
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return f"{where}: {first}{more if len(errors) > 1 else ''}"
