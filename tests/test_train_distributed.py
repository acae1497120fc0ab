"""The process group the trainer starts waits as long as the config says: rank 0 tokenizes a
large build while the other ranks wait at a barrier, and torch's 10 minutes with NCCL end them."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")

SCRIPT = """
import os
os.environ.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                  MASTER_PORT=os.environ["PORT"], ACCELERATE_USE_CPU="1")
import torch
import torch.distributed as dist
from bayling_data.train.config import TrainConfig
from bayling_data.train.loop import make_accelerator

config = TrainConfig.model_validate({
    "model": {"name_or_path": "unused"},
    "data": {"builds": [{"path": "build"}]},
    "output": {"dir": "unused"},
    "distributed": {TIMEOUT},
})
accelerator = make_accelerator(config)
backend = dist.distributed_c10d._get_default_group()._get_backend(torch.device("cpu"))
print(accelerator.distributed_type, backend.options._timeout.total_seconds())
"""


@pytest.mark.parametrize(
    ("section", "seconds"), [("{}", 3600.0), ('{"timeout_minutes": 90}', 5400.0)]
)
def test_the_process_group_timeout_is_the_configs(section: str, seconds: float, tmp_path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "manifest.json").write_text("{}")  # the config checks no more
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("{TIMEOUT}", section)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PORT": str(port)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    distributed_type, timeout = result.stdout.split()
    assert distributed_type == "DistributedType.MULTI_CPU"
    assert float(timeout) == seconds
