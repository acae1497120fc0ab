"""Clean failures: an output that cannot be written, a Ctrl-C, a rerun over finished work.

Each ends in one line on stderr and a non-zero exit status, never a traceback, and never leaves
anything half-written that looks finished.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE_RECIPE, InterruptingExecutor

from bayling_data.errors import BaylingError, OutputError
from bayling_data.executors import InProcessExecutor
from bayling_data.io.workdir import work_dir_for
from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe

ROOT = os.geteuid() == 0


def _cli(*args: str, **popen: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bayling_data.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        **popen,  # type: ignore[arg-type]
    )


def _build_args(out: Path, *more: str) -> list[str]:
    return [
        "build",
        str(SAMPLE_RECIPE),
        "--quiet",
        "--executor",
        "inprocess",
        "--set",
        f"output.dir={out}",
        *more,
    ]


def _one_line_error(result: subprocess.CompletedProcess[str], *named: str) -> str:
    """The single stderr line of a refused command, after checking its shape."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for name in named:
        assert name in lines[0], lines[0]
    return lines[0]


def _no_finished_output(root: Path) -> None:
    """Nothing under ``root`` looks like a finished build."""
    assert not list(root.rglob("manifest.json")), list(root.rglob("manifest.json"))


# --- an output folder that cannot be created or written -------------------------------------------


def _parent_is_a_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "file").write_text("x")
    return tmp / "file" / "out", str(tmp / "file")


def _deep_under_a_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "file").write_text("x")
    return tmp / "file" / "a" / "b" / "out", str(tmp / "file")


def _output_is_a_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "out").write_text("x")
    return tmp / "out", str(tmp / "out")


def _work_folder_is_a_file(tmp: Path) -> tuple[Path, str]:
    work_dir_for(tmp / "out").write_text("x")
    return tmp / "out", str(work_dir_for(tmp / "out"))


def _lock_is_a_folder(tmp: Path) -> tuple[Path, str]:
    work = work_dir_for(tmp / "out")
    (work.parent / f"{work.name}.lock").mkdir()
    return tmp / "out", str(work)


def _name_too_long(tmp: Path) -> tuple[Path, str]:
    return tmp / ("x" * 300), "File name too long"


def _read_only_parent(tmp: Path) -> tuple[Path, str]:
    (tmp / "locked").mkdir()
    (tmp / "locked").chmod(0o555)
    return tmp / "locked" / "out", "Permission denied"


OUTPUT_FAILURES = {
    "parent-is-a-file": _parent_is_a_file,
    "deep-under-a-file": _deep_under_a_file,
    "output-is-a-file": _output_is_a_file,
    "work-folder-is-a-file": _work_folder_is_a_file,
    "lock-is-a-folder": _lock_is_a_folder,
    "name-too-long": _name_too_long,
    "read-only-parent": _read_only_parent,
}


@pytest.mark.parametrize("case", list(OUTPUT_FAILURES))
def test_a_build_whose_output_cannot_be_written_fails_in_one_line(
    tmp_path: Path, case: str
) -> None:
    if case == "read-only-parent" and ROOT:
        pytest.skip("root writes into read-only folders: chmod cannot make this fail")
    out, named = OUTPUT_FAILURES[case](tmp_path)
    try:
        line = _one_line_error(_cli(*_build_args(out)), named)
    finally:
        if (tmp_path / "locked").exists():
            (tmp_path / "locked").chmod(0o755)  # so that pytest can remove it
    assert line.startswith("bayling-data build: error: output.dir: ")
    _no_finished_output(tmp_path)
    assert not list(tmp_path.glob(".*.partial-*"))


@pytest.fixture(scope="module")
def finished_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "out"
    run_build(load_recipe(SAMPLE_RECIPE, [f"output.dir={out}", "execution.executor=inprocess"]))
    return out


@pytest.mark.parametrize(
    "command",
    [
        ["export", "{build}", "--format", "jsonl", "--to", "{to}"],
        ["publish", "{build}", "--repo", "me/data", "--dry-run", "--staging-dir", "{to}"],
        ["report", "{build}", "--to", "{to}"],
    ],
    ids=["export", "publish", "report"],
)
@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_export_publish_and_report_folders_that_cannot_be_written_fail_in_one_line(
    finished_build: Path, tmp_path: Path, command: list[str], where: str
) -> None:
    (tmp_path / "file").write_text("x")
    to = tmp_path / "file" / "to" if where == "under-a-file" else tmp_path / "file"
    args = [part.format(build=finished_build, to=to) for part in command]
    _one_line_error(_cli(*args), str(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "x"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]


def test_the_default_report_folder_taken_by_a_file_fails_in_one_line(
    finished_build: Path,
) -> None:
    blocker = finished_build / "report"
    blocker.write_text("x")
    try:
        _one_line_error(_cli("report", str(finished_build)), str(blocker))
    finally:
        blocker.unlink()


class _TakeTheOutputName(InProcessExecutor):
    """Runs the work, and meanwhile something else puts a file where the output should go."""

    def __init__(self, out: Path):
        self.out = out

    def map(self, fn, items):
        self.out.write_text("someone else's file")
        return super().map(fn, items)


def test_an_output_that_cannot_be_put_in_place_keeps_the_finished_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    recipe = load_recipe(SAMPLE_RECIPE, [f"output.dir={out}"])
    with pytest.raises(OutputError, match=r"exists and is not a folder.*kept for --resume"):
        run_build(recipe, executor=_TakeTheOutputName(out))
    assert out.read_text() == "someone else's file", "a file in the way is never replaced"
    assert list((work_dir_for(out) / "done").glob("*.done"))
    assert not list(tmp_path.glob(".out.partial-*"))
    out.unlink()
    run_build(recipe, resume=True)
    assert (out / "manifest.json").is_file() and not work_dir_for(out).exists()


# --- a rerun over an interrupted build's finished work --------------------------------------------


def _done(out: Path) -> list[str]:
    return sorted(path.name for path in (work_dir_for(out) / "done").glob("*.done"))


def test_a_rerun_without_resume_refuses_to_discard_finished_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    overrides = [f"output.dir={out}", "execution.shard_segments=8"]
    recipe = load_recipe(SAMPLE_RECIPE, overrides)
    with pytest.raises(KeyboardInterrupt):
        run_build(recipe, executor=InterruptingExecutor(3))
    finished = _done(out)
    assert len(finished) == 4  # the read phase and three work items

    with pytest.raises(BaylingError, match=r"4 finished pieces.*--resume.*--restart"):
        run_build(recipe)
    assert _done(out) == finished, "a refused rerun keeps the work folder as it was"
    result = _cli(*_build_args(out, "--set", "execution.shard_segments=8"))
    line = _one_line_error(result, str(work_dir_for(out)), "--resume", "--restart")
    assert "add --resume to the same command to continue" in line
    assert _done(out) == finished

    other = load_recipe(SAMPLE_RECIPE, [*overrides, "seed=1"])
    with pytest.raises(
        BaylingError, match=rf"{re.escape(str(work_dir_for(out)))} holds .* another recipe"
    ):
        run_build(other)
    with pytest.raises(BaylingError, match=r"another recipe.*--restart"):
        run_build(other, resume=True)
    assert _done(out) == finished

    restarted = InterruptingExecutor(10_000)
    run_build(recipe, restart=True, executor=restarted)
    assert (out / "manifest.json").is_file() and not work_dir_for(out).exists()
    fresh = InterruptingExecutor(10_000)
    run_build(recipe, executor=fresh)  # nothing left over: the plain rerun just builds
    assert restarted.budget == fresh.budget, "--restart redid all the work"


def test_restart_through_the_cli_discards_and_builds(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_build(
            load_recipe(SAMPLE_RECIPE, [f"output.dir={out}"]), executor=InterruptingExecutor(1)
        )
    result = _cli(*_build_args(out, "--restart"))
    assert result.returncode == 0, result.stderr
    assert (out / "manifest.json").is_file() and not work_dir_for(out).exists()
    both = _cli(*_build_args(out, "--restart", "--resume"))
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    with pytest.raises(BaylingError, match="exclude each other"):
        run_build(load_recipe(SAMPLE_RECIPE, [f"output.dir={out}"]), resume=True, restart=True)


def test_a_work_folder_with_nothing_finished_is_simply_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    recipe = load_recipe(SAMPLE_RECIPE, [f"output.dir={out}", "execution.executor=inprocess"])
    with pytest.raises(KeyboardInterrupt):
        run_build(recipe, executor=InterruptingExecutor(0))
    (work_dir_for(out) / "done" / "read.done").unlink()  # as if stopped while reading
    run_build(recipe)
    assert (out / "manifest.json").is_file()


# --- Ctrl-C during a multi-worker build -----------------------------------------------------------


def test_ctrl_c_stops_a_multi_worker_build_in_one_line_and_it_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "bayling_data.cli",
        "build",
        str(SAMPLE_RECIPE),
        "--quiet",
        "--executor",
        "processes",
        "--workers",
        "2",
        "--set",
        f"output.dir={out}",
        "--set",
        "execution.shard_segments=1",
        "--set",
        "batch_segments=1",
    ]
    # Its own process group, so that the signal reaches driver, fork server and workers at once,
    # as a terminal's Ctrl-C does.
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    done = work_dir_for(out) / "done"
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if list(done.glob("leg-*.done")):
            break
        time.sleep(0.01)
    assert process.poll() is None, "the build ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=300)

    assert "Traceback" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == [
        "bayling-data build: interrupted; add --resume to the same command to continue"
    ]
    # 130 as the CLI returns it; CPython reports a Ctrl-C that landed inside an exec() of a
    # string (dataclasses make their methods so) as death by SIGINT, which shells also show as 130.
    assert process.returncode in (130, -signal.SIGINT)
    assert not out.exists(), "an interrupted build leaves no output"

    resumed = subprocess.run(
        [*args, "--resume"], capture_output=True, text=True, timeout=600
    )  # the lock of the interrupted build does not stand in the way
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "manifest.json").is_file() and not work_dir_for(out).exists()


# --- SIGKILL during the write phase ---------------------------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_build_killed_while_writing_resumes_to_identical_bytes_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """Issue 16: a kill in the write phase left ``.out.partial-*`` (657 MB of an 852 MB output),
    and the successful ``--resume`` kept it."""
    out = tmp_path / "out"
    # Shards of 5 rows: the write phase makes hundreds of files, long enough to be killed in.
    args = _build_args(out, "--set", "output.rows_per_shard=5")
    clean = _cli(*args)
    assert clean.returncode == 0, clean.stderr
    reference = _files(out)
    assert sum(name.startswith("train/") for name in reference) > 20
    shutil.rmtree(out)

    command = [sys.executable, "-m", "bayling_data.cli", *args]
    process = subprocess.Popen(command, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    partial: list[Path] = []
    while process.poll() is None and time.monotonic() < deadline:
        partial = [p for p in tmp_path.glob(".out.partial-*") if len(list(p.rglob("*.arrow"))) > 2]
        if partial:
            break
        time.sleep(0.002)
    assert process.poll() is None and partial, "the build ended before its write could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists(), "a build killed while writing leaves no output"
    assert list(tmp_path.glob(".out.partial-*")), "the kill left its partial output (as before)"

    resumed = _cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _files(out) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "nothing else is left beside it"


def test_an_output_being_replaced_when_killed_is_put_back(tmp_path: Path) -> None:
    """A kill between retiring the earlier output and renaming the new one into place: the next
    build finds the earlier output in ``.out.old-*`` and puts it back before it starts."""
    out = tmp_path / "out"
    recipe = load_recipe(SAMPLE_RECIPE, [f"output.dir={out}"])
    run_build(recipe, executor=InProcessExecutor())
    earlier = _files(out)
    retired = tmp_path / ".out.old-abc123"
    retired.mkdir()
    out.rename(retired / "out")
    (tmp_path / ".out.partial-def456" / "train").mkdir(parents=True)
    run_build(recipe, executor=InProcessExecutor())
    assert _files(out) == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
