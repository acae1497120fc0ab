"""Building blocks shared by every recipe section: strict models and language-code fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from bayling_data.errors import UnknownLanguageError
from bayling_data.languages import registry


class StrictModel(BaseModel):
    """A recipe section: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve_code(value: str) -> str:
    """A language code or name as a Flores-200 code; a ValueError pydantic reports by key."""
    try:
        return registry().resolve(value).code
    except UnknownLanguageError as err:
        raise ValueError(str(err)) from None


def resolve_codes(values: list[str]) -> list[str]:
    codes = []
    for index, value in enumerate(values):
        try:
            codes.append(registry().resolve(value).code)
        except UnknownLanguageError as err:
            raise ValueError(f"item {index}: {err}") from None
    return codes


def resolve_distinct_codes(values: list[str] | None) -> list[str] | None:
    """Resolve a list of languages that must name different languages (None stays None)."""
    if values is None:
        return None
    codes = resolve_codes(values)
    if len(set(codes)) != len(codes):
        raise ValueError(f"the languages must differ (they resolve to {', '.join(codes)})")
    return codes
