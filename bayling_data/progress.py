"""Progress of a command's phases, so a long run never looks hung.

One interface for every command (``build``, ``export``, ``report``, ``publish``)::

    with progress.phase("read", total=segments, unit="segments") as advance:
        for batch in batches:
            ...
            advance(batch.num_rows)

and three ways to show it, chosen once by the caller:

* ``terminal``: a rich display on stderr, a bar per phase with counts, rate and ETA;
* ``log``: when stderr is piped (CI, ``2> log``), one line every ``interval`` seconds while a phase
  runs (phase, done/total, rate, ETA) and one when it ends; lines, not a redrawn bar, so a log
  stays readable;
* ``off``: nothing (``--quiet``, and the library's default).

``BAYLING_PROGRESS_INTERVAL`` (seconds, default 10) sets the log's period; 0 logs every advance,
which the tests use. A phase's ``advance`` must be called from the thread that opened it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

MODES = ("terminal", "log", "off")
INTERVAL_ENV = "BAYLING_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0

Advance = Callable[[int], None]


def _interval_from_env() -> float:
    """The log period: ``BAYLING_PROGRESS_INTERVAL`` seconds, else the default."""
    value = os.environ.get(INTERVAL_ENV, "").strip()
    if not value:
        return DEFAULT_INTERVAL
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_INTERVAL
    return max(0.0, seconds)


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Phase:
    """One running phase's counters; what the log line and the bar are drawn from."""

    def __init__(self, name: str, total: int | None, unit: str):
        self.name = name
        self.total = total
        self.unit = unit
        self.done = 0
        self.started = time.monotonic()

    def line(self, finished: bool = False) -> str:
        elapsed = time.monotonic() - self.started
        count = f"{self.done:,}" + (f"/{self.total:,}" if self.total is not None else "")
        if finished:
            return f"{self.name}: {count} {self.unit}, done in {_duration(elapsed)}"
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.name}: {count} {self.unit}"
        if self.total:
            text += f" ({100 * self.done / self.total:.0f}%)"
        text += f", {rate:,.1f} {self.unit}/s"
        if self.total is not None and rate > 0:
            text += f", ETA {_duration(max(0, self.total - self.done) / rate)}"
        return text


class Progress:
    """Where a command's phases report to: a terminal display, a periodic log line, or nowhere.

    ``prefix`` starts every log line (``bayling-data build``), so that lines from several tools
    in one CI log say whose they are.
    """

    def __init__(
        self,
        mode: str = "off",
        *,
        interval: float | None = None,
        stream: TextIO | None = None,
        prefix: str = "bayling-data",
    ):
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        self.interval = _interval_from_env() if interval is None else max(0.0, interval)
        self.stream = stream
        self.prefix = prefix
        self._lock = threading.Lock()
        self._live: Any = None  # the rich display while a phase is open on a terminal
        self._open = 0

    @classmethod
    def auto(cls, quiet: bool = False, *, prefix: str = "bayling-data") -> Progress:
        """What a command shows: nothing with ``--quiet``, a display when stderr is a terminal,
        else periodic lines on stderr."""
        if quiet:
            return cls("off", prefix=prefix)
        return cls("terminal" if sys.stderr.isatty() else "log", prefix=prefix)

    @classmethod
    def off(cls) -> Progress:
        return cls("off")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @contextmanager
    def phase(self, name: str, total: int | None, unit: str = "items") -> Iterator[Advance]:
        """Open a phase of ``total`` units (None: unknown); yields ``advance(n)``."""
        if self.mode == "off":
            yield _ignore
            return
        state = _Phase(name, total, unit)
        if self.mode == "terminal":
            with self._terminal(state) as advance:
                yield advance
            return
        with self._logged(state) as advance:
            yield advance

    # --- log: lines on stderr ---------------------------------------------------------------

    def _write(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        with self._lock:
            stream.write(f"{self.prefix}: {text}\n")
            stream.flush()

    @contextmanager
    def _logged(self, state: _Phase) -> Iterator[Advance]:
        last = [time.monotonic()]
        stop = threading.Event()

        def advance(n: int) -> None:
            state.done += n
            now = time.monotonic()
            if now - last[0] >= self.interval:
                last[0] = now
                self._write(state.line())

        def tick() -> None:
            # A phase whose items are slow (one long work item) still logs every interval.
            while not stop.wait(self.interval):
                if time.monotonic() - last[0] >= self.interval:
                    last[0] = time.monotonic()
                    self._write(state.line())

        ticker = None
        if self.interval > 0:
            ticker = threading.Thread(target=tick, name="bayling-progress", daemon=True)
            ticker.start()
        try:
            yield advance
        finally:
            stop.set()
            if ticker is not None:
                ticker.join()
        self._write(state.line(finished=True))

    # --- terminal: a rich display ------------------------------------------------------------

    @contextmanager
    def _terminal(self, state: _Phase) -> Iterator[Advance]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        if self._live is None:
            from rich.console import Console

            console = Console(file=self.stream) if self.stream is not None else None
            self._live = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console if console is not None else _stderr_console(),
            )
            self._live.start()
        self._open += 1
        bar = self._live
        task = bar.add_task(state.name, total=state.total, unit=state.unit)
        try:
            yield lambda n: bar.advance(task, n)
        finally:
            bar.update(task, total=bar.tasks[task].completed if state.total is None else None)
            self._open -= 1
            if self._open == 0:
                bar.stop()
                self._live = None


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _ignore(_n: int) -> None:
    """The ``advance`` of a phase nobody watches."""


def as_progress(progress: Progress | bool | None) -> Progress:
    """A library call's ``progress`` argument as a :class:`Progress`: True shows it the way
    :meth:`Progress.auto` would, False or None shows nothing."""
    if isinstance(progress, Progress):
        return progress
    return Progress.auto() if progress else Progress.off()
