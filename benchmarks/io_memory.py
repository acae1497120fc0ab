"""Peak memory of the commands that read a finished build: report, publish --dry-run, export.

Builds a large output once (the full Flores-200 dev, 204 languages, through the shipped
``recipes/pivot_zh_en.yaml``), then runs each command in a fresh process and reports its peak
resident memory (``ru_maxrss`` of that process). ``--times 1 4`` also runs them on the same build
with every shard listed 4 times (4x the rows, no data copied), to show that peak memory does not
grow with the output's size::

    python benchmarks/io_memory.py                       # builds /tmp/bayling-io-memory/out first
    python benchmarks/io_memory.py --times 1 2 4
    PYTHONPATH=/path/to/older/checkout python benchmarks/io_memory.py   # the same, older code

Figures are in docs/benchmarks.md. Nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLORES = REPO.parent / "shared" / "corpora" / "flores200"
WORK = Path("/tmp/bayling-io-memory")


def build(out: Path, flores: Path) -> None:
    """The full Flores-200 dev build, unless ``out`` already holds one."""
    if (out / "manifest.json").is_file():
        return
    print(f"building {out} from {flores} (minutes) ...", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bayling_data",
            "build",
            str(REPO / "recipes" / "pivot_zh_en.yaml"),
            "--set",
            f"sources.0.path={flores}",
            "--set",
            f"output.dir={out}",
            "--quiet",
        ],
        check=True,
    )


def repeated(out: Path, times: int) -> Path:
    """The build with every shard listed ``times`` times (a copy of its small files only)."""
    if times == 1:
        return out
    to = WORK / f"x{times}"
    shutil.rmtree(to, ignore_errors=True)
    to.mkdir(parents=True)
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    shutil.copy(out / "dataset_dict.json", to)
    for split, info in manifest["splits"].items():
        (to / split).mkdir()
        for shard in (out / split).glob("*.arrow"):
            (to / split / shard.name).symlink_to(shard)
        shutil.copy(out / split / "dataset_info.json", to / split)
        state = json.loads((out / split / "state.json").read_text("utf-8"))
        state["_data_files"] = state["_data_files"] * times
        (to / split / "state.json").write_text(json.dumps(state), "utf-8")
        info["shards"] = info["shards"] * times
        info["rows"] *= times
    (to / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    return to


def peak(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of ``bayling-data ARGS`` in a fresh process."""
    started = time.perf_counter()
    # No --quiet, which older versions lack: their progress lines are discarded with the rest.
    command = [sys.executable, "-m", "bayling_data", *args]
    # From a neutral folder: run from the checkout, `-m` would import it whatever PYTHONPATH says.
    child = subprocess.Popen(
        command, cwd=WORK, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"{' '.join(command)} failed ({status}); run it to see why")
    return usage.ru_maxrss / 1024, time.perf_counter() - started  # ru_maxrss: KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flores", type=Path, default=FLORES, help="a Flores-200 folder")
    parser.add_argument("--out", type=Path, default=WORK / "out", help="the build to read")
    parser.add_argument("--times", type=int, nargs="+", default=[1], help="row multipliers")
    args = parser.parse_args()
    args.out, args.flores = args.out.resolve(), args.flores.resolve()
    build(args.out, args.flores)
    size = sum(p.stat().st_size for p in args.out.rglob("*.arrow"))
    rows = sum(
        s["rows"] for s in json.loads((args.out / "manifest.json").read_text())["splits"].values()
    )
    print(f"output: {args.out}, {size / 2**20:,.0f} MiB of Arrow shards, {rows:,} rows")
    print("| rows | command | peak RSS (MiB) | seconds |")
    print("|---:|---|---:|---:|")
    for times in args.times:
        out = repeated(args.out, times)
        scratch = WORK / "scratch"
        commands = {
            "report": ["report", str(out), "--to", str(scratch / "report")],
            "publish --dry-run": [
                "publish", str(out), "--repo", "org/name", "--dry-run",
                "--staging-dir", str(scratch / "publish"),
            ],
            "export sharegpt": ["export", str(out), "--format", "sharegpt", "--to", f"{scratch}/a"],
            "export parquet": ["export", str(out), "--format", "parquet", "--to", f"{scratch}/b"],
        }  # fmt: skip
        for name, command in commands.items():
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            mib, seconds = peak(command)
            print(f"| {rows * times:,} | {name} | {mib:,.0f} | {seconds:.1f} |", flush=True)
    shutil.rmtree(WORK / "scratch", ignore_errors=True)


if __name__ == "__main__":
    main()
