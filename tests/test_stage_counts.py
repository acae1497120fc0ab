"""The counters a stage keeps, and the collector pause that some stages run under."""

from __future__ import annotations

import gc

import pyarrow as pa
import pytest

from bayling_data.gc_pause import paused_gc
from bayling_data.stage import StageStats


def test_count_reasons_equals_count_by_with_a_constant_key():
    reasons = pa.array([None, "lid", None, "length", "lid", None], pa.string())
    by_key = StageStats("lid", "segment")
    by_key.count_by(pa.array(["swh_Latn"] * len(reasons)), reasons)
    one_key = StageStats("lid", "segment")
    one_key.count_reasons("swh_Latn", reasons)
    assert one_key.by_key == by_key.by_key
    assert one_key.by_key["swh_Latn"] == {
        "in": 6,
        "dropped": 3,
        "reasons": {"lid": 2, "length": 1},
    }
    one_key.count_reasons("yor_Latn", pa.array([], pa.string()))
    assert "yor_Latn" not in one_key.by_key  # nothing counted, no empty entry


def test_paused_gc_restores_the_collector_as_it_was():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause leaves the outer one in force
    assert gc.isenabled()
    with pytest.raises(ValueError), paused_gc():
        raise ValueError("a failing step")
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_paused_gc_works_as_a_decorator():
    @paused_gc()
    def enabled_inside() -> bool:
        return gc.isenabled()

    assert enabled_inside() is False
    assert enabled_inside() is False  # each call pauses anew
    assert gc.isenabled()
