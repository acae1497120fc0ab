"""Progress: a periodic line per phase on stderr when piped, nothing with --quiet, for build,
export, report and publish; the executors report finished items. No timing is asserted."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from conftest import SAMPLE_RECIPE, run_cli

from bayling_data.executors import InProcessExecutor, ProcessPoolExecutor
from bayling_data.progress import Progress, as_progress

EVERY_ADVANCE = {"BAYLING_PROGRESS_INTERVAL": "0"}


def _lines(stderr: str, command: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"bayling-data {command}: ")]


def _phases(lines: list[str], command: str) -> dict[str, list[str]]:
    """Log lines by phase name (the text between the command prefix and the count)."""
    found: dict[str, list[str]] = {}
    for line in lines:
        match = re.match(rf"bayling-data {command}: (.+?): [\d,]+(/[\d,]+)? ", line)
        assert match, line
        found.setdefault(match.group(1), []).append(line)
    return found


@pytest.fixture(scope="module")
def piped_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("progress") / "out"
    done = run_cli("build", str(SAMPLE_RECIPE), "--set", f"output.dir={out}", env=EVERY_ADVANCE)
    assert done.returncode == 0, done.stderr
    return out, done.stderr


def test_piped_build_logs_every_phase(piped_build: tuple[Path, str]):
    _, stderr = piped_build
    phases = _phases(_lines(stderr, "build"), "build")
    names = list(phases)
    assert names[0] == "read flores200"
    legs = [name for name in names if name.startswith("leg ")]
    assert legs == [
        "leg 1/3 (normalize .. length)",
        "leg 2/3 (dedup_segment .. ratio)",
        "leg 3/3 (dedup)",
    ]
    assert [name for name in names if name.startswith("decide ")] == [
        "decide dedup_segment",
        "decide dedup",
    ]
    assert names[-3:] == ["mixture", "route", "write"]
    for name, lines in phases.items():
        # interval 0: a line per advance, then the phase's closing line
        assert len(lines) >= 2, name
        assert "done in" in lines[-1], lines
        assert all("done in" not in line for line in lines[:-1])
    assert re.search(r"write: [\d,]+/[\d,]+ rows \(\d+%\), [\d,.]+ rows/s, ETA ", stderr)
    assert "rows written by task" in stderr  # the summary still follows


def test_quiet_build_prints_nothing(tmp_path: Path):
    done = run_cli(
        "build",
        str(SAMPLE_RECIPE),
        "--set",
        f"output.dir={tmp_path / 'out'}",
        "--quiet",
        env=EVERY_ADVANCE,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


@pytest.mark.parametrize(
    ("command", "args", "phases"),
    [
        (
            "export",
            ["--format", "sharegpt", "--to", "{tmp}/exported"],
            ["export train", "export validation"],
        ),
        ("report", ["--to", "{tmp}/report"], ["read train", "read validation", "plot"]),
        (
            "publish",
            ["--repo", "org/name", "--dry-run", "--staging-dir", "{tmp}/staged"],
            ["stage train", "stage validation"],
        ),
    ],
)
def test_reading_commands_show_progress_and_quiet_hides_it(
    piped_build: tuple[Path, str], tmp_path: Path, command: str, args: list[str], phases: list[str]
):
    out, _ = piped_build
    filled = [arg.replace("{tmp}", str(tmp_path / "loud")) for arg in args]
    done = run_cli(command, str(out), *filled, env=EVERY_ADVANCE)
    assert done.returncode == 0, done.stderr
    found = _phases(_lines(done.stderr, command), command)
    assert list(found) == phases
    assert all("done in" in lines[-1] for lines in found.values())
    quiet = [arg.replace("{tmp}", str(tmp_path / "quiet")) for arg in args]
    hushed = run_cli(command, str(out), *quiet, "--quiet", env=EVERY_ADVANCE)
    assert hushed.returncode == 0, hushed.stderr
    assert hushed.stderr == ""
    assert hushed.stdout.replace("quiet", "loud") == done.stdout  # results still print


def test_log_lines_count_and_close():
    stream = io.StringIO()
    progress = Progress("log", interval=0, stream=stream, prefix="tool")
    with progress.phase("things", 4, "items") as advance:
        advance(1)
        advance(3)
    with progress.phase("unknown size", None, "rows") as advance:
        advance(5)
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "tool: things: 1/4 items (25%)",
        "tool: things: 4/4 items (100%)",
        "tool: things: 4/4 items",
        "tool: unknown size: 5 rows",
        "tool: unknown size: 5 rows",
    ]
    assert "ETA" in lines[0] and "done in" in lines[2] and "ETA" not in lines[3]


def test_long_interval_logs_only_the_close():
    stream = io.StringIO()
    with Progress("log", interval=3600, stream=stream).phase("p", 10, "rows") as advance:
        for _ in range(10):
            advance(1)
    assert len(stream.getvalue().splitlines()) == 1 and "done in" in stream.getvalue()


def test_off_and_terminal():
    assert not as_progress(False).enabled and not as_progress(None).enabled
    with as_progress(False).phase("p", 3) as advance:
        advance(3)
    stream = io.StringIO()
    with Progress("terminal", stream=stream).phase("drawn", 3, "rows") as advance:
        advance(3)
    assert "drawn" in stream.getvalue() and "3/3" in stream.getvalue()
    with pytest.raises(ValueError, match="terminal, log, off"):
        Progress("loud")


@pytest.mark.parametrize("make", [InProcessExecutor, lambda: ProcessPoolExecutor(2)])
def test_executors_report_each_finished_item(make):
    done: list[int] = []
    with make() as executor:
        assert executor.map(abs, [-3, 1, -2, 5], on_done=done.append) == [3, 1, 2, 5]
        assert executor.map(abs, [-1, -2]) == [1, 2]
    assert sorted(done) == [0, 1, 2, 3]


def test_a_recipe_that_opens_with_a_global_filter_labels_its_first_leg(tmp_path: Path):
    """The first leg holds no step of its own, only the global dedup that closes it."""
    recipe = SAMPLE_RECIPE.read_text("utf-8").replace(
        "filters:\n", "filters:\n  - {type: dedup, level: row, normalize: false}\n", 1
    )
    recipe_file = tmp_path / "opens_with_dedup.yaml"
    recipe_file.write_text(recipe, "utf-8")
    done = run_cli(
        "build", str(recipe_file), "--set", f"output.dir={tmp_path / 'out'}", env=EVERY_ADVANCE
    )
    assert done.returncode == 0, done.stderr
    legs = [
        name for name in _phases(_lines(done.stderr, "build"), "build") if name.startswith("leg ")
    ]
    assert legs[0].startswith("leg 1/") and legs[0].endswith("(dedup_row)"), legs
