"""Full Flores-200 through the shipped recipes: time, peak memory and the per-phase breakdown.

    python benchmarks/flores_builds.py                       # both runs, 2 workers
    python benchmarks/flores_builds.py --only pivot --workers 1
    python benchmarks/flores_builds.py --total 1000000 --scale 1.2

1. ``recipes/pivot_zh_en.yaml`` on all 204 Flores-200 dev files (``../shared/corpora/flores200``;
   they stand in for a full download: devtest is never read by default).
2. ``recipes/bayling2_mix.yaml`` on the same segments, with its instruction sources scaled up:
   Chinese and English Alpaca JSONL and a multilingual QA set written under a temporary folder
   from the bundled samples (every record made distinct), sized so that each task has about
   ``--scale`` times the rows ``mixture.total`` asks of it. Reports the rows the tasks made but
   the mixture did not keep, against the rows kept.

Each build runs as ``bayling-data build`` in a child process; peak memory is the proportional set
size (PSS) of the whole process tree (driver, fork server, workers; shared pages counted once) and
of its largest process, sampled every 50 ms from /proc. bayling-data's bytecode is written
first (``package_bytecode.py``). Nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from package_bytecode import compile_package

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FLORES = ROOT.parent / "shared" / "corpora" / "flores200"
SAMPLES = ROOT / "bayling_data" / "data"


def process_pss() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, PSS bytes) of every process we can read."""
    found: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            pss = 0
            with open(f"/proc/{entry}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        pss = int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
        found[int(entry)] = (parent, pss)
    return found


def tree_memory(root: int) -> tuple[int, int]:
    """(PSS of the process tree under ``root``, PSS of its largest process)."""
    table = process_pss()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total = largest = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        pss = table.get(pid, (0, 0))[1]
        total += pss
        largest = max(largest, pss)
        todo.extend(children.get(pid, []))
    return total, largest


def run(command: list[str]) -> dict[str, object]:
    """Run a child build; returns wall seconds, peak PSS and the JSON line it printed."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree = largest = 0
    while process.poll() is None:
        now_tree, now_largest = tree_memory(process.pid)
        tree, largest = max(tree, now_tree), max(largest, now_largest)
        time.sleep(0.05)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return {
        "wall": time.perf_counter() - started,
        "tree_mb": tree / 2**20,
        "largest_mb": largest / 2**20,
        "child": json.loads(stdout.strip().splitlines()[-1]),
    }


def child(recipe: str, overrides: list[str]) -> None:
    """One ``run_build`` (in the child process); prints its phase seconds as JSON."""
    from bayling_data.pipeline import run_build
    from bayling_data.recipe import load_recipe

    report = run_build(load_recipe(Path(recipe), overrides=overrides))
    stages = {stats.name: round(stats.seconds, 2) for stats in report.stats}
    print(json.dumps({"seconds": report.seconds, "stages": stages}))


def scaled_sources(folder: Path, total: int, scale: float) -> dict[str, Path]:
    """Chinese and English Alpaca files and a QA set, each record distinct, sized from the
    mixture's weights (43 zh, 26 en, 4 pivot QA of 100) times ``scale``."""
    out: dict[str, Path] = {}
    for key, weight in (("zh", 43), ("en", 26)):
        records = [
            json.loads(line)
            for line in (SAMPLES / "instructions" / f"alpaca_{key}_sample.jsonl")
            .read_text("utf-8")
            .splitlines()
        ]
        wanted = int(total * weight / 100 * scale)
        path = folder / f"alpaca_{key}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for i in range(wanted):
                record = dict(records[i % len(records)])
                record["instruction"] = f"{record['instruction']} (#{i})"
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        out[key] = path
    items = [
        json.loads(line)
        for line in (SAMPLES / "qa" / "qa_sample.jsonl").read_text("utf-8").splitlines()
    ]
    rows_per_copy = 160  # the bundled set makes 160 candidate rows
    copies = int(total * 4 / 100 * scale / rows_per_copy) + 1
    path = folder / "qa.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for copy in range(copies):
            for item in items:
                record = dict(item, id=f"{item['id']}-{copy}")
                record["question"] = f"{record['question']} ({copy})"
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    out["qa"] = path
    return out


def build(recipe: str, out: Path, workers: int, overrides: list[str]) -> dict[str, object]:
    settings = [
        f"output.dir={out}",
        f"sources.0.path={FLORES}",
        f"execution.workers={workers}",
        *overrides,
    ]
    measured = run([sys.executable, __file__, "--child", recipe, *settings])
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    return {"measured": measured, "manifest": manifest}


def phases(measured: dict) -> str:
    seconds = measured["child"]["seconds"]
    return ", ".join(f"{name} {value:.1f}s" for name, value in seconds.items())


def stage_seconds(measured: dict) -> str:
    stages = measured["child"]["stages"]
    return ", ".join(f"{name} {value:.1f}s" for name, value in stages.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--scale", type=float, default=1.2)
    parser.add_argument("--only", choices=["pivot", "mix"])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return
    if not (FLORES / "dev").is_dir():
        raise SystemExit(f"no Flores-200 dev files at {FLORES}")
    compile_package()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if args.only in (None, "pivot"):
            result = build("recipes/pivot_zh_en.yaml", root / "pivot", args.workers, [])
            m, manifest = result["measured"], result["manifest"]
            rows = sum(split["rows"] for split in manifest["splits"].values())
            print(
                f"pivot_zh_en, 204 dev files, {args.workers} workers: {m['wall']:.1f}s, "
                f"{rows:,} rows; peak PSS {m['tree_mb']:,.0f} MB (process tree), "
                f"{m['largest_mb']:,.0f} MB (largest process)"
            )
            print(f"  phases: {phases(m)}")
            print(f"  stages (over all workers): {stage_seconds(m)}")
        if args.only in (None, "mix"):
            sources = scaled_sources(root, args.total, args.scale)
            overrides = [
                f"mixture.total={args.total}",
                f"tasks.0.path={sources['zh']}",
                f"tasks.1.path={sources['en']}",
                f"tasks.6.path={sources['qa']}",
            ]
            result = build("recipes/bayling2_mix.yaml", root / "mix", args.workers, overrides)
            m, manifest = result["measured"], result["manifest"]
            mixture = manifest["mixture"]
            kept = sum(entry["kept"] for entry in mixture["tasks"].values())
            made = sum(
                entry.get("generated", entry["available"]) for entry in mixture["tasks"].values()
            )
            print(
                f"bayling2_mix, total {args.total:,}, sources x{args.scale}: {m['wall']:.1f}s; "
                f"peak PSS {m['tree_mb']:,.0f} MB (tree), {m['largest_mb']:,.0f} MB (largest)"
            )
            print(
                f"  kept {kept:,}; made but not kept {made - kept:,} "
                f"({(made - kept) / max(1, kept):.1%} of kept); rounds {mixture.get('rounds')}"
            )
            for task, entry in mixture["tasks"].items():
                print(
                    f"  {task:24} candidates {entry['available']:>9,}  made "
                    f"{entry.get('generated', entry['available']):>9,}  kept {entry['kept']:>9,}"
                )
            for note in mixture.get("notes", []):
                print(f"  note: {note}")
            print(f"  phases: {phases(m)}")
            print(f"  stages (over all workers): {stage_seconds(m)}")


if __name__ == "__main__":
    main()
