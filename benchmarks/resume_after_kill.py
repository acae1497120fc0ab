"""A full-size build killed late, then resumed: how much of its work ``--resume`` keeps.

    python benchmarks/resume_after_kill.py           # pivot_zh_en, 204 dev files, 2 workers
    python benchmarks/resume_after_kill.py --kill-at 0.5 --workers 1

1. A fresh build of ``recipes/pivot_zh_en.yaml`` over the 204 Flores-200 dev files
   (``--set sources.0.path=../shared/corpora/flores200``), timed; the sha256 of every file it
   writes.
2. The same build again, SIGKILLed (its whole process group: driver, fork server, workers, as an
   out-of-memory kill or a lost machine would stop it) at ``--kill-at`` of the fresh build's time.
3. ``--resume`` of the killed build, timed; its files' sha256 against the fresh build's, and
   whether anything of the killed build (``.NAME.partial-*``, the work folder) is left.

Reports the fresh time, the resume time, their ratio (issue 16's target: under 40%), and whether
the bytes are identical. Nothing here is asserted by a test; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FLORES = ROOT.parent / "shared" / "corpora" / "flores200"


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def build_command(args: argparse.Namespace, out: Path, *more: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bayling_data",
        "build",
        str(ROOT / args.recipe),
        "--quiet",
        "--workers",
        str(args.workers),
        "--set",
        f"sources.0.path={args.flores}",
        "--set",
        f"output.dir={out}",
        *more,
    ]


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - started


def left_behind(out: Path) -> list[str]:
    """What a build of ``out`` left beside it: partial outputs, the work folder, its lock."""
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="recipes/pivot_zh_en.yaml")
    parser.add_argument("--flores", type=Path, default=FLORES, help="Flores-200 folder")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=0.8, help="share of the fresh time")
    parser.add_argument("--tmp", type=Path, help="where to build (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not args.flores.is_dir():
        parser.error(f"{args.flores}: no such folder (the Flores-200 dev files)")
    tmp = Path(tempfile.mkdtemp(prefix="bayling-resume-", dir=args.tmp))
    try:
        fresh_out = tmp / "fresh"
        fresh = timed(build_command(args, fresh_out))
        reference = digests(fresh_out)
        shutil.rmtree(fresh_out)
        print(f"fresh build: {fresh:.1f} s, {len(reference)} files", flush=True)

        # The same output folder name as the fresh build: the manifest records output.dir.
        command = build_command(args, fresh_out)
        process = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
        time.sleep(args.kill_at * fresh)
        if process.poll() is not None:
            print("the build finished before it could be killed; rerun with a lower --kill-at")
            return 1
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        work = tmp / f".{fresh_out.name}.work" / "done"
        finished = len(list(work.glob("*.done"))) if work.is_dir() else 0
        print(
            f"killed at {args.kill_at:.0%} ({args.kill_at * fresh:.1f} s): {finished} pieces of "
            f"work finished; left: {', '.join(left_behind(fresh_out)) or 'nothing'}",
            flush=True,
        )

        resumed = timed([*command, "--resume"])
        same = digests(fresh_out) == reference
        ratio = resumed / fresh
        print(f"resume: {resumed:.1f} s = {ratio:.0%} of the fresh build (target < 40%)")
        print(f"bytes identical to the fresh build: {'yes' if same else 'NO'}")
        print(f"left behind after the resume: {', '.join(left_behind(fresh_out)) or 'nothing'}")
        return 0 if same else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
