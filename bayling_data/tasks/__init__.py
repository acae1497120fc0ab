"""Task generators: segment batches (or their own inputs) in, instruction batches out, with
prompts from template files (``templates/<task>.yaml``).

| type        | shape   | module          |
|-------------|---------|-----------------|
| translation | segment | translation.py  |
| constrained_translation | segment | constrained.py |
| comprehension | segment | comprehension.py |
| chat        | segment | chat.py         |
| pivot_qa    | item    | pivot_qa.py     |
| pivot_instructions | item | instructions.py |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

from bayling_data.stage import Stage
from bayling_data.tasks.base import ItemTask, TaskContext, TaskFields
from bayling_data.tasks.chat import ChatTask, ChatTaskConfig
from bayling_data.tasks.comprehension import ComprehensionTask, ComprehensionTaskConfig
from bayling_data.tasks.constrained import (
    ConstrainedTranslationTask,
    ConstrainedTranslationTaskConfig,
)
from bayling_data.tasks.instructions import PivotInstructionsConfig, PivotInstructionsTask
from bayling_data.tasks.pivot_qa import PivotQAConfig, PivotQATask
from bayling_data.tasks.templates import Template, TemplateSet, load_template_file
from bayling_data.tasks.translation import TranslationTask, TranslationTaskConfig

TASK_TYPES: dict[str, tuple[type, Callable[..., Stage]]] = {
    "translation": (TranslationTaskConfig, TranslationTask.from_config),
    "constrained_translation": (
        ConstrainedTranslationTaskConfig,
        ConstrainedTranslationTask.from_config,
    ),
    "comprehension": (ComprehensionTaskConfig, ComprehensionTask.from_config),
    "chat": (ChatTaskConfig, ChatTask.from_config),
    "pivot_qa": (PivotQAConfig, PivotQATask.from_config),
    "pivot_instructions": (PivotInstructionsConfig, PivotInstructionsTask.from_config),
}

# The recipe's `tasks` entries validate against this union, discriminated by `type`.
TASK_CONFIG_UNION = Union[tuple(config for config, _ in TASK_TYPES.values())]  # noqa: UP007

__all__ = [
    "TASK_TYPES",
    "ChatTask",
    "ComprehensionTask",
    "ConstrainedTranslationTask",
    "ItemTask",
    "PivotInstructionsTask",
    "PivotQATask",
    "TaskContext",
    "TaskFields",
    "Template",
    "TemplateSet",
    "TranslationTask",
    "build_task",
    "load_template_file",
]


def build_task(config: object, context: TaskContext) -> Stage:
    """The generator a recipe's ``tasks`` entry asks for."""
    _, factory = TASK_TYPES[config.type]  # type: ignore[attr-defined]
    return factory(config, context)
