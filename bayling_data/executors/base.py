"""The executor contract and the factory that the recipe's ``execution`` section and the CLI use."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bayling_data.errors import BaylingError

Item = TypeVar("Item")
Result = TypeVar("Result")

EXECUTORS = ("auto", "inprocess", "processes", "ray")


class Executor(ABC):
    """Maps a function over work items. Functions and items must pickle (module-level functions,
    plain data); results come back in item order whatever order the work finished in."""

    name: str = "executor"
    workers: int = 1

    @abstractmethod
    def map(
        self,
        fn: Callable[[Item], Result],
        items: Sequence[Item],
        on_done: Callable[[int], None] | None = None,
    ) -> list[Result]:
        """``[fn(item) for item in items]``, possibly in parallel. ``on_done(index)`` is called in
        the calling thread as each item finishes, in whatever order they finish (for progress)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers."""

    def describe(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def make_executor(
    kind: str = "auto",
    workers: int | None = None,
    *,
    ray_address: str | None = None,
    work_items: int | None = None,
) -> Executor:
    """The executor a run asks for. ``auto``: a process pool over the cores, or this process when
    one worker would do (a single work shard, or a single core)."""
    from bayling_data.executors.local import InProcessExecutor, ProcessPoolExecutor

    if kind not in EXECUTORS:
        raise BaylingError(f"execution.executor: {kind!r} is not one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise BaylingError(f"execution.workers: expected a number of workers >= 1, not {workers}")
    if kind == "ray":
        from bayling_data.executors.ray import RayExecutor

        return RayExecutor(workers, address=ray_address)
    if ray_address is not None:
        raise BaylingError("--ray-address is for the ray executor; add --executor ray")
    if kind == "inprocess":
        return InProcessExecutor()
    count = workers or available_cores()
    if work_items is not None:
        count = min(count, max(1, work_items))
    if kind == "auto" and count == 1:
        return InProcessExecutor()
    return ProcessPoolExecutor(count)
