"""Executors on this machine: the calling process, or a pool of worker processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent import futures

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


def start_fork_server() -> None:
    """Start the fork server (it imports :data:`PRELOAD` once) now, in the background, so that
    it is ready by the time a pool asks for workers; the driver reads sources meanwhile."""
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()


class ProcessPoolExecutor(Executor):
    """A pool of ``workers`` processes that lives as long as the executor, so that what a worker
    loads once (language-ID models, tokenizers, the recipe's stages) serves all its work items.

    Workers start from a fork server rather than a fork of the caller: the caller may hold
    threads (Arrow's pools), which a plain fork would copy in an unknown state.
    """

    name = "processes"

    def __init__(self, workers: int):
        self.workers = workers
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        self._pool = futures.ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def map(
        self,
        fn: Callable[[Item], Result],
        items: Sequence[Item],
        on_done: Callable[[int], None] | None = None,
    ) -> list[Result]:
        if not items:
            return []
        if on_done is None:
            return list(self._pool.map(fn, items, chunksize=1))
        pending = {self._pool.submit(fn, item): index for index, item in enumerate(items)}
        try:
            # Waited for here, not by done-callbacks: those run in the pool's own thread.
            for future in futures.as_completed(pending):
                future.result()  # a failed item raises now, as map would
                on_done(pending[future])
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        return [future.result() for future in pending]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
