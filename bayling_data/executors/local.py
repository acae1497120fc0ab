"""Executors on this machine: the calling process, or a pool of worker processes."""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager

from bayling_data.executors.base import Executor, Item, Result


class InProcessExecutor(Executor):
    """Runs every work item in the calling process, one after another (debuggable, no start-up)."""

    name = "inprocess"

    def map(
        self,
        fn: Callable[[Item], Result],
        items: Sequence[Item],
        on_done: Callable[[int], None] | None = None,
    ) -> list[Result]:
        results = []
        for index, item in enumerate(items):
            results.append(fn(item))
            if on_done is not None:
                on_done(index)
        return results


PRELOAD = ["bayling_data.legs"]


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the driver, which stops them: a terminal sends SIGINT to the
    whole process group, and a worker that raised KeyboardInterrupt would print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C back until the block ends. A worker that the pool is starting when the
    driver stops cannot be told to end, and it prints a traceback when it finds the driver
    gone; once started and known to the pool, it can be."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)  # as the previous handler would have had it


def start_fork_server() -> None:
    """Start the fork server (it imports :data:`PRELOAD` once) now, in the background, so that
    it is ready by the time a pool asks for workers; the driver reads sources meanwhile.

    It starts with SIGINT ignored, which it keeps and hands to the workers it forks: a Ctrl-C
    while it imports would otherwise end it with a traceback. (Idempotent.)
    """
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    if threading.current_thread() is not threading.main_thread():
        forkserver.ensure_running()  # only the main thread may change signal handlers
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


class ProcessPoolExecutor(Executor):
    """A pool of ``workers`` processes that lives as long as the executor, so that what a worker
    loads once (language-ID models, tokenizers, the recipe's stages) serves all its work items.

    Workers start from a fork server rather than a fork of the caller: the caller may hold
    threads (Arrow's pools), which a plain fork would copy in an unknown state. They ignore
    Ctrl-C; the driver's KeyboardInterrupt stops them (their unfinished items are redone by a
    resumed build).
    """

    name = "processes"

    def __init__(self, workers: int):
        self.workers = workers
        start_fork_server()
        self._pool = futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_ignore_interrupts,
        )

    def map(
        self,
        fn: Callable[[Item], Result],
        items: Sequence[Item],
        on_done: Callable[[int], None] | None = None,
    ) -> list[Result]:
        if not items:
            return []
        pending: dict[futures.Future[Result], int] = {}
        try:
            with _interrupts_deferred():
                # Submitting starts the workers: no Ctrl-C while they are being started.
                pending = {self._pool.submit(fn, item): index for index, item in enumerate(items)}
            # Waited for here, not by done-callbacks: those run in the pool's own thread.
            for future in futures.as_completed(pending):
                future.result()  # a failed item raises now, as map would
                if on_done is not None:
                    on_done(pending[future])
        except KeyboardInterrupt:
            self._stop_workers()
            raise
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        return [future.result() for future in pending]

    def _stop_workers(self) -> None:
        """End the workers now rather than after their current items (which may take long)."""
        workers = list((self._pool._processes or {}).values())  # no public API before 3.14
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in workers:
            process.terminate()
        for process in workers:
            process.join(timeout=10)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
