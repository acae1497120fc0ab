"""Ray: the same work items as tasks on a Ray cluster (``pip install 'bayling-data[ray]'``).

``address`` None starts (or joins) a local Ray instance with ``workers`` CPUs; an address such as
``ray://head:10001`` or ``auto`` joins a cluster. Every node must see the build's work folder (a
shared file system) and have bayling-data installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bayling_data.errors import BaylingError
from bayling_data.executors.base import Executor, Item, Result, available_cores


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, workers: int | None = None, *, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise BaylingError(
                "the ray executor needs Ray: pip install 'bayling-data[ray]'"
            ) from None
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address is None:
                options["num_cpus"] = workers or available_cores()
            else:
                options["address"] = address
            try:
                ray.init(**options)
            except ConnectionError as err:
                raise BaylingError(f"--ray-address {address}: cannot join ({err})") from None
        self.workers = workers or int(ray.cluster_resources().get("CPU", 1))
        self._remote: dict[Callable[..., Any], Any] = {}

    def map(
        self,
        fn: Callable[[Item], Result],
        items: Sequence[Item],
        on_done: Callable[[int], None] | None = None,
    ) -> list[Result]:
        if fn not in self._remote:
            self._remote[fn] = self._ray.remote(num_cpus=1, max_retries=2)(fn)
        remote = self._remote[fn]
        try:
            refs = [remote.remote(item) for item in items]
            if on_done is not None:
                index = {ref: position for position, ref in enumerate(refs)}
                waiting = list(refs)
                while waiting:
                    # Whatever finished within a second: one wait per task would be quadratic.
                    finished, waiting = self._ray.wait(
                        waiting, num_returns=len(waiting), timeout=1.0
                    )
                    for ref in finished:
                        self._ray.get(ref)  # a failed task raises now
                        on_done(index[ref])
            return self._ray.get(refs)
        except self._ray.exceptions.RayTaskError as err:
            # A user's mistake found in a task stays a one-line error, not Ray's traceback.
            cause = getattr(err, "cause", None)
            if isinstance(cause, BaylingError):
                raise cause from None
            raise

    def describe(self) -> str:
        return f"ray ({self.workers} CPUs)"

    def close(self) -> None:
        if self._owns:
            self._ray.shutdown()
