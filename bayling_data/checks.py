"""What ``validate`` reads, and the silent outcomes a build's summary warns about.

``validate`` reads every source exactly as a build's read phase does (same loader, same batch
size), without templating, so that whatever it passes a build can read; it counts the segments
each source really yields. A build (or a validation) whose source yields no segment, or whose
language ends with no row, still succeeds, but says so in one line and why: an empty file, a
one-sided translation memory, a filter that dropped every side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bayling_data.errors import BaylingError
from bayling_data.progress import Progress, as_progress

if TYPE_CHECKING:
    from bayling_data.pipeline import BuildPlan
    from bayling_data.stage import StageStats


@dataclass(frozen=True)
class SourceRead:
    """One source as read: the segments it yielded and what it skipped, by reason."""

    index: int
    corpus: str
    languages: tuple[str, ...]
    segments: int
    skipped: dict[str, int]

    @property
    def key(self) -> str:
        return f"sources.{self.index}"


def read_sources(plan: BuildPlan, progress: Progress | bool = False) -> list[SourceRead]:
    """Read every source of the plan to the end, as a build would, keeping only counts.

    A reading error is the loader's one-line :class:`BaylingError`, prefixed with the source's
    recipe key.
    """
    progress = as_progress(progress)
    found = []
    for index, source in enumerate(plan.sources):
        width = max(1, len(source.languages))
        segments = 0
        label = f"read {source.corpus}"
        with progress.phase(label, source.num_segments, "segments") as advance:
            try:
                for batch in source.iter_batches(plan.recipe.segments_per_batch(width)):
                    segments += batch.num_rows
                    advance(batch.num_rows)
            except BaylingError as err:
                raise type(err)(f"sources.{index}: {err}") from None
        described = source.describe()
        found.append(
            SourceRead(
                index=index,
                corpus=source.corpus,
                languages=tuple(source.languages),
                segments=segments,
                skipped=dict(described.get("skipped") or {}),  # type: ignore[call-overload]
            )
        )
    return found


def sources_as_read(
    described: Sequence[dict[str, Any]], segments: Sequence[int]
) -> list[SourceRead]:
    """:class:`SourceRead` records from a build's manifest entries and its work shards' counts."""
    return [
        SourceRead(
            index=index,
            corpus=str(entry.get("corpus", "")),
            languages=tuple(entry.get("languages") or ()),
            segments=n,
            skipped=dict(entry.get("skipped") or {}),
        )
        for index, (entry, n) in enumerate(zip(described, segments, strict=True))
    ]


def _skips(skipped: dict[str, int]) -> str:
    """``3,071 skipped (unit missing ckb_Arab)``, the largest reasons first."""
    reasons = sorted(skipped.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{n:,} skipped ({reason})" for reason, n in reasons if n)


def empty_source_warnings(sources: Iterable[SourceRead]) -> list[str]:
    """One line per source that yielded no segment, with what it skipped."""
    warnings = []
    for source in sources:
        if source.segments:
            continue
        why = _skips(source.skipped) or "its files hold no segment (empty?)"
        warnings.append(f"{source.key} ({source.corpus}) yields 0 segments: {why}")
    return warnings


def _mixture_candidates(mixture: dict[str, Any], code: str) -> int:
    """Candidate rows of the language the mixture chose from, over every task."""
    return sum(
        int(((task.get("languages") or {}).get(code) or {}).get("available", 0))
        for task in (mixture.get("tasks") or {}).values()
    )


def _sides_left(stats: StageStats, code: str) -> int:
    entry = stats.by_key.get(code) or {"in": 0, "dropped": 0}
    return int(entry["in"]) - int(entry["dropped"])


def empty_language_warnings(
    languages: Iterable[str],
    rows: dict[str, int],
    sources: Sequence[SourceRead],
    stats: Sequence[StageStats] = (),
    mixture: dict[str, Any] | None = None,
) -> list[str]:
    """One line per language of the build that ends with no row, and the likeliest reason: its
    sources yielded nothing, filters dropped every side of it, or the mixture kept none of it."""
    warnings = []
    filters = [s for s in stats if s.level == "segment" and s.by_key]
    for code in languages:
        if rows.get(code, 0):
            continue
        holding = [source for source in sources if code in source.languages]
        if not holding:
            continue  # a pivot no source holds: nothing was expected of it
        if not sum(source.segments for source in holding):
            names = ", ".join(f"{s.key} ({s.corpus})" for s in holding)
            why = f"{names} yielded 0 segments with it"
        elif filters and code in filters[0].by_key and not _sides_left(filters[-1], code):
            sides = filters[0].by_key[code]["in"]
            dropped = ", ".join(
                f"{s.name} {s.by_key[code]['dropped']:,}"
                for s in filters
                if s.by_key.get(code, {}).get("dropped")
            )
            why = f"filters dropped all {sides:,} of its sides ({dropped})"
        elif candidates := _mixture_candidates(mixture or {}, code):
            why = f"the mixture kept none of its {candidates:,} candidate rows"
        else:
            why = "the tasks made no row of it (its directions, or too few segments)"
        warnings.append(f"{code} yields 0 rows: {why}")
    return warnings


def build_warnings(report: Any) -> list[str]:
    """The zero-row warnings of a finished build (a :class:`~bayling_data.pipeline.BuildReport`)."""
    manifest = report.manifest
    rows: dict[str, int] = {}
    for split in manifest["splits"].values():
        for code, n in split["counts"].get("language", {}).items():
            rows[code] = rows.get(code, 0) + n
    languages = manifest["languages"]
    sources = report.sources
    return [
        *empty_source_warnings(sources),
        *empty_language_warnings(
            [*languages["pivots"], *languages["targets"]],
            rows,
            sources,
            report.stats,
            manifest.get("mixture"),
        ),
    ]
