"""The loop-friendly hash helpers give what the plain ones give."""

from __future__ import annotations

import random

import pytest

from bayling_data.hashing import (
    WeightedChoice,
    hash_prefix,
    join_parts,
    prefixed_hash,
    stable_hash,
    weighted_choice,
)
from bayling_data.tasks.templates import Template


def test_prefixed_hash_is_stable_hash() -> None:
    for seed in (0, 7, 123456789):
        record = ("flores200", "dev", "17", "swh_Latn", "zho_Hans")
        expected = stable_hash(seed, "mix", "translation", *record)
        assert (
            prefixed_hash(hash_prefix(seed, "mix", "translation"), join_parts(*record)) == expected
        )
        head = join_parts(*record[:3])
        assert (
            prefixed_hash(
                hash_prefix(seed, "mix", "translation"), head + join_parts("", *record[3:])
            )
            == expected
        )


@pytest.mark.parametrize(
    "options",
    [
        [("zho_Hans", 1.0)],
        [("zho_Hans", 0.5), ("eng_Latn", 0.5)],
        [("zho_Hans", 0.0), ("eng_Latn", 0.3), ("fra_Latn", 0.0), ("deu_Latn", 0.7)],
        [("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.0)],
    ],
)
def test_weighted_choice_object_agrees(options: list[tuple[str, float]]) -> None:
    choose = WeightedChoice(options)
    draws = [random.Random(1).random() for _ in range(1)] + [0.0, 0.5, 0.999999999]
    rng = random.Random(2)
    draws += [rng.random() for _ in range(5000)]
    # The edges between options, where a different order of additions would differ.
    running = 0.0
    total = sum(weight for _, weight in options)
    for _, weight in options:
        running += weight
        draws += [running / total, max(0.0, running / total - 1e-12)]
    for u in draws:
        if u < 1.0:
            assert choose(u) == weighted_choice(options, u)


def test_partial_template_renders_the_same() -> None:
    template = Template(
        "t1", "Translate this {src_name} text into {tgt_name}: {src_text} ({src_name})"
    )
    named = template.partial(src_name="斯瓦希里语", tgt_name="{tgt_name}")
    assert named.id == "t1"
    assert named.render(src_text="{x}") == template.render(
        src_name="斯瓦希里语", tgt_name="{tgt_name}", src_text="{x}"
    )
    assert template.partial().render(src_name="a", tgt_name="b", src_text="c") == template.render(
        src_name="a", tgt_name="b", src_text="c"
    )
