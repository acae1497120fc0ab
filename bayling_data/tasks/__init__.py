"""Task generators: segment batches in, instruction batches out, prompts from template files."""

from __future__ import annotations

from bayling_data.stage import Stage
from bayling_data.tasks.templates import Template, TemplateSet, load_template_file
from bayling_data.tasks.translation import TranslationTask

__all__ = ["Template", "TemplateSet", "TranslationTask", "build_task", "load_template_file"]


def build_task(config: object, pivots: list[str], targets: set[str], seed: int) -> Stage:
    """The generator a recipe's ``tasks`` entry asks for."""
    from bayling_data.recipe import TranslationTaskConfig

    if isinstance(config, TranslationTaskConfig):
        return TranslationTask(
            pivots,
            targets,
            directions=config.directions,
            prompt_languages=config.prompt_languages,
            seed=seed,
        )
    raise TypeError(f"no task generator for {type(config).__name__}")
