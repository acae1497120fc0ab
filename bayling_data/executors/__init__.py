"""Where a build's shard-level work runs: in this process, in a local process pool, or on Ray.

An executor only maps a picklable function over work items and returns the results in item
order; everything a work item reads or writes goes through files in the build's work folder, so
the choice of executor never changes the output (see ``docs/scaling.md``).
"""

from bayling_data.executors.base import EXECUTORS, Executor, make_executor
from bayling_data.executors.local import InProcessExecutor, ProcessPoolExecutor

__all__ = ["EXECUTORS", "Executor", "InProcessExecutor", "ProcessPoolExecutor", "make_executor"]
