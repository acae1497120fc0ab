"""False positives and catch rate of the ``not_text`` filter, and how both move with the threshold.

    python benchmarks/not_text_filter.py                 # ../shared/corpora/flores200/dev
    python benchmarks/not_text_filter.py --flores DIR    # any folder of Flores-style *.dev files

Prints, for the default filter: the Flores-200 dev lines dropped per language (the target is at
most 0.1% of any language, that is none of its 997 lines), the bundled sample's, the catch rate
on the realistic code, URL, e-mail, markup and JSON lines of ``tests/test_not_text.py`` (and how
many got the right reason), the drops among its natural sentences, then a threshold sweep over
the same scores and the scoring speed.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import bayling_data
from bayling_data.filters import NotTextFilter

REPO = Path(__file__).resolve().parent.parent
FLORES_DEV = REPO.parent / "shared" / "corpora" / "flores200" / "dev"
SAMPLE_DEV = Path(bayling_data.__file__).parent / "data" / "sample_flores" / "dev"
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8)


def test_sets() -> tuple[dict[str, list[str]], list[str]]:
    """``CATCH`` and ``NATURAL`` from the test module (the one place they are written)."""
    spec = importlib.util.spec_from_file_location(
        "test_not_text", REPO / "tests" / "test_not_text.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.CATCH, module.NATURAL


def read_dev(folder: Path) -> dict[str, list[str]]:
    return {
        path.stem: path.read_text("utf-8").splitlines() for path in sorted(folder.glob("*.dev"))
    }


def drops(step: NotTextFilter, scores: pa.StructArray) -> list[str | None]:
    return step.reject_reasons(scores, "").to_pylist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flores", type=Path, default=FLORES_DEV, help="folder of *.dev files")
    args = parser.parse_args()
    step = NotTextFilter()
    catch, natural = test_sets()

    corpora = {"Flores-200 dev": read_dev(args.flores), "bundled sample": read_dev(SAMPLE_DEV)}
    scored: dict[str, dict[str, pa.StructArray]] = {}
    seconds = chars = lines_scored = 0
    for name, files in corpora.items():
        if not files:
            print(f"{name}: no *.dev files found, skipped")
            continue
        scored[name] = {}
        for lang, lines in files.items():
            texts = pa.array(lines, pa.string())
            started = time.perf_counter()
            scored[name][lang] = step.score(texts, lang)
            seconds += time.perf_counter() - started
            chars += pc.sum(pc.utf8_length(texts)).as_py() or 0
            lines_scored += len(lines)
        total = sum(len(lines) for lines in files.values())
        dropped = {lang: drops(step, s) for lang, s in scored[name].items()}
        n_dropped = {lang: sum(r is not None for r in d) for lang, d in dropped.items()}
        worst = max(n_dropped, key=lambda lang: n_dropped[lang] / len(files[lang]))
        print(
            f"{name}: {len(files)} languages, {total} lines, {sum(n_dropped.values())} dropped; "
            f"worst language {worst}: {n_dropped[worst]}/{len(files[worst])} "
            f"({100 * n_dropped[worst] / len(files[worst]):.2f}%)"
        )
        over = [lang for lang in files if n_dropped[lang] > 0.001 * len(files[lang])]
        print(f"  languages above 0.1%: {len(over)} {over[:10]}")
        top = sorted(
            (
                (score, lang, line)
                for lang, s in scored[name].items()
                for score, line in zip(s.field("score").to_pylist(), files[lang], strict=True)
            ),
            reverse=True,
        )[:5]
        print("  highest scores:")
        for score, lang, line in top:
            print(f"    {score:.3f} {lang} {line[:90]}")

    texts = [text for lines in catch.values() for text in lines]
    expected = [family for family, lines in catch.items() for _ in lines]
    catch_scores = step.score(pa.array(texts), "eng_Latn")
    got = drops(step, catch_scores)
    print(
        f"catch set: {sum(r is not None for r in got)}/{len(texts)} caught "
        f"({100 * sum(r is not None for r in got) / len(texts):.1f}%), "
        f"{sum(g == e for g, e in zip(got, expected, strict=True))} with the right reason"
    )
    for family in catch:
        rows = [g for g, e in zip(got, expected, strict=True) if e == family]
        print(f"  {family:7} {sum(r is not None for r in rows)}/{len(rows)}")
    for text, reason, family in zip(texts, got, expected, strict=True):
        if reason is None:
            print(f"  missed ({family}): {text}")
    natural_scores = step.score(pa.array(natural), "eng_Latn")
    natural_drops = [t for t, r in zip(natural, drops(step, natural_scores), strict=True) if r]
    print(f"natural sentences: {len(natural_drops)}/{len(natural)} dropped {natural_drops}")

    print("threshold sweep (min_weight 3):")
    flores = scored.get("Flores-200 dev", {})
    header = ("threshold", "Flores dropped", "langs >0.1%", "natural", "caught")
    print("  " + " ".join(f"{h:>{w}}" for h, w in zip(header, (9, 14, 11, 7, 7), strict=True)))
    for threshold in THRESHOLDS:
        swept = NotTextFilter(threshold=threshold)
        per_lang = {lang: sum(r is not None for r in drops(swept, s)) for lang, s in flores.items()}
        over = sum(n > 0.001 * len(corpora["Flores-200 dev"][lang]) for lang, n in per_lang.items())
        nat = sum(r is not None for r in drops(swept, natural_scores))
        caught = sum(r is not None for r in drops(swept, catch_scores))
        print(
            f"  {threshold:>9.2f} {sum(per_lang.values()):>14} {over:>11} {nat:>7} "
            f"{100 * caught / len(texts):>6.1f}%"
        )
    if seconds:
        print(
            f"scoring speed: {lines_scored} lines ({chars / 1e6:.1f} M characters) in "
            f"{seconds:.1f} s, {lines_scored / seconds:,.0f} lines/s, one process"
        )


if __name__ == "__main__":
    main()
