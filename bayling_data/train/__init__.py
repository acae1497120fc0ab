"""``bayling-data train``: fine-tune a causal LM on a build's shards (needs the ``[train]`` extra).

Importing this package is cheap; torch, transformers and accelerate are imported when a run starts,
after :func:`require_train_extra` has checked they are installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bayling_data.errors import BaylingError

TRAIN_MODULES = ("torch", "transformers", "accelerate")
INSTALL_HINT = 'python -m pip install "bayling-data[train]"'


def require_train_extra() -> None:
    """A one-line error naming the install command when the [train] extra is missing."""
    missing = [name for name in TRAIN_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise BaylingError(
            f"training needs {', '.join(missing)} (the [train] extra); install it with: "
            f"{INSTALL_HINT}"
        )


def run_train(config_path: str | Path, overrides: list[str] | tuple[str, ...] = ()):
    """Validate the config (before any heavy import), then train."""
    from bayling_data.train.config import load_train_config

    config = load_train_config(config_path, overrides)
    require_train_extra()
    from bayling_data.train.loop import train

    return train(config)
