"""Pausing Python's cyclic garbage collector while a step builds many container objects that
live until the step ends.

The collector runs whenever the count of container objects (lists, tuples, dicts) grows by 700,
and every run walks the young ones. fastText's batch call returns a list of labels per line, and
the calibration table parses into a tuple per row: both build tens of thousands of containers
that hold no cycle and are freed together, and with the collector on they paid 44 ms and 30 ms
of collections a run of ``benchmarks/filter_chain.py`` on the 4x bible pair (of 1.7 s).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection inside the block; the collector is back as it was after it (a
    nested pause, or a caller that had it off, keeps it off). Reference counting still frees
    everything that is not in a cycle at once."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
