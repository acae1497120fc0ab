"""Planted-leak benchmark for benchmark decontamination (``type: decontaminate``).

The eval set is the bundled sample's devtest (``sample:flores200``, 14 languages x 24 sentences).
Its sentences are planted, as the kinds below, in a Moses pair (``eng_Latn``-``zho_Hans``) and a
14-column TSV corpus among clean lines (Flores-200 dev from ``../shared/corpora/flores200/dev``
when present, else the sample's dev), and both corpora are read with the project's loaders and
run through the filter. A planted row that survives is a leak; a clean row dropped is a false
positive. Then every line of every Flores-200 dev language (204 x 997) is checked against the
same index, one language at a time, for the false-positive rate on clean text.

Kinds (each eval sentence once per kind; "words" are space-separated words, or chunks of the
script's characters per word, ``units.CHARS_PER_WORD``, in unspaced scripts):

=============  ================================================================================
exact          the sentence, in its own column
variant        upper-cased / punctuation dropped / spacing changed / full-width letters
joiners        hyphens and apostrophes removed or turned into spaces (sentences holding any)
misplaced      in another language's column: Chinese/Japanese text in the English column of the
               Moses pair, any other (English included) in its zho_Hans column; and in the TSV,
               in the next language's column
embedded       between two clean sentences, in one segment
one_word       one word replaced by a word of the same language
every_6th      every 6th word replaced
first_half     only the first half of the words
=============  ================================================================================

Targets: no leak of exact, variant, joiners or misplaced copies; at most 5% of embedded,
one_word, every_6th and first_half copies; at most 0.1% of clean dev sentences flagged.

    python benchmarks/decontam_leaks.py                    # the plants and the 204-language check
    python benchmarks/decontam_leaks.py --dev-split        # + Flores dev halves (by article)
    python benchmarks/decontam_leaks.py --corpora          # + Bible, TICO-19, WMT22 vs Flores dev
    python benchmarks/decontam_leaks.py --set ngram_eval_share=0.5 --set word_ngram=3

``--dev-split`` indexes the dev sentences of every other article (all 204 languages) and checks
the sentences of the remaining articles (the false positives of natural text against a large
index) and edited copies of 60 indexed rows in every language: the measurement the thresholds
were chosen by. ``--corpora`` indexes all of Flores-200 dev and checks real training corpora.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bayling_data.filters.decontaminate import _NONE, Decontaminate  # noqa: E402
from bayling_data.filters.units import CHARS_PER_WORD  # noqa: E402
from bayling_data.languages import registry  # noqa: E402
from bayling_data.schema import segment_languages, segment_schema  # noqa: E402
from bayling_data.sources import FloresSource, MosesSource, TsvSource  # noqa: E402
from bayling_data.sources.samples import sample_path  # noqa: E402

SHARED_CORPORA = REPO.parent / "shared" / "corpora"
SHARED_DEV = SHARED_CORPORA / "flores200" / "dev"
EXACT_KINDS = ("exact", "variant", "joiners", "misplaced")
EDITED_KINDS = ("embedded", "one_word", "every_6th", "first_half")
KINDS = EXACT_KINDS + EDITED_KINDS
# Han/Kana text goes into the English column of the Moses pair, everything else into zho_Hans.
_HAN_KANA = ("zho_Hans", "zho_Hant", "jpn_Jpan", "yue_Hant")
_JOINERS = "-'\u2019\u2010\u2011"


# -- texts -----------------------------------------------------------------------------------------


def read_split(folder: Path, split: str, languages: list[str] | None = None) -> dict[str, list]:
    """``{code: lines}`` of a Flores split folder (``eng_Latn.dev``)."""
    files = sorted(folder.glob(f"*.{split}"))
    return {
        path.name[: -len(split) - 1]: path.read_text("utf-8").splitlines()
        for path in files
        if languages is None or path.name[: -len(split) - 1] in languages
    }


def eval_texts() -> dict[str, list[str]]:
    return read_split(sample_path("flores200") / "devtest", "devtest")


def clean_dev_folder() -> Path:
    """Flores-200 dev when the shared corpora are present, else the bundled sample's dev."""
    return SHARED_DEV if SHARED_DEV.is_dir() else sample_path("flores200") / "dev"


def chunk(lang: str) -> int:
    """Characters a word in an unspaced script (0: a spaced script, words are split on spaces)."""
    script = registry().get(lang).script
    return max(1, round(CHARS_PER_WORD[script])) if script in CHARS_PER_WORD else 0


def words_of(text: str, lang: str) -> tuple[list[str], str]:
    k = chunk(lang)
    if k:
        return [text[i : i + k] for i in range(0, len(text), k)], ""
    return text.split(), " "


def replacement(token: str, lang: str, pool: list[str], rng: random.Random) -> str:
    """Another word (or chunk of as many characters) of the same language."""
    k = chunk(lang)
    for _ in range(50):
        line = rng.choice(pool)
        if k:
            if len(line) < len(token):
                continue
            at = rng.randrange(len(line) - len(token) + 1)
            word = line[at : at + len(token)]
        else:
            word = rng.choice(line.split())
        if word != token:
            return word
    return token + "x"


def edited(text: str, lang: str, kind: str, pool: list[str], rng: random.Random) -> str:
    words, sep = words_of(text, lang)
    if kind == "first_half":
        return sep.join(words[: (len(words) + 1) // 2])
    words = list(words)
    if kind == "one_word":
        at = rng.randrange(len(words))
        words[at] = replacement(words[at], lang, pool, rng)
    elif kind == "every_6th":
        for at in range(5, len(words), 6):
            words[at] = replacement(words[at], lang, pool, rng)
    return sep.join(words)


def variant(text: str, lang: str, number: int) -> str:
    """Case, punctuation, spacing or width changed, by turns."""
    style = number % 4
    if style == 0:
        return text.upper()
    if style == 1:
        return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P")).lower()
    if style == 2:
        if chunk(lang):
            return " ".join(text[i : i + 2] for i in range(0, len(text), 2)) + " !!"
        return "  ".join(text.replace(",", " , ").split()) + " !!"
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def without_joiners(text: str, number: int) -> str | None:
    """Apostrophes dropped, and hyphens dropped or (every other sentence) turned into spaces;
    None for a sentence that holds neither."""
    if not any(ch in text for ch in _JOINERS):
        return None
    for ch in _JOINERS:
        hyphen = ch not in "'\u2019"
        text = text.replace(ch, " " if hyphen and number % 2 else "")
    return text


# -- the planted corpora ---------------------------------------------------------------------------


@dataclass
class Planted:
    """The two corpora and what each of their rows is."""

    moses: MosesSource
    tsv: TsvSource
    labels: dict[tuple[str, str], str] = field(default_factory=dict)  # (corpus, line) -> kind


def plant(folder: Path, *, clean_rows: int | None = None, seed: int = 0) -> Planted:
    """Write the Moses pair and the TSV corpus with every eval sentence planted as every kind."""
    rng = random.Random(seed)
    evals = eval_texts()
    languages = sorted(evals)
    clean = read_split(clean_dev_folder(), "dev", languages)
    lines = min(len(v) for v in clean.values())
    rows = list(range(lines))
    if clean_rows is not None and clean_rows < lines:
        rows = sorted(rng.sample(rows, clean_rows))

    def partner(code: str) -> str:
        return clean[code][rng.randrange(lines)]

    moses: list[tuple[str, str, str]] = [
        ("clean", clean["eng_Latn"][i], clean["zho_Hans"][i]) for i in rows
    ]
    tsv: list[tuple[str, dict[str, str]]] = [
        ("clean", {code: clean[code][i] for code in languages}) for i in rows
    ]

    def tsv_row(kind: str, code: str, text: str) -> None:
        texts = {other: partner(other) for other in languages}
        texts[code] = text
        tsv.append((kind, texts))

    number = 0
    for code in languages:
        for text in evals[code]:
            number += 1
            tsv_row("exact", code, text)
            if code == "eng_Latn":
                moses.append(("exact", text, partner("zho_Hans")))
            if code == "zho_Hans":
                moses.append(("exact", partner("eng_Latn"), text))
            tsv_row("variant", code, variant(text, code, number))
            joined = without_joiners(text, number)
            if joined is not None:
                tsv_row("joiners", code, joined)
            if code in _HAN_KANA:
                moses.append(("misplaced", text, partner("zho_Hans")))
            else:
                moses.append(("misplaced", partner("eng_Latn"), text))
            tsv_row("misplaced", languages[(languages.index(code) + 1) % len(languages)], text)
            tsv_row("embedded", code, f"{partner(code)} {text} {partner(code)}")
            for kind in ("one_word", "every_6th", "first_half"):
                tsv_row(kind, code, edited(text, code, kind, clean[code], rng))
    rng.shuffle(moses)
    rng.shuffle(tsv)
    prefix = folder / "planted.en-zh"
    Path(f"{prefix}.en").write_text("".join(f"{en}\n" for _, en, _ in moses), "utf-8")
    Path(f"{prefix}.zh").write_text("".join(f"{zh}\n" for _, _, zh in moses), "utf-8")
    (folder / "planted.tsv").write_text(
        "".join("\t".join(texts[code] for code in languages) + "\n" for _, texts in tsv), "utf-8"
    )
    labels = {("moses", str(i + 1)): kind for i, (kind, _, _) in enumerate(moses)}
    labels.update({("tsv", str(i + 1)): kind for i, (kind, _) in enumerate(tsv)})
    return Planted(
        moses=MosesSource(prefix, corpus="moses"),
        tsv=TsvSource(
            folder / "planted.tsv",
            columns={code: i for i, code in enumerate(languages)},
            corpus="tsv",
        ),
        labels=labels,
    )


def eval_step(**options: object) -> Decontaminate:
    step = Decontaminate(
        [FloresSource(sample_path("flores200"), splits=["devtest"])],
        **options,  # type: ignore[arg-type]
    )
    step.setup()
    return step


@dataclass
class Result:
    planted: Counter = field(default_factory=Counter)
    leaked: Counter = field(default_factory=Counter)
    clean: int = 0
    clean_dropped: int = 0

    def leak_rate(self, kinds: tuple[str, ...]) -> float:
        total = sum(self.planted[kind] for kind in kinds)
        return sum(self.leaked[kind] for kind in kinds) / max(total, 1)


def run_plants(step: Decontaminate, planted: Planted) -> Result:
    """Every row of both corpora through the filter: leaks per kind and clean rows dropped."""
    result = Result()
    for source in (planted.moses, planted.tsv):
        for batch in source.iter_batches():
            out = step.process(batch)
            languages = segment_languages(out)
            alive = np.zeros(out.num_rows, bool)
            for code in languages:
                alive |= out.column(code).is_valid().to_numpy(zero_copy_only=False)
            for segment_id, survived in zip(
                out.column("segment_id").to_pylist(), alive.tolist(), strict=True
            ):
                kind = planted.labels[(source.corpus, segment_id)]
                if kind == "clean":
                    result.clean += 1
                    result.clean_dropped += not survived
                else:
                    result.planted[kind] += 1
                    result.leaked[kind] += survived
    return result


def dev_false_positives(
    step: Decontaminate, folder: Path = SHARED_DEV, *, lines: int | None = None
) -> tuple[int, int, Counter]:
    """Clean sides flagged: every language file of a Flores dev folder, each line checked alone
    (one language a batch, so a flag is that side's). Returns (flagged, checked, per language)."""
    flagged, checked, by_language = 0, 0, Counter()
    for code, texts in read_split(folder, "dev").items():
        texts = texts[:lines] if lines is not None else texts
        batch = pa.RecordBatch.from_pydict(
            {
                "corpus": ["clean"] * len(texts),
                "split": ["train"] * len(texts),
                "segment_id": [str(i + 1) for i in range(len(texts))],
                "doc_id": [None] * len(texts),
                code: texts,
            },
            schema=segment_schema([code]),
        )
        hits = int((step.matches(batch) != _NONE).sum())
        flagged += hits
        checked += len(texts)
        if hits:
            by_language[code] = hits
    return flagged, checked, by_language


# -- the extra measurements ------------------------------------------------------------------------


def _articles() -> np.ndarray:
    urls = (SHARED_CORPORA / "flores200" / "metadata_dev.tsv").read_text("utf-8").splitlines()[1:]
    numbers: dict[str, int] = {}
    return np.array([numbers.setdefault(line.split("\t")[0], len(numbers)) for line in urls])


def dev_split(options: dict[str, object], seed: int = 0) -> None:
    """Flores dev halves by article: index the even articles, check the odd ones (false
    positives) and edited copies of 60 indexed rows in every language (leaks)."""
    dev = read_split(SHARED_DEV, "dev")
    article = _articles()
    indexed, clean = np.flatnonzero(article % 2 == 0), np.flatnonzero(article % 2 == 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "devtest"
        folder.mkdir()
        for code, texts in dev.items():
            (folder / f"{code}.devtest").write_text(
                "".join(texts[i] + "\n" for i in indexed), "utf-8"
            )
        started = time.perf_counter()
        step = Decontaminate([FloresSource(folder)], **options)  # type: ignore[arg-type]
        step.setup()
        seconds = time.perf_counter() - started
    print(
        f"\n== Flores-200 dev halves by article: {len(indexed)} rows x {len(dev)} languages "
        f"indexed ({step.eval_sentences:,} sentences, {len(step._ngrams):,} postings, "
        f"{step.index_bytes / 1e6:.1f} MB, {seconds:.1f} s)"
    )
    flagged, checked, by_row = 0, 0, Counter()
    for code, texts in dev.items():
        found = step.matches(_one_language(code, [texts[i] for i in clean]))
        by_row.update(int(clean[i]) for i in np.flatnonzero(found != _NONE))
        flagged += int((found != _NONE).sum())
        checked += len(clean)
    print(
        f"clean sentences of the other articles flagged: {flagged:,} of {checked:,} "
        f"({100 * flagged / checked:.3f}%), in {len(by_row)} rows; the rows flagged in most "
        "languages (English side shown):"
    )
    for row, n in by_row.most_common(3):
        print(f"    line {row + 1}, {n} languages: {dev['eng_Latn'][row][:110]}")
    rng = random.Random(seed)
    rows = rng.sample(list(indexed), 60)
    for kind in ("one_word", "every_6th", "first_half"):
        missed, total = 0, 0
        for code, texts in dev.items():
            copies = [edited(texts[i], code, kind, [texts[j] for j in clean], rng) for i in rows]
            missed += int((step.matches(_one_language(code, copies)) == _NONE).sum())
            total += len(copies)
        print(f"{kind:>10}: {missed:,} of {total:,} copies leak ({100 * missed / total:.2f}%)")


def _one_language(code: str, texts: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "corpus": ["check"] * len(texts),
            "split": ["train"] * len(texts),
            "segment_id": [str(i + 1) for i in range(len(texts))],
            "doc_id": [None] * len(texts),
            code: texts,
        },
        schema=segment_schema([code]),
    )


def real_corpora(options: dict[str, object]) -> None:
    """All of Flores-200 dev as the eval set, against real training corpora."""
    from bayling_data.sources import TmxSource, WmtSource

    started = time.perf_counter()
    step = Decontaminate([FloresSource(SHARED_DEV)], **options)  # type: ignore[arg-type]
    step.setup()
    seconds = time.perf_counter() - started
    print(
        f"\n== All of Flores-200 dev indexed ({step.eval_sentences:,} sentences, "
        f"{len(step._ngrams):,} postings, {step.index_bytes / 1e6:.1f} MB, {seconds:.1f} s); "
        "Flores-200 devtest (1,012 rows) would be about "
        f"{step.index_bytes / 997 * 1012 / 1e6:.0f} MB"
    )
    opus = SHARED_CORPORA / "opus"
    sources = {
        "bible-uedin de-en": MosesSource(
            opus / "moses" / "bible-uedin-v1.de-en" / "bible-uedin-v1.de-en"
        ),
        "TICO-19 en-fr (TMX)": TmxSource(opus / "tmx" / "all.en-fr.tmx"),
        "WMT22 zh-en": WmtSource(SHARED_CORPORA / "wmt22" / "generaltest2022.zh-en"),
    }
    for name, source in sources.items():
        rows, hits, shown = 0, 0, []
        for batch in source.iter_batches():
            found = step.matches(batch)
            rows += batch.num_rows
            for i in np.flatnonzero(found != _NONE):
                hits += 1
                if len(shown) < 3:
                    code = segment_languages(batch)[0]
                    shown.append(str(batch.column(code)[i]))
        print(f"{name}: {hits} of {rows:,} segments flagged")
        for text in shown:
            print(f"    {text[:150]}")


# -- main ------------------------------------------------------------------------------------------


def parse_options(pairs: list[str]) -> dict[str, object]:
    options: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        options[key] = float(value) if "." in value else int(value)
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev-split", action="store_true", help="also the Flores dev halves")
    parser.add_argument("--corpora", action="store_true", help="also real corpora vs Flores dev")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Decontaminate option (word_ngram=3, ngram_eval_share=0.5, ...)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    options = parse_options(args.set)
    step = eval_step(**options)
    print(
        f"eval set: sample:flores200 devtest, {step.eval_sentences} sentences; clean lines from "
        f"{clean_dev_folder()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        planted = plant(Path(tmp), seed=args.seed)
        started = time.perf_counter()
        result = run_plants(step, planted)
        seconds = time.perf_counter() - started
    print(f"\n{'kind':>10}  planted  leaked")
    for kind in KINDS:
        n, leaked = result.planted[kind], result.leaked[kind]
        print(f"{kind:>10}  {n:7d}  {leaked:6d}  ({100 * leaked / max(n, 1):.1f}%)")
    print(
        f"exact/normalized/misplaced leaks: {sum(result.leaked[k] for k in EXACT_KINDS)}; "
        f"edited copies leaking: {100 * result.leak_rate(EDITED_KINDS):.2f}%; "
        f"clean rows dropped: {result.clean_dropped} of {result.clean} ({seconds:.1f} s)"
    )
    if SHARED_DEV.is_dir():
        started = time.perf_counter()
        flagged, checked, by_language = dev_false_positives(step)
        print(
            f"clean Flores-200 dev sides flagged: {flagged} of {checked:,} "
            f"({100 * flagged / checked:.4f}%, {len(read_split(SHARED_DEV, 'dev'))} languages, "
            f"{time.perf_counter() - started:.1f} s) {dict(by_language) or ''}"
        )
    else:
        print(f"{SHARED_DEV} is absent: the 204-language false-positive check is skipped")
    if args.dev_split and SHARED_DEV.is_dir():
        dev_split(options, args.seed)
    if args.corpora and SHARED_DEV.is_dir():
        real_corpora(options)


if __name__ == "__main__":
    main()
